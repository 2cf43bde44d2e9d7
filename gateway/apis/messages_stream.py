"""Our chat chunk stream as Anthropic's Messages event stream.

`message_start`, `ping`, then per content block `content_block_start`, its deltas
(`text_delta`, `input_json_delta`, `thinking_delta` and `signature_delta`) and
`content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`; a failure
mid-stream is an `error` event, as Anthropic sends one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.apis.frames import named_event, payloads
from gateway.apis.messages import STOP_REASONS, error_type, message_id, usage_of
from gateway.errors import GatewayError
from gateway.providers.thinking import THINKING_FIELD


class _Blocks:
    """The content block open now, and the index of the next one."""

    def __init__(self) -> None:
        self.next = 0
        self.open: tuple[str, Any] | None = None  # ("text", None) or ("tool", tool index)

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        self.next += 1
        return [
            named_event(
                "content_block_stop", {"type": "content_block_stop", "index": self.next - 1}
            )
        ]

    def start(self, kind: tuple[str, Any], block: dict[str, Any]) -> list[bytes]:
        events = self.close()
        self.open = kind
        start = {"type": "content_block_start", "index": self.next, "content_block": block}
        return [*events, named_event("content_block_start", start)]

    def delta(self, delta: dict[str, Any]) -> bytes:
        payload = {"type": "content_block_delta", "index": self.next, "delta": delta}
        return named_event("content_block_delta", payload)


def _thinking(blocks: _Blocks, block: dict[str, Any]) -> list[bytes]:
    """A whole thinking block (our stream carries them whole, once signed) as its events."""
    if block.get("type") == "redacted_thinking":
        events = blocks.start(("thinking", None), block)
        return [*events, *blocks.close()]
    events = blocks.start(("thinking", None), {"type": "thinking", "thinking": "", "signature": ""})
    events.append(blocks.delta({"type": "thinking_delta", "thinking": block.get("thinking", "")}))
    if block.get("signature"):
        events.append(blocks.delta({"type": "signature_delta", "signature": block["signature"]}))
    return [*events, *blocks.close()]


async def message_events(
    frames: AsyncIterator[bytes],
    model: str,
    prompt_tokens: int,
    failure: Callable[[], GatewayError | None],
) -> AsyncIterator[bytes]:
    """Anthropic's events for our chat stream; `prompt_tokens` is the estimate `message_start`
    carries (the real count arrives in `message_delta`); `failure` is the error that cut the
    stream, once our stream has sent its error frame."""
    blocks = _Blocks()
    finish: str | None = None
    usage: dict[str, Any] | None = None
    message = {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
    }
    yield named_event("message_start", {"type": "message_start", "message": message})
    yield named_event("ping", {"type": "ping"})
    async for payload in payloads(frames):
        if "error" in payload:
            error = failure()
            status = error.status_code if error is not None else 500
            body = {"type": error_type(status), "message": payload["error"].get("message")}
            yield named_event("error", {"type": "error", "error": body})
            return
        if payload.get("usage") and not payload.get("choices"):
            usage = payload["usage"]
            continue
        for choice in payload.get("choices") or []:
            for event in _choice_events(blocks, choice.get("delta") or {}):
                yield event
            finish = choice.get("finish_reason") or finish
    for event in blocks.close():
        yield event
    final = usage_of(usage)
    delta = {
        "type": "message_delta",
        "delta": {
            "stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"),
            "stop_sequence": None,
        },
        "usage": final,
    }
    yield named_event("message_delta", delta)
    yield named_event("message_stop", {"type": "message_stop"})


def _choice_events(blocks: _Blocks, delta: dict[str, Any]) -> list[bytes]:
    events: list[bytes] = []
    for block in delta.get(THINKING_FIELD) or []:
        events.extend(_thinking(blocks, block))
    text = delta.get("content") or delta.get("refusal")
    if text:
        if blocks.open != ("text", None):
            events.extend(blocks.start(("text", None), {"type": "text", "text": ""}))
        events.append(blocks.delta({"type": "text_delta", "text": text}))
    for call in delta.get("tool_calls") or []:
        kind = ("tool", call.get("index", 0))
        function = call.get("function") or {}
        if call.get("id") is not None or blocks.open != kind:
            block = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": {},
            }
            events.extend(blocks.start(kind, block))
        if function.get("arguments"):
            events.append(
                blocks.delta({"type": "input_json_delta", "partial_json": function["arguments"]})
            )
    return events
