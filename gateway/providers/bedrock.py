"""Amazon Bedrock through boto3's `bedrock-runtime`: Converse, ConverseStream, InvokeModel.

boto3 blocks, so every call and every read of the event stream runs in a bounded thread pool
owned by this provider instance; the event loop never waits on a socket. Credentials come from
the standard chain (env, profile, SSO, role) and requests are SigV4-signed by botocore.

System and developer messages become `system` blocks; tool calls and results become `toolUse` /
`toolResult` blocks (consecutive results in one user turn, as roles must alternate); images go
as bytes (http URLs are fetched). `json_schema` output is native (`outputConfig.textFormat`);
`json_object` is emulated with an instruction in `system` and the answer checked, as for
Anthropic (a streamed emulated answer is sent whole once checked). Signed reasoning
(`reasoningContent`) travels as `thinking_blocks`, as for Anthropic.
Embeddings: Titan (one text per InvokeModel call, in parallel) and Cohere (one call).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import boto3
import botocore.eventstream
import botocore.exceptions
import botocore.parsers
import urllib3.exceptions
from botocore.config import Config

from gateway.config import ConfigError, ModelConfig, ProviderConfig
from gateway.errors import GatewayError, InvalidRequestError, UpstreamError
from gateway.providers.base import ChunkStream, Provider
from gateway.providers.bedrock_embeddings import family_for, invoke
from gateway.providers.blocking import BlockingPool, gather_bounded
from gateway.providers.images import ImageFetcher, check_image_count
from gateway.providers.mapping import (
    JSON_INSTRUCTION,
    THINKING_FIELD,
    Deadline,
    StreamedAnswer,
    check_capabilities,
    check_json_output,
    connection_error,
    cut_error,
    encode_embedding,
    malformed_error,
    merge_turns,
    refuse,
    thinking_blocks_of,
    timeout_error,
    tool_arguments,
    unfenced,
    upstream_error,
    wants_json_object,
)
from gateway.providers.support import SUPPORT
from gateway.wire import (
    MAX_EMBEDDING_INPUTS,
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
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    text_of,
)

T = TypeVar("T")

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Stop reasons that mean the answer is unusable.
FAILED_STOPS = {"malformed_model_output", "malformed_tool_use"}

# Bedrock's error codes (HTTP and in-stream exceptions) -> the status they stand for.
ERROR_STATUS = {
    "validationexception": 400,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 403,
    "expiredtokenexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "throttlingexception": 429,
    "modelnotreadyexception": 429,
    "servicequotaexceededexception": 429,
    "internalserverexception": 500,
    "modelerrorexception": 502,
    "modelstreamerrorexception": 502,
    "serviceunavailableexception": 503,
}

MAX_THREADS = 64
# Calls waiting for a thread, per thread, before new calls are refused with a 503.
BACKLOG_PER_THREAD = 2
# Titan embeds one text per call: how many of a request's calls run at once (the texts are
# capped at the wire's MAX_EMBEDDING_INPUTS, checked again here for any other caller).
EMBEDDING_CALLS_IN_FLIGHT = 16


class BedrockProvider(Provider):
    """Foundation models on Amazon Bedrock, through the Converse API."""

    type = "bedrock"
    supports = SUPPORT["bedrock"].capabilities
    refuses = SUPPORT["bedrock"].refuses

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._session = boto3.session.Session(region_name=config.region)
        if not self._session.region_name:
            raise ConfigError(
                f"provider '{config.name}' region: expected an AWS region in the config or "
                "AWS_REGION / AWS_DEFAULT_REGION in the environment"
            )
        self.threads = min(config.max_connections, MAX_THREADS)
        self._pool = BlockingPool(
            self.threads,
            backlog=self.threads * BACKLOG_PER_THREAD,
            name=f"bedrock-{config.name}",
            provider=config.name,
        )
        # One botocore client per distinct (connect, read) timeout pair; usually exactly one.
        self._clients: dict[tuple[float, float], Any] = {}
        self._clients_lock = threading.Lock()
        self.images = ImageFetcher()

    async def aclose(self) -> None:
        await self.images.aclose()
        self._pool.shutdown()

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        super().check(request, model)
        check_capabilities(request, model)
        check_image_count(request)
        if request.tool_choice == "none" and _has_tool_blocks(request):
            raise refuse(
                "tool_choice",
                self.type,
                "'none' cannot be honoured in a conversation that already used tools",
            )

    # ----------------------------------------------------------------- threads

    def _client(self, model: ModelConfig) -> Any:
        key = (model.timeouts.connect_s, model.timeouts.total_s)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    "bedrock-runtime",
                    endpoint_url=self.config.endpoint_url,
                    config=Config(
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        connect_timeout=key[0],
                        read_timeout=key[1],
                        max_pool_connections=self.threads,
                        tcp_keepalive=True,
                        user_agent_extra="llmgw",
                    ),
                )
            return self._clients[key]

    async def _off_loop(
        self, deadline: Deadline, call: Callable[[], T], *, opens_stream: bool = False
    ) -> T:
        """Run a blocking boto3 call in this provider's pool, within the call's time budget.

        Past the budget the call is abandoned: not started if still queued; if running, its
        thread is freed only when boto3 returns (nothing interrupts it), and a stream it opens
        then is closed at once.
        """
        if not opens_stream:
            return await deadline.run(self._pool.submit(call))
        opening = _StreamOpening(call)
        try:
            return await deadline.first(self._pool.submit(opening.open))
        except BaseException:
            opening.abandon()
            raise

    async def _events(self, stream: Any) -> AsyncIterator[dict[str, Any]]:
        """The ConverseStream events, each read in the pool; the stream is closed at the end."""
        events = iter(stream)
        try:
            while True:
                event = await self._pool.submit(next, events, None, admit=False)
                if event is None:
                    return
                yield event
        finally:
            # Closing the socket also frees a pool thread still blocked reading it.
            stream.close()

    # ----------------------------------------------------------------- request -> SDK call

    async def _params(self, request: ChatCompletionRequest, model: ModelConfig) -> dict[str, Any]:
        system = [
            {"text": text_of(m.content)}
            for m in request.messages
            if isinstance(m, SystemMessage) and text_of(m.content).strip()
        ]
        turns = [await self._turn(m) for m in request.messages if not isinstance(m, SystemMessage)]
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
        tool_config = self._tool_config(request)
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

    async def _turn(self, message: Any) -> dict[str, Any]:
        if isinstance(message, ToolMessage):
            result = {
                "toolUseId": message.tool_call_id,
                "content": [{"text": text_of(message.content) or "(empty)"}],
            }
            return {"role": "user", "content": [{"toolResult": result}]}
        if isinstance(message, AssistantMessage):
            blocks: list[dict[str, Any]] = [
                _reasoning_block(b) for b in thinking_blocks_of(message)
            ]
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
        images = await self.images.fetch_all(
            [p.image_url.url for p in parts if isinstance(p, ImagePart)]
        )
        fetched = iter(images)
        blocks = []
        for part in parts:
            if isinstance(part, ImagePart):
                image = next(fetched)
                blocks.append({"image": {"format": image.format, "source": {"bytes": image.data}}})
            elif part.text.strip():
                blocks.append({"text": part.text})
        return {"role": "user", "content": blocks}

    @staticmethod
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

    # ----------------------------------------------------------------- chat

    async def complete(self, request: ChatCompletionRequest, model: ModelConfig) -> ChatCompletion:
        self.check(request, model)
        deadline = Deadline(model.timeouts, self.name)
        params = await self._params(request, model)
        client = self._client(model)
        try:
            response = await self._off_loop(deadline, functools.partial(client.converse, **params))
            return self._completion(response, request, model)
        except Exception as exc:
            raise self._error(exc) from exc

    def _completion(
        self, response: dict[str, Any], request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        try:
            blocks = response["output"]["message"]["content"]
            stop_reason = response["stopReason"]
            usage = _usage(response["usage"])
        except (KeyError, TypeError):
            raise malformed_error(self.name, "a Converse response without output") from None
        text, calls, thinking = "", [], []
        for block in blocks:
            if "text" in block:
                text += block["text"]
            elif "reasoningContent" in block:
                thinking.append(_thinking_block(block["reasoningContent"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                call = FunctionCall(name=use["name"], arguments=json.dumps(use["input"]))
                calls.append(ToolCall(id=use["toolUseId"], function=call))
        finish = self._finish(stop_reason)
        if wants_json_object(request):
            text = unfenced(text)
        if finish == "stop" and not calls:
            check_json_output(text, request.response_format, self.name)
        message = ResponseMessage(
            content=(text or None) if calls else text, tool_calls=calls or None
        )
        if thinking:
            setattr(message, THINKING_FIELD, thinking)
        return ChatCompletion(
            model=model.name, choices=[Choice(message=message, finish_reason=finish)], usage=usage
        )

    async def stream(
        self, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[ChatCompletionChunk]:
        self.check(request, model)
        deadline = Deadline(model.timeouts, self.name)
        params = await self._params(request, model)
        client = self._client(model)
        chunks = ChunkStream(model.name)
        state = _StreamState(request, self.name)
        try:
            response = await self._off_loop(
                deadline, functools.partial(client.converse_stream, **params), opens_stream=True
            )
            events = self._events(response["stream"])
            try:
                async for event in deadline.events(events):
                    for chunk in self._chunks(event, chunks, state):
                        yield chunk
            finally:
                await events.aclose()
        except Exception as exc:
            raise self._error(exc) from exc
        if state.usage is None or not state.finished:
            raise cut_error(self.name)
        yield chunks.usage(state.usage)

    def _chunks(
        self, event: dict[str, Any], chunks: ChunkStream, state: _StreamState
    ) -> list[ChatCompletionChunk]:
        """Our chunks for one ConverseStream event."""
        if "messageStart" in event:
            return [chunks.chunk(Delta(role="assistant", content=""))]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use is None:
                return []
            head = state.calls.start(start["contentBlockIndex"], use["toolUseId"], use["name"])
            return [chunks.chunk(Delta(tool_calls=[head]))]
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta, index = block["delta"], block["contentBlockIndex"]
            if "text" in delta:
                return state.content(delta["text"], chunks)
            if "reasoningContent" in delta:
                reasoning = state.thinking.setdefault(index, {})
                for key, value in delta["reasoningContent"].items():
                    reasoning[key] = reasoning.get(key, "") + value if key == "text" else value
                return []
            fragment = delta.get("toolUse", {}).get("input")
            if fragment is not None and index in state.calls:
                return [chunks.chunk(Delta(tool_calls=[state.calls.arguments(index, fragment)]))]
            return []
        if "contentBlockStop" in event:
            reasoning = state.thinking.pop(event["contentBlockStop"]["contentBlockIndex"], None)
            if reasoning is None:
                return []
            # Sent whole once signed, for the client to send back with a tool-use turn.
            block = _thinking_block(
                {"redactedContent": reasoning["redactedContent"]}
                if "redactedContent" in reasoning
                else {"reasoningText": reasoning}
            )
            return [chunks.chunk(Delta.model_validate({THINKING_FIELD: [block]}))]
        if "messageStop" in event:
            state.finished = True
            return state.finish(self._finish(event["messageStop"]["stopReason"]), chunks)
        if "metadata" in event:
            state.usage = _usage(event["metadata"]["usage"])
        return []

    def _finish(self, stop_reason: str) -> str:
        if stop_reason in FAILED_STOPS:
            raise UpstreamError(
                f"provider '{self.name}' stopped with '{stop_reason}': the model's output was "
                "unusable",
                provider=self.name,
                code=stop_reason,
            )
        return FINISH_REASONS.get(stop_reason, "stop")

    # ----------------------------------------------------------------- embeddings

    async def embed(self, request: EmbeddingRequest, model: ModelConfig) -> EmbeddingResponse:
        if "embeddings" not in model.capabilities:
            return await super().embed(request, model)
        family = family_for(model.upstream_id)
        if family is None:
            raise InvalidRequestError(
                f"model '{model.name}' ({model.upstream_id}) is not a Titan or Cohere embedding "
                "model",
                param="model",
            )
        texts = request.texts()
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise InvalidRequestError(
                f"'input' has {len(texts)} items; provider type '{self.type}' embeds at most "
                f"{MAX_EMBEDDING_INPUTS} per request",
                param="input",
            )
        bodies = family.bodies(texts, request.dimensions)
        deadline = Deadline(model.timeouts, self.name)
        call = functools.partial(invoke, self._client(model), model.upstream_id)
        try:
            answers = await gather_bounded(
                [
                    functools.partial(self._off_loop, deadline, functools.partial(call, body))
                    for body in bodies
                ],
                EMBEDDING_CALLS_IN_FLIGHT,
            )
            vectors, tokens = family.read(list(answers))
        except (KeyError, TypeError) as exc:
            raise malformed_error(self.name, f"an embedding response without {exc}") from None
        except Exception as exc:
            raise self._error(exc) from exc
        data = [
            Embedding(index=i, embedding=encode_embedding(v, request.encoding_format))
            for i, v in enumerate(vectors)
        ]
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return EmbeddingResponse(data=data, model=model.name, usage=usage)

    # ----------------------------------------------------------------- errors

    def _error(self, exc: Exception) -> GatewayError:
        """The taxonomy error for anything boto3, botocore or urllib3 raised."""
        if isinstance(exc, GatewayError):
            return exc
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            code = str(error.get("Code", ""))
            status = meta.get("HTTPStatusCode") or 0
            if status < 400:  # an exception inside a 200 event stream
                status = ERROR_STATUS.get(code.lower(), 502)
            message = error.get("Message") or code
            return upstream_error(
                self.name, status, message, headers=meta.get("HTTPHeaders"), upstream_type=code
            )
        if isinstance(
            exc,
            (
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ConnectTimeoutError,
                urllib3.exceptions.ReadTimeoutError,
            ),
        ):
            return timeout_error(self.name)
        if isinstance(
            exc,
            (
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ResponseStreamingError,
                urllib3.exceptions.ProtocolError,
            ),
        ):
            return cut_error(self.name)
        if isinstance(exc, botocore.exceptions.ParamValidationError):
            # botocore refused what we built from the client's request before sending it.
            return InvalidRequestError(
                f"the request cannot be sent to provider type '{self.type}': {exc}",
                param="messages",
            )
        if isinstance(exc, botocore.exceptions.ConnectionError):
            return connection_error(self.name, exc)
        if isinstance(
            exc,
            (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError),
        ):
            return UpstreamError(
                f"provider '{self.name}' has no AWS credentials: {exc}",
                provider=self.name,
                code="upstream_auth_failed",
            )
        if isinstance(
            exc,
            (
                botocore.parsers.ResponseParserError,
                botocore.eventstream.ParserError,
                ValueError,
            ),
        ):
            return malformed_error(self.name, str(exc))
        raise exc


class _StreamState(StreamedAnswer):
    """What a ConverseStream has shown so far."""

    def __init__(self, request: ChatCompletionRequest, provider: str) -> None:
        super().__init__(request, provider)
        self.buffering = wants_json_object(request)
        self.thinking: dict[int, dict[str, Any]] = {}
        self.finished = False
        self.usage: Usage | None = None


class _StreamOpening:
    """A ConverseStream being opened in a thread; one that opens after its caller gave up is
    closed at once, freeing its connection, instead of being left unread."""

    def __init__(self, call: Callable[[], dict[str, Any]]) -> None:
        self._call = call
        self._lock = threading.Lock()
        self._abandoned = False
        self._response: dict[str, Any] | None = None

    def open(self) -> dict[str, Any]:
        response = self._call()
        with self._lock:
            self._response = response
            abandoned = self._abandoned
        if abandoned:
            _close(response)
        return response

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            response = self._response
        if response is not None:
            _close(response)


def _close(response: dict[str, Any]) -> None:
    stream = response.get("stream")
    if stream is not None:
        stream.close()


def _has_tool_blocks(request: ChatCompletionRequest) -> bool:
    return any(
        isinstance(m, ToolMessage) or (isinstance(m, AssistantMessage) and m.tool_calls)
        for m in request.messages
    )


def _thinking_block(reasoning: dict[str, Any]) -> dict[str, Any]:
    """Bedrock's reasoningContent in the Anthropic shape `thinking_blocks` carry."""
    if "redactedContent" in reasoning:
        data = base64.b64encode(reasoning["redactedContent"]).decode()
        return {"type": "redacted_thinking", "data": data}
    text = reasoning.get("reasoningText", {})
    return {
        "type": "thinking",
        "thinking": text.get("text", ""),
        "signature": text.get("signature"),
    }


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


def _usage(usage: dict[str, Any]) -> Usage:
    """OpenAI usage from Bedrock's, whose `inputTokens` leave cache reads and writes out."""
    cached = usage.get("cacheReadInputTokens")
    written = usage.get("cacheWriteInputTokens") or 0
    prompt = usage.get("inputTokens", 0) + (cached or 0) + written
    return Usage.of(prompt, usage.get("outputTokens", 0), cached)
