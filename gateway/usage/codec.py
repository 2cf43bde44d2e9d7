"""Usage and audit records as JSON lines, for the spool and the dead-letter files."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, Literal

import orjson

from gateway.usage.records import AuditEvent, UsageRecord

Kind = Literal["usage", "audit"]
Record = UsageRecord | AuditEvent

_TYPES: dict[str, type[UsageRecord] | type[AuditEvent]] = {
    "usage": UsageRecord,
    "audit": AuditEvent,
}
_FIELDS = {kind: {f.name for f in fields(cls)} for kind, cls in _TYPES.items()}


def kind_of(record: Record) -> Kind:
    return "usage" if isinstance(record, UsageRecord) else "audit"


def encode(record: Record, **extra: Any) -> bytes:
    """One line: `{"kind": ..., "record": {...}, **extra}` and a newline."""
    line = {"kind": kind_of(record), "record": record, **extra}  # orjson writes dataclasses
    return orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> Record:
    """The record of a line `encode` wrote; ValueError when it is not one (a torn write)."""
    data = orjson.loads(line)
    kind = data["kind"]
    values = {k: v for k, v in data["record"].items() if k in _FIELDS[kind]}
    values["at"] = datetime.fromisoformat(values["at"])
    return _TYPES[kind](**values)
