"""Ollama's native API through `ollama.AsyncClient`: `/api/chat`, `/api/embed`, `/api/tags`.

Images go as base64 (http URLs are fetched); tool-call arguments go as objects and tool results
carry the tool's name; `json_object` is `format: "json"` and `json_schema` is `format: <schema>`.
Ollama gives tool calls no ids and streams each call whole, so ids are minted here and each call
streams as a first delta and one arguments delta.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import httpx
import ollama
import pydantic

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import GatewayError
from gateway.providers.base import Provider
from gateway.providers.embeddings import encode_embedding
from gateway.providers.images import ImageFetcher, check_image_count
from gateway.providers.json_output import check_json_output
from gateway.providers.streams import ChunkStream, StreamedAnswer
from gateway.providers.support import SUPPORT
from gateway.providers.turns import tool_arguments
from gateway.providers.upstream_errors import (
    connection_error,
    cut_error,
    malformed_error,
    stream_error,
    timeout_error,
    upstream_error,
)
from gateway.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    FunctionCall,
    ImagePart,
    ResponseMessage,
    ToolCall,
    ToolMessage,
    Usage,
    text_of,
)

FINISH_REASONS = {"stop": "stop", "length": "length"}
DEFAULT_HOST = "http://localhost:11434"

# What `/api/show` capabilities mean in our registry's terms.
CAPABILITIES = {
    "completion": ["chat", "streaming", "json_mode"],
    "tools": ["tools"],
    "vision": ["vision"],
    "embedding": ["embeddings"],
}


class OllamaProvider(Provider):
    """Local (or remote) models served by Ollama."""

    type = "ollama"
    supports = SUPPORT["ollama"].capabilities
    refuses = SUPPORT["ollama"].refuses

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.host = config.base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
        # Connect time is bounded per client; each call's total and first-token budget by Deadline.
        self._client = ollama.AsyncClient(
            host=self.host,
            # A redirect would carry the prompt (and any auth header) to another host.
            follow_redirects=False,
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=config.max_connections),
            event_hooks={"response": [_raise_with_headers]},
        )
        self.images = ImageFetcher()

    async def aclose(self) -> None:
        await self._client.close()
        await self.images.aclose()

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        super().check(request, model)
        check_image_count(request)

    # ----------------------------------------------------------------- request -> SDK call

    async def _convert_completion_params(
        self, request: ChatCompletionRequest, model: ModelConfig, *, stream: bool
    ) -> dict[str, Any]:
        names = {
            call.id: call.function.name
            for m in request.messages
            if isinstance(m, AssistantMessage)
            for call in m.tool_calls or []
        }
        params: dict[str, Any] = {
            "model": model.upstream_id,
            "messages": [await self._message(m, names) for m in request.messages],
            "stream": stream,
        }
        if request.tools and request.tool_choice != "none":
            params["tools"] = [tool.model_dump(exclude_none=True) for tool in request.tools]
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_object":
            params["format"] = "json"
        elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
            params["format"] = fmt.json_schema.schema_ or {"type": "object"}
        options = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "num_predict": request.output_limit(),
            "stop": request.stop_list() or None,
            "seed": request.seed,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
        }
        options = {k: v for k, v in options.items() if v is not None}
        if options:
            params["options"] = options
        return params

    async def _message(self, message: Any, names: dict[str, str]) -> dict[str, Any]:
        if isinstance(message, ToolMessage):
            out = {"role": "tool", "content": text_of(message.content)}
            if message.tool_call_id in names:
                out["tool_name"] = names[message.tool_call_id]
            return out
        role = "system" if message.role == "developer" else message.role
        out = {"role": role, "content": text_of(message.content)}
        if isinstance(message, AssistantMessage) and message.tool_calls:
            out["tool_calls"] = [
                {
                    "function": {
                        "name": call.function.name,
                        "arguments": tool_arguments(call.function.arguments),
                    }
                }
                for call in message.tool_calls
            ]
        parts = message.content if isinstance(message.content, list) else []
        urls = [p.image_url.url for p in parts if isinstance(p, ImagePart)]
        if urls:
            images = await self.images.fetch_all(urls)
            out["images"] = [image.b64() for image in images]
        return out

    async def _create_completion(self, params: dict[str, Any], model: ModelConfig) -> Any:
        return await self._client.chat(**params)

    async def _create_stream(self, params: dict[str, Any], model: ModelConfig) -> Any:
        return await self._client.chat(**params)

    # ----------------------------------------------------------------- SDK answer -> ours

    def _convert_completion_response(
        self, response: Any, request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        calls = [_tool_call(call) for call in response.message.tool_calls or []]
        text = response.message.content or ""
        finish = (
            "tool_calls" if calls else FINISH_REASONS.get(response.done_reason or "stop", "stop")
        )
        if finish == "stop":
            check_json_output(text, request.response_format, self.name)
        message = ResponseMessage(
            content=(text or None) if calls else text, tool_calls=calls or None
        )
        return ChatCompletion(
            model=model.name,
            choices=[Choice(message=message, finish_reason=finish)],
            usage=_usage(response),
        )

    def _stream_state(self, request: ChatCompletionRequest) -> StreamedAnswer:
        return StreamedAnswer(request, self.name)

    def _convert_completion_chunk_response(
        self, part: Any, chunks: ChunkStream, state: StreamedAnswer
    ) -> list[ChatCompletionChunk]:
        """Our chunks for one NDJSON line of Ollama's stream."""
        out = []
        if not state.started:
            state.started = True
            out.append(chunks.chunk(Delta(role="assistant", content="")))
        if part.message.content:
            out += state.content(part.message.content, chunks)
        for call in part.message.tool_calls or []:
            block = len(state.calls)
            head = state.calls.start(block, _call_id(), call.function.name)
            arguments = state.calls.arguments(block, json.dumps(call.function.arguments))
            out.append(chunks.chunk(Delta(tool_calls=[head])))
            out.append(chunks.chunk(Delta(tool_calls=[arguments])))
        if part.done:
            finish = (
                "tool_calls"
                if len(state.calls)
                else FINISH_REASONS.get(part.done_reason or "stop", "stop")
            )
            state.usage = _usage(part)
            out += state.finish(finish, chunks)
        return out

    # ----------------------------------------------------------------- embeddings

    async def _convert_embedding_params(
        self, request: EmbeddingRequest, model: ModelConfig
    ) -> dict[str, Any]:
        return {
            "model": model.upstream_id,
            "input": request.texts(),
            "dimensions": request.dimensions,
        }

    async def _create_embedding(self, params: dict[str, Any], model: ModelConfig) -> Any:
        return await self._client.embed(**params)

    def _convert_embedding_response(
        self, response: Any, request: EmbeddingRequest, model: ModelConfig
    ) -> EmbeddingResponse:
        data = [
            Embedding(index=i, embedding=encode_embedding(list(vector), request.encoding_format))
            for i, vector in enumerate(response.embeddings)
        ]
        tokens = response.prompt_eval_count or 0
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return EmbeddingResponse(data=data, model=model.name, usage=usage)

    # ----------------------------------------------------------------- discovery

    async def discover(self) -> list[ModelConfig]:
        """The installed models (`/api/tags`), each with its context window and capabilities."""
        try:
            listing = await asyncio.wait_for(self._client.list(), 10)
            shown = await asyncio.gather(
                *(asyncio.wait_for(self._client.show(m.model), 10) for m in listing.models)
            )
        except Exception as exc:
            raise self._convert_error(exc) from exc
        return [
            _model_config(self.name, m.model or "", s)
            for m, s in zip(listing.models, shown, strict=True)
        ]

    async def _probe(self) -> bool:
        """The installed models' list (`/api/tags`), without showing each."""
        await self._client.list()
        return True

    # ----------------------------------------------------------------- errors

    def _convert_error(self, exc: Exception) -> GatewayError:
        """The taxonomy error for anything the SDK or the transport raised."""
        if isinstance(exc, GatewayError):
            return exc
        if isinstance(exc, _StatusError):
            return upstream_error(self.name, exc.status, exc.message, headers=exc.headers)
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code < 400:
                # An error line inside a 200 stream carries no status.
                return stream_error(self.name, str(exc.error))
            return upstream_error(self.name, exc.status_code, str(exc.error))
        if isinstance(exc, httpx.TimeoutException):
            return timeout_error(self.name)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return cut_error(self.name)
        if isinstance(exc, (ConnectionError, httpx.TransportError)):
            return connection_error(self.name, exc)
        if isinstance(exc, (ValueError, pydantic.ValidationError)):
            return malformed_error(self.name, str(exc))
        raise exc


