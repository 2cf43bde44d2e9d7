"""Our messages as the block-based turns Anthropic, Bedrock and Ollama take: tool-call
arguments as objects, consecutive turns of one role merged."""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import InvalidRequestError


def tool_arguments(arguments: str) -> dict[str, Any]:
    """An assistant tool call's JSON arguments as the object Anthropic, Bedrock, Ollama want."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        raise InvalidRequestError(
            "an assistant tool call's arguments are not valid JSON", param="messages"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "an assistant tool call's arguments must be a JSON object", param="messages"
        )
    return value


def merge_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive turns of one role as one turn of blocks, as Anthropic and Bedrock want.

    Consecutive tool results become one user turn (the next user text joins it after them).
    """
    merged: list[dict[str, Any]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"].extend(turn["content"])
        else:
            merged.append({"role": turn["role"], "content": list(turn["content"])})
    return merged
