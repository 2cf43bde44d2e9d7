"""How the invoke step reaches a provider: in-process adapters, or a pool deployment's handle.

Every call to a model is one `UpstreamCall`, and every upstream answers it through the same
two entry points (`send` for a finished answer, `stream` for a stream), returning the same
framed results; the pipeline does not know (or care) whether a hop was taken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson
from pydantic import ValidationError

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import InvalidRequestError
from gateway.providers import build_provider
from gateway.providers.base import Provider
from gateway.providers.deadline import Budget
from gateway.providers.framing import (
    Completed,
    StreamItem,
    complete_framed,
    embed_framed,
    stream_framed,
)
from gateway.wire import ChatCompletionRequest, EmbeddingRequest, dump

CallKind = Literal["complete", "stream", "embed"]
Request = ChatCompletionRequest | EmbeddingRequest

# A call made without naming the registry version it was planned on: the pool uses the
# newest it holds.
LATEST = -1


def parse_request(kind: CallKind, body: bytes) -> Request:
    """Request bytes that crossed a hop, as our type, by the ingress's own parser (orjson,
    then the model): the bytes it accepted parse the same, twice as fast as pydantic's JSON
    mode."""
    cls = EmbeddingRequest if kind == "embed" else ChatCompletionRequest
    try:
        return cls.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        # Bytes only a caller that skipped validation could send: the request's fault, not
        # the model's (a 400, no fallback).
        raise InvalidRequestError(f"invalid request body ({type(exc).__name__})") from None


@dataclass(slots=True, eq=False)
class UpstreamCall:
    """One call to one model. Across a hop it is six plain values (kind, provider and model
    names, the registry version they were planned on, the request's JSON bytes, the time the
    invoker gave it); the parsed request and both configs stay in the process that has them.
    """

    kind: CallKind
    provider: str
    model: str
    version: int = LATEST
    body: bytes | None = None  # the request as JSON, made from `request` when first needed
    budget: Budget | None = None  # the invoker's; None: the model's own timeouts
    request: Request | None = None
    provider_config: ProviderConfig | None = None
    model_config: ModelConfig | None = None

    @classmethod
    def planned(
        cls,
        kind: CallKind,
        provider: ProviderConfig,
        model: ModelConfig,
        request: Request,
        version: int = LATEST,
        body: bytes | None = None,
        budget: Budget | None = None,
    ) -> UpstreamCall:
        """A call as the invoker makes it: configs and parsed request in hand, plus the
        client's own bytes when they are the request as validated (saves a dump)."""
        return cls(kind, provider.name, model.name, version, body, budget, request, provider, model)

    def __reduce__(self) -> tuple[type[UpstreamCall], tuple[object, ...]]:
        # What crosses a hop: no pydantic objects to walk on either side.
        fields = (self.kind, self.provider, self.model, self.version, self.wire(), self.budget)
        return (UpstreamCall, fields)

    def wire(self) -> bytes:
        """The request as JSON bytes."""
        if self.body is None:
            assert self.request is not None, "an UpstreamCall needs a body or a request"
            self.body = dump(self.request)
        return self.body

    def parsed(self) -> Request:
        """The request as our type, parsed from the bytes once if it came across a hop."""
        if self.request is None:
            self.request = parse_request(self.kind, self.wire())
        return self.request

    def resolve(
        self, providers: Mapping[str, ProviderConfig], models: Mapping[str, ModelConfig]
    ) -> bool:
        """Fill in both configs from a registry snapshot's; False if it lacks either."""
        provider, model = providers.get(self.provider), models.get(self.model)
        if provider is None or model is None or model.provider != provider.name:
            return False
        self.provider_config, self.model_config = provider, model
        return True


class Upstream(Protocol):
    """The provider side of an invocation."""

    async def send(self, call: UpstreamCall) -> Completed: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]: ...


class LocalUpstream:
    """Adapters in this process, one per configured provider, rebuilt if its config changes."""

    def __init__(self) -> None:
        self._adapters: dict[str, tuple[ProviderConfig, Provider]] = {}

    def adapter(self, config: ProviderConfig) -> Provider:
        held = self._adapters.get(config.name)
        if held is not None and (held[0] is config or held[0] == config):
            return held[1]
        adapter = build_provider(config)
        self._adapters[config.name] = (config, adapter)
        return adapter

    def _parts(self, call: UpstreamCall) -> tuple[Provider, ModelConfig, Request]:
        assert call.provider_config is not None and call.model_config is not None, (
            "an UpstreamCall reaches adapters with its configs resolved"
        )
        return self.adapter(call.provider_config), call.model_config, call.parsed()

    async def send(self, call: UpstreamCall) -> Completed:
        adapter, model, request = self._parts(call)
        if call.kind == "embed":
            assert isinstance(request, EmbeddingRequest)
            return await embed_framed(adapter, request, model, call.budget)
        assert isinstance(request, ChatCompletionRequest)
        return await complete_framed(adapter, request, model, call.budget)

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]:
        adapter, model, request = self._parts(call)
        assert isinstance(request, ChatCompletionRequest)
        return stream_framed(adapter, request, model, call.budget)

    async def aclose(self) -> None:
        for _, adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()


class ByProviderType:
    """Each provider type to its own `Upstream`: in-process adapters for some, pools for the
    rest (`server.inline_providers`)."""

    def __init__(self, default: Upstream, overrides: dict[str, Upstream]) -> None:
        self._default = default
        self._overrides = overrides

    def _for(self, call: UpstreamCall) -> Upstream:
        config = call.provider_config
        return self._overrides.get(config.type, self._default) if config else self._default

    async def send(self, call: UpstreamCall) -> Completed:
        return await self._for(call).send(call)

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]:
        return self._for(call).stream(call)
