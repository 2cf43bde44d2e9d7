"""Where a registry entry came from: the config file (which path, which version of the entry)
or the admin API (who, when); and an admin's change on top of a config entry."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel

Kind = Literal["model", "provider"]
Key = tuple[Kind, str]


def entry_digest(entry: BaseModel) -> str:
    """A short hash of one config entry, to tell whether the file changed it."""
    data = orjson.dumps(entry.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Origin:
    """`config`: declared by the file at `path` (whose digest was `config_hash`) as the entry
    hashing to `entry_hash`. `admin`: added through the admin API by `who` at `at`.

    `override_by`/`override_at`: an admin changed a config entry; the change stands until the
    file changes that entry (its `entry_hash` moves). `removed_from_config`: the file stopped
    declaring it and `registry.on_removed` is `deprecate`."""

    kind: Literal["config", "admin"]
    path: str | None = None
    config_hash: str | None = None
    entry_hash: str | None = None
    who: str | None = None
    at: str | None = None
    override_by: str | None = None
    override_at: str | None = None
    removed_from_config: bool = False

    @classmethod
    def config(cls, path: str | None, config_hash: str, entry_hash: str) -> Origin:
        return cls("config", path=path, config_hash=config_hash, entry_hash=entry_hash, at=_now())

    @classmethod
    def admin(cls, who: str) -> Origin:
        return cls("admin", who=who, at=_now())

    def changed_by(self, who: str) -> Origin:
        """This origin after an admin change: a config entry gains an override."""
        if self.kind == "config":
            return replace(self, override_by=who, override_at=_now())
        return replace(self, who=who, at=_now())

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Origin | None:
        return cls(**data) if data else None
