"""AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock streams.

A message is a prelude (total length, headers length, CRC32 of those 8 bytes), typed headers,
a payload and a CRC32 of everything before it; all integers big-endian.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING = 7


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", _STRING, len(raw_value))
        + raw_value
    )


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed event-stream message."""
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + encoded + payload
    return body + struct.pack("!I", zlib.crc32(body) & 0xFFFFFFFF)


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """A modelled event (`messageStart`, `contentBlockDelta`, ...) with a JSON payload."""
    # Bedrock pads payloads with a random `p` field so sizes leak nothing; clients ignore it.
    body = json.dumps({**payload, "p": "abcdefghij"[: len(event_type) % 10]}).encode()
    return message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        body,
    )


def exception(exception_type: str, text: str) -> bytes:
    """A modelled in-stream exception (`throttlingException`, ...)."""
    return message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": text}).encode(),
    )
