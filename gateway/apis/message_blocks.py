"""Anthropic's content blocks as our chat messages: text, images (base64 or URL), tool use and
tool results (images a tool returned follow its result as the user's), and thinking blocks
sent back (kept whole, as `thinking_blocks`, for the adapters that send them on).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import InvalidRequestError
from gateway.providers.thinking import THINKING_FIELD

# How a tool result marked `is_error` reads to a model behind a chat API.
TOOL_ERROR_PREFIX = "Error: "


class BlockTranslation:
    """One request's content blocks as chat messages, collecting what only Anthropic can
    honour (`native_only`: param, what) on the way."""

    def __init__(self) -> None:
        self.native_only: list[tuple[str, str]] = []

    def only_native(self, param: str, what: str) -> None:
        self.native_only.append((param, what))

    def system(self, system: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        if system is None:
            return []
        if isinstance(system, str):
            return [{"role": "system", "content": system}] if system else []
        parts = []
        for i, block in enumerate(system):
            if block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise InvalidRequestError(
                    f"system.{i}: Input should be a text block", param=f"system.{i}"
                )
            parts.append({"type": "text", "text": block["text"]})
        return [{"role": "system", "content": parts}]

    def turn(self, i: int, message: dict[str, Any]) -> list[dict[str, Any]]:
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequestError(
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
                param=f"messages.{i}.role",
            )
        content = message.get("content")
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        if not isinstance(content, list):
            raise InvalidRequestError(
                f"messages.{i}.content: Input should be a string or a list of blocks",
                param=f"messages.{i}.content",
            )
        blocks = [_block(b, f"messages.{i}.content.{j}") for j, b in enumerate(content)]
        return self.assistant(i, blocks) if role == "assistant" else self.user(i, blocks)

    def user(self, i: int, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        late_images: list[dict[str, Any]] = []
        for j, block in enumerate(blocks):
            kind = block["type"]
            where = f"messages.{i}.content.{j}"
            if kind == "text":
                parts.append({"type": "text", "text": _text(block, where)})
            elif kind == "image":
                parts.append(self.image(block, where))
            elif kind == "tool_result":
                text, images = self.tool_result(block, where)
                results.append(
                    {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}
                )
                late_images.extend(images)
            else:
                self.only_native(where, f"'{kind}' content blocks")
        # Images a tool returned follow its result as the user's, where chat APIs take them.
        parts = late_images + parts
        turn = [{"role": "user", "content": parts}] if parts else []
        return results + turn

    def tool_result(self, block: dict[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequestError(f"{where}.tool_use_id: Field required", param=where)
        text, images = self._tool_output(block.get("content"), where)
        if block.get("is_error"):
            # Chat APIs have no error flag on a tool result: the model reads it in the text.
            text = f"{TOOL_ERROR_PREFIX}{text}"
        return text, images

    def _tool_output(self, content: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
        if content is None or isinstance(content, str):
            return content or "", []
        texts, images = [], []
        for k, inner in enumerate(_blocks(content, f"{where}.content")):
            if inner["type"] == "text":
                texts.append(_text(inner, f"{where}.content.{k}"))
            elif inner["type"] == "image":
                images.append(self.image(inner, f"{where}.content.{k}"))
            else:
                self.only_native(f"{where}.content.{k}", f"'{inner['type']}' tool result blocks")
        return "\n".join(texts), images

    def image(self, block: dict[str, Any], where: str) -> dict[str, Any]:
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url" and isinstance(source.get("url"), str):
            url = source["url"]
        else:
            raise InvalidRequestError(
                f"{where}.source: expected a base64 or url image source", param=where
            )
        return {"type": "image_url", "image_url": {"url": url}}

    def assistant(self, i: int, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        text, calls, thinking = [], [], []
        for j, block in enumerate(blocks):
            kind = block["type"]
            where = f"messages.{i}.content.{j}"
            if kind == "text":
                text.append(_text(block, where))
            elif kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": json.dumps(block.get("input") or {}),
                        },
                    }
                )
            elif kind in ("thinking", "redacted_thinking"):
                thinking.append(block)
            else:
                self.only_native(where, f"'{kind}' content blocks")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message[THINKING_FIELD] = thinking
        return [message]

    def tools(self, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if not tools:
            return None
        out = []
        for i, tool in enumerate(tools):
            if tool.get("type") not in (None, "custom"):
                self.only_native(f"tools.{i}", f"server tool '{tool.get('type')}'")
                continue
            function: dict[str, Any] = {
                "name": tool.get("name"),
                "parameters": tool.get("input_schema") or {"type": "object"},
            }
            if tool.get("description") is not None:
                function["description"] = tool["description"]
            if tool.get("strict") is not None:
                function["strict"] = tool["strict"]
            out.append({"type": "function", "function": function})
        return out or None


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}: Input should be a list of blocks", param=where)
    return [_block(b, f"{where}.{k}") for k, b in enumerate(content)]


def _block(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequestError(f"{where}.type: Field required", param=where)
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "file":
        # Uploaded files live in the upstream account every tenant shares: never by id here.
        raise InvalidRequestError(
            f"{where}.source: file sources are not served by this gateway; send the content "
            "(base64, text or a URL)",
            param=f"{where}.source",
        )
    return block


def _text(block: dict[str, Any], where: str) -> str:
    if not isinstance(block.get("text"), str):
        raise InvalidRequestError(f"{where}.text: Field required", param=where)
    return block["text"]