class _StatusError(Exception):
    """An HTTP failure with its headers: ollama's ResponseError keeps only status and text."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


async def _raise_with_headers(response: httpx.Response) -> None:
    # An httpx response hook runs before ollama's raise_for_status, so Retry-After survives.
    if response.status_code < 300:
        return
    body = await response.aread()
    try:
        message = json.loads(body).get("error") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    raise _StatusError(response.status_code, str(message), dict(response.headers))


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _tool_call(call: Any) -> ToolCall:
    return ToolCall(
        id=_call_id(),
        function=FunctionCall(
            name=call.function.name, arguments=json.dumps(call.function.arguments)
        ),
    )


def _usage(response: Any) -> Usage:
    return Usage.of(response.prompt_eval_count or 0, response.eval_count or 0)


def _model_config(provider: str, name: str, shown: Any) -> ModelConfig:
    info = shown.modelinfo or {}
    context = next((int(v) for k, v in info.items() if k.endswith(".context_length") and v), 8192)
    capabilities: list[str] = []
    for capability in shown.capabilities or ["completion"]:
        for ours in CAPABILITIES.get(capability, []):
            if ours not in capabilities:
                capabilities.append(ours)
    chat = "chat" in capabilities
    return ModelConfig(
        name=name.removesuffix(":latest"),
        provider=provider,
        upstream=name,
        capabilities=capabilities or ["chat", "streaming"],
        context_window=context,
        max_output_tokens=min(context, 8192),
        use_cases=["chat", "summarization", "classification", "extraction"] if chat else [],
    )
