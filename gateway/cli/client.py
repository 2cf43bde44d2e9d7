"""The CLI's view of a running gateway: its URL and admin key, and calls to its admin API."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import read_admin_key
from gateway.config import state_dir

STATE_FILE = "gateway.json"


class CLIError(Exception):
    """A failure to report to the user in one line, with exit code 1."""


def state_path() -> Path:
    return state_dir() / STATE_FILE


def read_state() -> dict[str, Any]:
    path = state_path()
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(state: dict[str, Any]) -> None:
    path = state_path()
    path.write_text(json.dumps(state, indent=2))


@dataclass
class AdminClient:
    """Calls `/admin/*` with the admin key; errors come back as `CLIError` in plain words."""

    url: str
    key: str

    @classmethod
    def from_state(cls, url: str | None = None) -> AdminClient:
        url = url or os.environ.get("LLMGW_URL") or read_state().get("url")
        if not url:
            raise CLIError("no running gateway found: start one with `llmgw up` or pass --url")
        key = read_admin_key()
        if not key:
            raise CLIError("no admin key: set LLMGW_ADMIN_KEY or run `llmgw up` once")
        return cls(url.rstrip("/"), key)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = httpx.request(
                method,
                self.url + path,
                json=body,
                headers={"authorization": f"Bearer {self.key}"},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise CLIError(f"cannot reach the gateway at {self.url}: {exc}") from None
        data = response.json() if response.content else {}
        if response.status_code >= 400:
            message = data.get("error", {}).get("message") if isinstance(data, dict) else None
            raise CLIError(f"{response.status_code}: {message or response.text}")
        return data
