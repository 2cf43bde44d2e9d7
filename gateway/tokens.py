"""Token estimates where no tokenizer is at hand: context-window checks and the sim provider.

A word or a run of punctuation counts one token, and a long word one per four characters,
which tracks BPE tokenizers within ~20% on English prose.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.wire import ChatCompletionRequest, text_of

_PIECES = re.compile(r"\w+|[^\w\s]+")
# OpenAI counts a few tokens of framing per message and for the reply's priming.
MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3


def count_tokens(text: str) -> int:
    """Estimated tokens in `text`."""
    return sum(max(1, len(piece) // 4) for piece in _PIECES.findall(text))


def count_prompt_tokens(request: ChatCompletionRequest) -> int:
    """Estimated prompt tokens of a chat request, messages and tool definitions included."""
    total = REPLY_PRIMING
    for message in request.messages:
        total += MESSAGE_OVERHEAD + count_tokens(text_of(message.content))
        for call in getattr(message, "tool_calls", None) or []:
            total += count_tokens(call.function.name) + count_tokens(call.function.arguments)
    for tool in request.tools or []:
        total += count_tokens(tool.function.name) + count_json_tokens(tool.function.parameters)
    return total


def count_json_tokens(value: Any) -> int:
    """Estimated tokens of a JSON value (a tool's parameter schema), walked without recursion
    so that no nesting depth can exhaust the stack."""
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            total += 2 * len(item) + 2  # quotes, colons and braces, roughly
            for key, inner in item.items():
                total += count_tokens(str(key))
                pending.append(inner)
        elif isinstance(item, (list, tuple)):
            total += len(item) + 2
            pending.extend(item)
        elif isinstance(item, str):
            total += count_tokens(item)
        elif item is not None:
            total += 1
    return total
