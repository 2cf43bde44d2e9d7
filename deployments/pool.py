"""Provider pools: one Serve deployment per provider type, each scaled on its own.

A pool holds one adapter (one pooled SDK client) per configured provider of its type and
returns framed results, so the ingress forwards bytes without re-parsing them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ray import serve
from ray.exceptions import OutOfMemoryError, RayActorError, RayError, RayTaskError
from ray.exceptions import TaskCancelledError as RayTaskCancelledError
from ray.serve.exceptions import BackPressureError, RayServeException

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import GatewayError, ServiceUnavailableError
from gateway.observability.metrics import metrics
from gateway.pipeline.invoker import CANCELLED
from gateway.pipeline.upstream import ByProviderType, LocalUpstream, Upstream
from gateway.providers.framing import Completed, StreamItem
from gateway.wire import ChatCompletionRequest, EmbeddingRequest


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
class ProviderPool:
    """The adapters of one provider type, behind a deployment handle."""

    def __init__(self, provider_type: str) -> None:
        self.provider_type = provider_type
        self.upstream = LocalUpstream()
        self.ongoing = 0  # calls accepted and not yet answered: the pool's queue depth

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.ongoing += 1
        metrics().pool_queue(self.provider_type, self.ongoing)
        try:
            yield
        finally:
            self.ongoing -= 1
            metrics().pool_queue(self.provider_type, self.ongoing)

    # Each method re-raises a gateway error `from None`: Serve logs a failed call's traceback,
    # and the SDK exception chained to it carries the upstream's raw text (which may echo
    # credentials), unredacted; the caller never receives the chain anyway.

    async def complete(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> Completed:
        try:
            with self._counted():
                return await self.upstream.complete(provider, request, model)
        except GatewayError as error:
            raise error from None

    async def stream(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[StreamItem]:
        try:
            with self._counted():
                async for item in self.upstream.stream(provider, request, model):
                    yield item
        except GatewayError as error:
            raise error from None

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed:
        try:
            with self._counted():
                return await self.upstream.embed(provider, request, model)
        except GatewayError as error:
            raise error from None


# What a handle call can raise besides the callee's own exception.
RAY_ERRORS = (RayError, RayServeException)


def unwrap(error: BaseException) -> BaseException:
    """The gateway error a pool raised, out of Ray's wrapper; Ray's own trouble (a dead or
    overloaded pool, memory pressure) is a 503 that falls back to another candidate, and a
    cancelled call a 503 that does not."""
    if isinstance(error, RayTaskError):
        cause = getattr(error, "cause", None)
        if isinstance(cause, GatewayError):
            return cause
        if isinstance(cause, RAY_ERRORS):
            return unwrap(cause)
        return error
    if isinstance(error, BackPressureError):
        return ServiceUnavailableError(
            "the provider pool is at capacity (too many queued requests)",
            code="pool_at_capacity",
            retry_after=error.retry_after_s or 1.0,
        )
    if isinstance(error, RayTaskCancelledError):
        return ServiceUnavailableError("the provider call was cancelled", code=CANCELLED)
    if isinstance(error, RayActorError):
        return ServiceUnavailableError(f"provider pool unavailable: {error}")
    if isinstance(error, OutOfMemoryError):
        return ServiceUnavailableError("the provider pool ran out of memory", code="pool_oom")
    if isinstance(error, RAY_ERRORS):
        return ServiceUnavailableError(f"provider pool unavailable: {type(error).__name__}")
    return error


def replica_upstream(pools: dict[str, Any], inline: list[str]) -> Upstream:
    """What a replica calls providers through: its own adapters for the inline types, the
    pools' handles for the rest."""
    if not inline:
        return PoolUpstream(pools)
    local = LocalUpstream()
    return ByProviderType(PoolUpstream(pools), {kind: local for kind in inline})


class PoolUpstream:
    """The `Upstream` the ingress uses: one handle hop to the pool of the provider's type."""

    def __init__(self, pools: dict[str, Any]) -> None:
        self._pools = pools
        self._streams = {kind: handle.options(stream=True) for kind, handle in pools.items()}

    def _pool(self, provider: ProviderConfig, streams: bool = False) -> Any:
        handles = self._streams if streams else self._pools
        try:
            return handles[provider.type]
        except KeyError:
            raise ServiceUnavailableError(
                f"no pool is deployed for provider type '{provider.type}' "
                f"(provider '{provider.name}'); redeploy with it in the config"
            ) from None

    async def complete(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> Completed:
        try:
            return await self._pool(provider).complete.remote(provider, request, model)
        except RAY_ERRORS as error:
            raise unwrap(error) from None

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed:
        try:
            return await self._pool(provider).embed.remote(provider, request, model)
        except RAY_ERRORS as error:
            raise unwrap(error) from None

    def stream(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[StreamItem]:
        return relay(self._pool(provider, streams=True).stream.remote(provider, request, model))


async def relay(response: Any) -> AsyncIterator[Any]:
    """The items of a streaming handle call, with Ray's errors unwrapped; closing it early
    (the client left, a timeout fired) cancels the call downstream too."""
    done = False
    try:
        async for item in response:
            yield item
        done = True
    except RAY_ERRORS as error:
        done = True
        raise unwrap(error) from None
    finally:
        if not done:
            response.cancel()
