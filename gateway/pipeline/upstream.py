"""How the invoke step reaches a provider: in-process adapters, or a pool deployment's handle.

Both speak the same three calls and return the same framed results, so the pipeline does not
know (or care) whether a hop was taken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.config import ModelConfig, ProviderConfig
from gateway.providers import build_provider
from gateway.providers.base import Provider
from gateway.providers.framing import (
    Completed,
    StreamItem,
    complete_framed,
    embed_framed,
    stream_framed,
)
from gateway.wire import ChatCompletionRequest, EmbeddingRequest


class Upstream(Protocol):
    """The provider side of an invocation."""

    async def complete(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> Completed: ...

    def stream(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[StreamItem]: ...

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed: ...


class LocalUpstream:
    """Adapters in this process, one per configured provider, rebuilt if its config changes."""

    def __init__(self) -> None:
        self._adapters: dict[str, tuple[ProviderConfig, Provider]] = {}

    def adapter(self, config: ProviderConfig) -> Provider:
        held = self._adapters.get(config.name)
        if held is not None and held[0] == config:
            return held[1]
        adapter = build_provider(config)
        self._adapters[config.name] = (config, adapter)
        return adapter

    async def complete(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> Completed:
        return await complete_framed(self.adapter(provider), request, model)

    def stream(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[StreamItem]:
        return stream_framed(self.adapter(provider), request, model)

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed:
        return await embed_framed(self.adapter(provider), request, model)

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

    def _for(self, provider: ProviderConfig) -> Upstream:
        return self._overrides.get(provider.type, self._default)

    async def complete(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> Completed:
        return await self._for(provider).complete(provider, request, model)

    def stream(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[StreamItem]:
        return self._for(provider).stream(provider, request, model)

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed:
        return await self._for(provider).embed(provider, request, model)
