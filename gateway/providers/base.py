"""What every provider adapter is: a class that declares what it supports, over one SDK client.

The base class drives every call and the adapter fills named hooks, so an adapter reads like
any other line for line (as mozilla-ai/any-llm's converters do):

    check -> _convert_completion_params -> _create_completion -> _convert_completion_response
    check -> _convert_completion_params -> _create_stream -> _convert_completion_chunk_response
          for each event -> _stream_done (else the stream was cut) -> the usage chunk

Declared support is enforced here before any call; time budgets, error mapping (through the
adapter's `_convert_error`) and "when is a stream complete" exist once, here. An adapter
raises only `gateway.errors` classes and never retries: the gateway retries once, centrally.
One instance per provider per replica holds one pooled client.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, ClassVar

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import GatewayError, InvalidRequestError
from gateway.providers.deadline import Budget, Deadline
from gateway.providers.native import check_translatable
from gateway.providers.schemas import check_output_schema
from gateway.providers.streams import ChunkStream, StreamState
from gateway.providers.support import EMBEDDING_NEEDS, RequestNeeds, needs_of, refusal
from gateway.providers.upstream_errors import cut_error
from gateway.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)

__all__ = ["ChunkStream", "Provider", "StreamState"]

# A capability a request needs and a model (or its provider type) lacks: the 400's words.
_LACKING = {
    "tools": ("model '{model}' does not support tools", "tools"),
    "vision": ("model '{model}' does not accept images; send text only", "messages"),
    "json_mode": ("model '{model}' does not support response_format '{format}'", "response_format"),
    "embeddings": ("model '{model}' at provider '{provider}' does not create embeddings", "model"),
}


class Provider(ABC):
    """One configured upstream of one type; subclasses set `type`, `supports` and `refuses`
    from the type's row in `gateway.providers.support.SUPPORT` (routing reads the same row)
    and fill the hooks below."""

    type: ClassVar[str]
    supports: ClassVar[frozenset[str]] = frozenset({"chat", "streaming"})
    # Request parameters the upstream cannot honour: a 400 naming them, never a silent drop.
    refuses: ClassVar[frozenset[str]] = frozenset()
    # The capabilities a model must declare to be sent a request that needs them.
    model_checked: ClassVar[frozenset[str]] = frozenset(_LACKING)

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    # ----------------------------------------------------------------- the template

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        """Refuse what this provider or model cannot honour, naming the parameter."""
        check_translatable(request, self.type)
        needs = needs_of(request)
        refused = needs.params & self.refuses
        if refused:
            raise refusal(min(refused), self.type)
        self._check_declared(needs, request, model)

    async def complete(
        self, request: ChatCompletionRequest, model: ModelConfig, budget: Budget | None = None
    ) -> ChatCompletion:
        """One non-streaming chat completion, within `budget` (the invoker's; else the model's
        timeouts)."""
        self.check(request, model)
        deadline = self._deadline(model, budget)
        try:
            params = await self._convert_completion_params(request, model, stream=False)
            response = await deadline.run(self._create_completion(params, model))
            return self._convert_completion_response(response, request, model)
        except Exception as exc:
            raise self._convert_error(exc) from exc

    async def stream(
        self, request: ChatCompletionRequest, model: ModelConfig, budget: Budget | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        """A streaming chat completion; the last chunk carries usage and no choices. A stream
        that ends without the upstream's completion signal is an error, not a short answer."""
        self.check(request, model)
        deadline = self._deadline(model, budget)
        chunks = ChunkStream(model.name)
        state = self._stream_state(request)
        try:
            params = await self._convert_completion_params(request, model, stream=True)
            upstream = await deadline.first(self._create_stream(params, model))
            try:
                async with aclosing(deadline.events(upstream.__aiter__())) as events:
                    async for event in events:
                        for chunk in self._convert_completion_chunk_response(event, chunks, state):
                            yield chunk
            finally:
                # A consumer that stops early (a client gone) releases the connection now.
                await self._close_stream(upstream)
        except Exception as exc:
            raise self._convert_error(exc) from exc
        if not self._stream_done(state):
            raise cut_error(self.name)
        yield chunks.usage(state.final_usage())

    async def embed(
        self, request: EmbeddingRequest, model: ModelConfig, budget: Budget | None = None
    ) -> EmbeddingResponse:
        """Embeddings of the request's inputs."""
        self._check_declared(EMBEDDING_NEEDS, None, model)
        deadline = self._deadline(model, budget)
        try:
            params = await self._convert_embedding_params(request, model)
            response = await deadline.run(self._create_embedding(params, model))
            return self._convert_embedding_response(response, request, model)
        except Exception as exc:
            raise self._convert_error(exc) from exc

    async def probe(self) -> bool:
        """The cheapest call that proves the upstream answers (a model list); raises the
        taxonomy's error if it does not. False: this provider has nothing to ask (the sim)."""
        try:
            return await self._probe()
        except Exception as exc:
            raise self._convert_error(exc) from exc

    async def discover(self) -> list[ModelConfig]:
        """Models the upstream reports as installed (Ollama); most providers report none."""
        return []

    async def aclose(self) -> None:  # noqa: B027 - adapters without a client have nothing to close
        """Close the pooled client."""

    def _check_declared(
        self, needs: RequestNeeds, request: ChatCompletionRequest | None, model: ModelConfig
    ) -> None:
        """Each capability the request needs, declared by this provider type and (for those in
        `model_checked`) by the model; then the output schema, if one is sent."""
        for capability in sorted(needs.capabilities):
            declared = capability in self.supports and (
                capability not in self.model_checked or capability in model.capabilities
            )
            if not declared:
                template, param = _LACKING.get(
                    capability,
                    (f"provider type '{self.type}' does not serve {capability}", "model"),
                )
                fmt = request.response_format if request is not None else None
                message = template.format(
                    model=model.name, provider=self.name, format=fmt.type if fmt else ""
                )
                raise InvalidRequestError(message, param=param)
        if request is not None and "json_mode" in self.model_checked:
            check_output_schema(request.response_format)

    # ----------------------------------------------------------------- hooks: chat

    @abstractmethod
    async def _convert_completion_params(
        self, request: ChatCompletionRequest, model: ModelConfig, *, stream: bool
    ) -> Any:
        """Our request as the SDK call's arguments."""

    @abstractmethod
    async def _create_completion(self, params: Any, model: ModelConfig) -> Any:
        """The SDK's non-streaming call."""

    @abstractmethod
    def _convert_completion_response(
        self, response: Any, request: ChatCompletionRequest, model: ModelConfig
    ) -> ChatCompletion:
        """The SDK's answer as ours, with our model name; JSON-mode answers checked."""

    @abstractmethod
    async def _create_stream(self, params: Any, model: ModelConfig) -> Any:
        """The SDK's streaming call, opened: an async iterable of the upstream's events."""

    def _stream_state(self, request: ChatCompletionRequest) -> StreamState:
        """What this adapter tracks while it reads one stream."""
        return StreamState(request, self.name)

    @abstractmethod
    def _convert_completion_chunk_response(
        self, event: Any, chunks: ChunkStream, state: StreamState
    ) -> list[ChatCompletionChunk]:
        """Our chunks for one upstream event; sets `state.finished` on the completion signal."""

    def _stream_done(self, state: StreamState) -> bool:
        """Whether the stream ended complete: the upstream's completion signal and its usage."""
        return state.finished and state.usage is not None

    async def _close_stream(self, upstream: Any) -> None:
        """Release an opened stream's connection (an async generator's `aclose` by default)."""
        await upstream.aclose()

    # ----------------------------------------------------------------- hooks: the rest

    async def _convert_embedding_params(self, request: EmbeddingRequest, model: ModelConfig) -> Any:
        """Our embedding request as the SDK call's arguments."""
        raise NotImplementedError

    async def _create_embedding(self, params: Any, model: ModelConfig) -> Any:
        """The SDK's embedding call."""
        raise NotImplementedError

    def _convert_embedding_response(
        self, response: Any, request: EmbeddingRequest, model: ModelConfig
    ) -> EmbeddingResponse:
        """The SDK's embeddings as ours, in the encoding the client asked for."""
        raise NotImplementedError

    async def _probe(self) -> bool:
        """The cheapest upstream call; False when there is nothing to ask."""
        return False

    def _deadline(self, model: ModelConfig, budget: Budget | None) -> Deadline:
        """The budget every upstream call and stream read of one call runs in."""
        return Deadline(budget or model.timeouts, self.name)

    def _convert_error(self, exc: Exception) -> GatewayError:
        """The taxonomy error for anything the SDK or its transport raised."""
        if isinstance(exc, GatewayError):
            return exc
        raise exc
