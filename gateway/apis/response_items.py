"""The Responses API's items: input items in their stored shape, conversation items as our
chat messages, and the output items our completions become.

Reasoning we carry across turns ourselves (Anthropic's signed thinking blocks) travels in a
reasoning item's `encrypted_content`, marked so that an item we did not make is never taken for
ours; a later turn (or a `previous_response_id`) sends it back to the model whole.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson

from gateway.errors import InvalidRequestError
from gateway.providers.thinking import THINKING_FIELD

_REASONING_PREFIX = "llmgw1:"


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(given: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A turn's `input` as items in their stored shape, each with an id (`input_items`)."""
    if given is None:
        return []
    if isinstance(given, str):
        raw: list[dict[str, Any]] = [{"role": "user", "content": given}]
    else:
        raw = given
    return [_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def _item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidRequestError(f"Invalid value for '{where}': expected an object.", param=where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidRequestError(
                f"Invalid value for '{where}.role': expected user, system, developer or assistant.",
                param=f"{where}.role",
            )
        content = item.get("content")
        part_type = "output_text" if role == "assistant" else "input_text"
        if isinstance(content, str):
            content = [{"type": part_type, "text": content}]
        if not isinstance(content, list):
            raise InvalidRequestError(
                f"Missing required parameter: '{where}.content'.", param=where
            )
        if role == "assistant":
            content = [{"annotations": [], **part} for part in content]
            stored = {"type": "message", "role": role, "content": content, "status": "completed"}
            return {"id": item.get("id") or item_id("msg"), **stored}
        stored = {"type": "message", "role": role, "content": content}
        return {"id": item.get("id") or item_id("msg"), **stored}
    if kind == "function_call":
        _require(item, where, "call_id", "name", "arguments")
        return {
            "id": item.get("id") or item_id("fc"),
            "type": "function_call",
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
            "status": "completed",
        }
    if kind == "function_call_output":
        _require(item, where, "call_id", "output")
        return {
            "id": item.get("id") or item_id("fco"),
            "type": "function_call_output",
            "call_id": item["call_id"],
            "output": item["output"],
            "status": "completed",
        }
    if kind == "reasoning":
        return {"id": item.get("id") or item_id("rs"), "summary": [], **item}
    raise InvalidRequestError(
        f"Invalid value for '{where}.type': '{kind}' items are not supported by this gateway.",
        param=f"{where}.type",
    )


def _require(item: dict[str, Any], where: str, *names: str) -> None:
    for name in names:
        if name not in item:
            raise InvalidRequestError(
                f"Missing required parameter: '{where}.{name}'.", param=f"{where}.{name}"
            )


def messages_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for conversation items, in order; function calls join the assistant
    turn before them, and our reasoning rides on the assistant turn after it."""
    messages: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []

    def assistant() -> dict[str, Any]:
        last = messages[-1] if messages else None
        if last is None or last["role"] != "assistant" or thinking:
            last = {"role": "assistant", "content": None}
            messages.append(last)
        if thinking:
            last[THINKING_FIELD] = list(thinking)
            thinking.clear()
        return last

    for item in items:
        kind = item["type"]
        if kind == "reasoning":
            thinking.extend(_thinking_of(item))
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            assistant().setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else _text_of(output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif item["role"] == "assistant":
            text = _text_of(item["content"])
            turn = assistant()
            turn["content"] = (turn["content"] or "") + text
        else:
            messages.append(_user_or_system(item))
    return messages


def _user_or_system(item: dict[str, Any]) -> dict[str, Any]:
    role = item["role"]
    if role in ("system", "developer"):
        return {"role": role, "content": _text_of(item["content"])}
    parts = []
    for part in item["content"]:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"url": part["image_url"]}
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequestError(
                f"'{kind}' input content is not supported by this gateway", param="input"
            )
    return {"role": "user", "content": parts}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text") or part.get("refusal") or "" for part in content if isinstance(part, dict)
    )


def _thinking_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    encrypted = item.get("encrypted_content") or ""
    if not encrypted.startswith(_REASONING_PREFIX):
        return []  # reasoning we did not produce: nothing a provider here could take back
    try:
        blocks = orjson.loads(base64.b64decode(encrypted[len(_REASONING_PREFIX) :]))
    except ValueError:
        raise InvalidRequestError(
            "a reasoning item's encrypted_content is not as this gateway produced it",
            param="input",
        ) from None
    return blocks if isinstance(blocks, list) else []


# ---------------------------------------------------------------- output items


def reasoning_item(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Signed thinking as a reasoning item: its text readable, the blocks kept whole in
    `encrypted_content` so that a later turn can send them back."""
    packed = base64.b64encode(orjson.dumps(blocks)).decode()
    text = "".join(b.get("thinking", "") for b in blocks)
    item: dict[str, Any] = {
        "id": item_id("rs"),
        "type": "reasoning",
        "summary": [],
        "encrypted_content": _REASONING_PREFIX + packed,
        "status": "completed",
    }
    if text:
        item["content"] = [{"type": "reasoning_text", "text": text}]
    return item


def message_item(text: str, status: str = "completed", refusal: bool = False) -> dict[str, Any]:
    part = (
        {"type": "refusal", "refusal": text}
        if refusal
        else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    content = [part] if text or not refusal else []
    return {
        "id": item_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id("fc"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }
