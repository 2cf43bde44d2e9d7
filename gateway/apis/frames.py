"""Reading back the SSE frames our pipeline streams, for the APIs that re-frame them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson


async def payloads(frames: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Each `data:` payload of our chat stream as a dict: chunks, the usage chunk, or an
    `{"error": ...}` body; `[DONE]` ends it."""
    async for frame in frames:
        for event in frame.split(b"\n\n"):
            for line in event.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    return
                yield orjson.loads(data)


def named_event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event with an `event:` name, as Anthropic's and the Responses API's are."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
