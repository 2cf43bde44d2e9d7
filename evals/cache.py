"""The opt-in response cache: a response kept by (model, messages, parameters, repeat), so a
re-run (a new scorer, a new run id) makes no call. Errors are never kept."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from gateway.config import state_dir


def cache_key(
    model: str, messages: list[dict[str, str]], params: dict[str, Any], repeat: int
) -> str:
    text = json.dumps([model, messages, params, repeat], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(setting: bool | str) -> Path:
    return Path(setting) if isinstance(setting, str) else state_dir() / "eval-cache.sqlite"


class ResponseCache:
    """A SQLite file of responses, read and written by the sweep's driver only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT)")

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, value FROM responses WHERE key IN ({marks})"
            found.update((k, json.loads(v)) for k, v in self._db.execute(query, chunk))
        return found

    def put_many(self, entries: dict[str, dict[str, Any]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO responses VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in entries.items()],
            )

    def close(self) -> None:
        self._db.close()
