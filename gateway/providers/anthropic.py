"""Anthropic's Messages API through `anthropic.AsyncAnthropic`.

System and developer messages become the `system` parameter; tool calls and results become
`tool_use` / `tool_result` blocks (consecutive results in one user turn). `json_schema` output
is native (`output_config.format`); `json_object` is emulated with an instruction in `system`
and the answer checked (a forced tool is refused by current Claude models, and native output
cannot express "any object"); a streamed emulated answer is sent whole once checked. API version
2026-10-21 refuses `temperature` and `top_p`, so they are refused here too, naming them.
Signed thinking reaches the client as `thinking_blocks` on the message (whole, in a stream) and
goes back from there on a tool-use turn, which the API requires while thinking is on.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar

import anthropic

from gateway.config import ModelConfig
from gateway.errors import InvalidRequestError
from gateway.providers.images import parse_data_url
from gateway.providers.json_output import (
    JSON_INSTRUCTION,
    check_json_output,
    unfenced,
    wants_json_object,
)
from gateway.providers.native import native_body, native_headers
from gateway.providers.stainless import StainlessProvider
from gateway.providers.streams import ChunkStream, StreamedAnswer
from gateway.providers.support import SUPPORT, refuse
from gateway.providers.thinking import THINKING_FIELD, thinking_blocks_of
from gateway.providers.transport import pooled_client
from gateway.providers.turns import merge_turns, tool_arguments
from gateway.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Delta,
    FunctionCall,
    ImagePart,
    ResponseMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    text_of,
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

EFFORTS = {"low", "medium", "high", "xhigh"}

# What `messages.create` takes by name; anything else a client's own body has goes as extra body.
_CREATE_PARAMS = frozenset(
    inspect.signature(anthropic.resources.AsyncMessages.create).parameters
) - {
    "self",
    "extra_headers",
    "extra_query",
    "extra_body",
    "timeout",
}


class AnthropicProvider(StainlessProvider):
    """Claude models through Anthropic's Messages API."""

    type = "anthropic"
    supports = SUPPORT["anthropic"].capabilities
    refuses = SUPPORT["anthropic"].refuses
    sdk = anthropic
    default_key_env: ClassVar[str] = "ANTHROPIC_API_KEY"

    def _make_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self._key or "unset",
            base_url=self.config.base_url,
            max_retries=0,
            http_client=pooled_client(self.config),
        )

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        if request.reasoning_effort is not None and request.reasoning_effort not in EFFORTS:
            raise refuse("reasoning_effort", self.type, f"one of {sorted(EFFORTS)}")
        super().check(request, model)

    # ----------------------------------------------------------------- request -> SDK call

    async def _convert_completion_params(
        self, request: ChatCompletionRequest, model: ModelConfig, *, stream: bool
    ) -> dict[str, Any]:
        native = native_body(request, self.type)
        if native is not None:
            return self._native_params(native, native_headers(request, self.type), model)
        system = [
            {"type": "text", "text": text_of(m.content)}
            for m in request.messages
            if isinstance(m, SystemMessage)
        ]
        params: dict[str, Any] = {
            "model": model.upstream_id,
            "messages": merge_turns(
                [self._turn(m) for m in request.messages if m.role not in ("system", "developer")]
            ),
            "max_tokens": request.output_limit() or model.max_output_tokens,
            "timeout": self._timeout(model),
        }
        if system:
            params["system"] = system
        if request.stop_list():
            params["stop_sequences"] = request.stop_list()
        if request.user is not None:
            params["metadata"] = {"user_id": request.user}
        if request.tools:
            params["tools"] = [
                {
                    "name": tool.function.name,
                    "description": tool.function.description or "",
                    "input_schema": tool.function.parameters or {"type": "object"},
                    **({"strict": tool.function.strict} if tool.function.strict else {}),
                }
                for tool in request.tools
            ]
        tool_choice = self._tool_choice(request)
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
        output_config: dict[str, Any] = {}
        if request.reasoning_effort is not None:
            output_config["effort"] = request.reasoning_effort
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
            schema = _structured_output(fmt.json_schema.schema_ or {"type": "object"})
            output_config["format"] = {"type": "json_schema", "schema": schema}
        elif fmt is not None and fmt.type == "json_object":
            params["system"] = [*system, {"type": "text", "text": JSON_INSTRUCTION}]
        if output_config:
            params["output_config"] = output_config
        return params

    def _native_params(
        self, body: dict[str, Any], headers: dict[str, str], model: ModelConfig
    ) -> dict[str, Any]:
        """A body a client wrote in this API (`/v1/messages`), sent as it came (with its
        `anthropic-beta` header), on our model."""
        params = {k: v for k, v in body.items() if k in _CREATE_PARAMS}
        extra = {k: v for k, v in body.items() if k not in _CREATE_PARAMS}
        params.pop("stream", None)
        params["model"] = model.upstream_id
        params["timeout"] = self._timeout(model)
        if extra:
            params["extra_body"] = extra
        if headers:
            params["extra_headers"] = headers
        return params

    def _turn(self, message: Any) -> dict[str, Any]:
        if isinstance(message, ToolMessage):
            result = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": text_of(message.content),
            }
            return {"role": "user", "content": [result]}
        if isinstance(message, AssistantMessage):
            blocks: list[dict[str, Any]] = thinking_blocks_of(message)
            if text_of(message.content):
                blocks.append({"type": "text", "text": text_of(message.content)})
            for call in message.tool_calls or []:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.function.name,
                        "input": tool_arguments(call.function.arguments),
                    }
                )
            return {"role": "assistant", "content": blocks}
        if isinstance(message.content, str):
            return {"role": "user", "content": [{"type": "text", "text": message.content}]}
        return {"role": "user", "content": [self._part(part) for part in message.content]}

    @staticmethod
    def _part(part: Any) -> dict[str, Any]:
        if not isinstance(part, ImagePart):
            return {"type": "text", "text": part.text}
        url = part.image_url.url
        if url.startswith("data:"):
            image = parse_data_url(url)
            source = {"type": "base64", "media_type": image.media_type, "data": image.b64()}
        else:
            source = {"type": "url", "url": url}
        return {"type": "image", "source": source}

    @staticmethod
    def _tool_choice(request: ChatCompletionRequest) -> dict[str, Any] | None:
        choice = request.tool_choice
        if choice is None and request.parallel_tool_calls is not False:
            return None
        if choice is None or choice == "auto":
            result: dict[str, Any] = {"type": "auto"}
        elif choice == "none":
            return {"type": "none"}
        elif choice == "required":
            result = {"type": "any"}
        else:
            result = {"type": "tool", "name": choice.function.name}
        if request.parallel_tool_calls is False:
            result["disable_parallel_tool_use"] = True
        return result

    async def _create_completion(self, params: dict[str, Any], model: ModelConfig) -> Any:
        return await self._client.messages.create(**params)

    async def _create_stream(self, params: dict[str, Any], model: ModelConfig) -> Any:
        return await self._client.messages.create(**params, stream=True)

    # ----------------------------------------------------------------- SDK answer -> ours

    def _convert_completion_response(
        self, message: Any, request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        text, calls, thinking = "", [], []
        for block in message.content:
            if block.type == "text":
                text += block.text
            elif block.type in ("thinking", "redacted_thinking"):
                thinking.append(block.model_dump(exclude_none=True))
            elif block.type == "tool_use":
                arguments = json.dumps(block.input)
                calls.append(
                    ToolCall(
                        id=block.id, function=FunctionCall(name=block.name, arguments=arguments)
                    )
                )
        finish = _finish(message.stop_reason)
        if wants_json_object(request):
            text = unfenced(text)
        if finish == "stop" and not calls:
            check_json_output(text, request.response_format, self.name)
        reply = ResponseMessage(content=(text or None) if calls else text, tool_calls=calls or None)
        if thinking:
            setattr(reply, THINKING_FIELD, thinking)
        return ChatCompletion(
            model=model.name,
            choices=[Choice(message=reply, finish_reason=finish)],
            usage=_usage(message.usage),
        )

    def _stream_state(self, request: ChatCompletionRequest) -> _StreamState:
        return _StreamState(request, self.name)

    def _convert_completion_chunk_response(
        self, event: Any, chunks: ChunkStream, state: _StreamState
    ) -> list[ChatCompletionChunk]:
        """Our chunks for one Anthropic stream event."""
        kind = event.type
        if kind == "message_start":
            state.input = event.message.usage
            return [chunks.chunk(Delta(role="assistant", content=""))]
        if kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                delta = state.calls.start(event.index, block.id, block.name)
                return [chunks.chunk(Delta(tool_calls=[delta]))]
            if block.type == "text" and block.text:
                return state.content(block.text, chunks)
            if block.type in ("thinking", "redacted_thinking"):
                state.thinking[event.index] = block.model_dump(exclude_none=True)
            return []
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                return state.content(delta.text, chunks)
            if delta.type == "input_json_delta" and event.index in state.calls:
                fragment = state.calls.arguments(event.index, delta.partial_json)
                return [chunks.chunk(Delta(tool_calls=[fragment]))]
            if delta.type == "thinking_delta" and event.index in state.thinking:
                state.thinking[event.index]["thinking"] += delta.thinking
            if delta.type == "signature_delta" and event.index in state.thinking:
                state.thinking[event.index]["signature"] = delta.signature
            return []
        if kind == "content_block_stop" and event.index in state.thinking:
            # Sent whole once signed, for the client to send back with a tool-use turn.
            delta = Delta.model_validate({THINKING_FIELD: [state.thinking.pop(event.index)]})
            return [chunks.chunk(delta)]
        if kind == "message_delta":
            state.stop_reason = event.delta.stop_reason
            state.output = event.usage
            return []
        if kind == "message_stop":
            state.usage = _usage(state.input, state.output)
            return state.finish(_finish(state.stop_reason), chunks)
        return []

    async def _probe(self) -> bool:
        """The model list, one entry long."""
        await self._client.models.list(limit=1)
        return True


class _StreamState(StreamedAnswer):
    """What an Anthropic stream has shown so far."""

    def __init__(self, request: ChatCompletionRequest, provider: str) -> None:
        super().__init__(request, provider)
        self.buffering = wants_json_object(request)
        self.thinking: dict[int, dict[str, Any]] = {}
        self.stop_reason: str | None = None
        self.input: Any = None
        self.output: Any = None


def _structured_output(schema: dict[str, Any]) -> dict[str, Any]:
    """The client's schema in the subset Anthropic's structured outputs take; a valid JSON
    schema outside it (`type` lists, `not`, tuple `items`, boolean subschemas) is a 400."""
    try:
        return anthropic.transform_schema(schema)
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        raise InvalidRequestError(
            "response_format.json_schema.schema cannot be expressed as Anthropic structured "
            f"output: {str(exc)[:200]}",
            param="response_format",
        ) from None


def _finish(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def _usage(start: Any, end: Any = None) -> Usage:
    """OpenAI usage from Anthropic's, whose `input_tokens` leave cached tokens out."""
    fields = {}
    for source in (start, end):
        if source is not None:
            fields.update({k: v for k, v in source.model_dump().items() if v is not None})
    cached = fields.get("cache_read_input_tokens") or 0
    written = fields.get("cache_creation_input_tokens") or 0
    prompt = (fields.get("input_tokens") or 0) + cached + written
    return Usage.of(prompt, fields.get("output_tokens") or 0, cached)
