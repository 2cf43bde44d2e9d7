"""Signed reasoning on assistant turns, carried between the client and block-based providers.

A model's signed reasoning rides on assistant messages as `thinking_blocks` (LiteLLM's name):
Anthropic and Bedrock refuse a tool-use turn replayed without it while thinking is on.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequestError

THINKING_FIELD = "thinking_blocks"

# The string fields each reasoning block must carry (`signature` may be absent).
_THINKING_FIELDS = {"thinking": ("thinking",), "redacted_thinking": ("data",)}


def thinking_blocks_of(message: Any) -> list[dict[str, Any]]:
    """The reasoning blocks a client sent back on an assistant turn, in Anthropic's shape;
    a block missing its content is a 400 naming the field."""
    blocks = (getattr(message, "model_extra", None) or {}).get(THINKING_FIELD) or []
    if not isinstance(blocks, list):
        raise InvalidRequestError(f"'{THINKING_FIELD}' must be a list", param="messages")
    kept = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in _THINKING_FIELDS:
            continue
        for name in _THINKING_FIELDS[block["type"]]:
            if not isinstance(block.get(name), str):
                raise InvalidRequestError(
                    f"{THINKING_FIELD}[{i}].{name}: a {block['type']} block needs its '{name}' "
                    "string, as it was received",
                    param="messages",
                )
        if not isinstance(block.get("signature") or "", str):
            raise InvalidRequestError(
                f"{THINKING_FIELD}[{i}].signature must be a string", param="messages"
            )
        kept.append(block)
    return kept
