"""Our chat request as a Converse call: system blocks, alternating turns of content blocks,
`inferenceConfig`, `toolConfig`, `outputConfig` and `requestMetadata`.

Images go as bytes (http URLs fetched by the adapter's `ImageFetcher`); `json_object` is an
instruction in `system` (the answer is checked); signed reasoning goes back as
`reasoningContent` blocks.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from gateway.config import ModelConfig
from gateway.errors import InvalidRequestError
from gateway.providers.images import ImageFetcher
from gateway.providers.json_output import JSON_INSTRUCTION, wants_json_object
from gateway.providers.thinking import THINKING_FIELD, thinking_blocks_of
from gateway.providers.turns import merge_turns, tool_arguments
from gateway.wire import (
    AssistantMessage,
    ChatCompletionRequest,
    ImagePart,
    SystemMessage,
    ToolMessage,
    text_of,
)


async def converse_params(
    request: ChatCompletionRequest, model: ModelConfig, images: ImageFetcher
) -> dict[str, Any]:
    """The keyword arguments of `converse` / `converse_stream` for one request."""
    system = [
        {"text": text_of(m.content)}
        for m in request.messages
        if isinstance(m, SystemMessage) and text_of(m.content).strip()
    ]
    turns = [await _turn(m, images) for m in request.messages if not isinstance(m, SystemMessage)]
    params: dict[str, Any] = {"modelId": model.upstream_id, "messages": merge_turns(turns)}
    if wants_json_object(request):
        system.append({"text": JSON_INSTRUCTION})
    if system:
        params["system"] = system
    inference = {
        "maxTokens": request.output_limit(),
        "temperature": request.temperature,
        "topP": request.top_p,
        "stopSequences": request.stop_list() or None,
    }
    inference = {k: v for k, v in inference.items() if v is not None}
    if inference:
        params["inferenceConfig"] = inference
    tool_config = _tool_config(request)
    if tool_config is not None:
        params["toolConfig"] = tool_config
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        json_schema = {
            "schema": json.dumps(fmt.json_schema.schema_ or {"type": "object"}),
            "name": fmt.json_schema.name,
        }
        if fmt.json_schema.description:
            json_schema["description"] = fmt.json_schema.description
        params["outputConfig"] = {
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": json_schema}}
        }
    metadata = dict(request.metadata or {})
    if request.user is not None:
        metadata["user"] = request.user
    if metadata:
        params["requestMetadata"] = metadata
    return params


def has_tool_blocks(request: ChatCompletionRequest) -> bool:
    """Whether the conversation already called tools (Converse then needs `toolConfig`)."""
    return any(
        isinstance(m, ToolMessage) or (isinstance(m, AssistantMessage) and m.tool_calls)
        for m in request.messages
    )


async def _turn(message: Any, images: ImageFetcher) -> dict[str, Any]:
    if isinstance(message, ToolMessage):
        result = {
            "toolUseId": message.tool_call_id,
            "content": [{"text": text_of(message.content) or "(empty)"}],
        }
        return {"role": "user", "content": [{"toolResult": result}]}
    if isinstance(message, AssistantMessage):
        blocks: list[dict[str, Any]] = [_reasoning_block(b) for b in thinking_blocks_of(message)]
        if text_of(message.content).strip():
            blocks.append({"text": text_of(message.content)})
        for call in message.tool_calls or []:
            use = {
                "toolUseId": call.id,
                "name": call.function.name,
                "input": tool_arguments(call.function.arguments),
            }
            blocks.append({"toolUse": use})
        return {"role": "assistant", "content": blocks}
    if isinstance(message.content, str):
        return {"role": "user", "content": [{"text": message.content}]}
    parts = message.content
    fetched = iter(
        await images.fetch_all([p.image_url.url for p in parts if isinstance(p, ImagePart)])
    )
    blocks = []
    for part in parts:
        if isinstance(part, ImagePart):
            image = next(fetched)
            blocks.append({"image": {"format": image.format, "source": {"bytes": image.data}}})
        elif part.text.strip():
            blocks.append({"text": part.text})
    return {"role": "user", "content": blocks}


def _tool_config(request: ChatCompletionRequest) -> dict[str, Any] | None:
    if not request.tools or request.tool_choice == "none":
        return None
    tools = []
    for tool in request.tools:
        spec = {
            "name": tool.function.name,
            "inputSchema": {"json": tool.function.parameters or {"type": "object"}},
        }
        if tool.function.description:
            spec["description"] = tool.function.description
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice is not None and not isinstance(choice, str):
        config["toolChoice"] = {"tool": {"name": choice.function.name}}
    return config


def _reasoning_block(block: dict[str, Any]) -> dict[str, Any]:
    """A `thinking_blocks` entry as Bedrock's reasoningContent, to send a turn back."""
    if block["type"] == "redacted_thinking":
        try:
            data = base64.b64decode(block["data"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                f"{THINKING_FIELD}[].data of a redacted_thinking block must be base64, as it "
                "was received",
                param="messages",
            ) from None
        return {"reasoningContent": {"redactedContent": data}}
    text = {"text": block.get("thinking", ""), "signature": block.get("signature")}
    return {"reasoningContent": {"reasoningText": {k: v for k, v in text.items() if v is not None}}}
