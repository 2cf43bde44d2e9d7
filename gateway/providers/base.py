"""What every provider adapter is: a class that declares what it supports, over one SDK client.

An adapter converts our request to its SDK's call, the SDK's response to ours, and each SDK
stream event to our chunk. It raises only `gateway.errors` classes. It never retries: the
gateway retries once, centrally. One instance per provider per replica holds one pooled client.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import InvalidRequestError
from gateway.providers.native import check_translatable
from gateway.providers.support import needs_of, refusal
from gateway.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
    completion_id,
)


class Provider(ABC):
    """One configured upstream of one type; subclasses set `type`, `supports` and `refuses`
    from the type's row in `gateway.providers.support.SUPPORT` (routing reads the same row)."""

    type: ClassVar[str]
    supports: ClassVar[frozenset[str]] = frozenset({"chat", "streaming"})
    # Request parameters the upstream cannot honour: a 400 naming them, never a silent drop.
    refuses: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    @abstractmethod
    async def complete(self, request: ChatCompletionRequest, model: ModelConfig) -> ChatCompletion:
        """One non-streaming chat completion."""

    @abstractmethod
    def stream(
        self, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[ChatCompletionChunk]:
        """A streaming chat completion; the last chunk carries usage and no choices."""

    async def embed(self, request: EmbeddingRequest, model: ModelConfig) -> EmbeddingResponse:
        raise InvalidRequestError(
            f"model '{model.name}' at provider '{self.name}' does not create embeddings",
            param="model",
        )

    async def discover(self) -> list[ModelConfig]:
        """Models the upstream reports as installed (Ollama); most providers report none."""
        return []

    async def probe(self) -> bool:
        """The cheapest call that proves the upstream answers (a model list); raises the
        taxonomy's error if it does not. False: this provider has nothing to ask (the sim)."""
        return False

    async def aclose(self) -> None:  # noqa: B027 - adapters without a client have nothing to close
        """Close the pooled client."""

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        """Refuse parameters this provider or model cannot honour, naming the parameter."""
        check_translatable(request, self.type)
        needs = needs_of(request)
        refused = needs.params & self.refuses
        if refused:
            raise refusal(min(refused), self.type)
        if "tools" in needs.capabilities and "tools" not in model.capabilities:
            raise InvalidRequestError(f"model '{model.name}' does not support tools", param="tools")


@dataclass
class ChunkStream:
    """Builds the chunks of one streamed completion with a shared id, time and model name."""

    model: str
    id: str = field(default_factory=completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def chunk(self, delta: Delta, finish_reason: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
        )

    def usage(self, usage: Usage) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=[], usage=usage
        )
