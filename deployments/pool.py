"""Provider pools: one Serve deployment per provider type, each scaled on its own.

A pool holds one adapter (one pooled SDK client) per configured provider of its type and
returns framed results, so the ingress forwards bytes without re-parsing them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.exceptions import RayActorError, RayTaskError

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import GatewayError, ServiceUnavailableError
from gateway.pipeline.upstream import ByProviderType, LocalUpstream, Upstream
from gateway.providers.framing import Completed, StreamItem
from gateway.wire import ChatCompletionRequest, EmbeddingRequest


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
class ProviderPool:
    """The adapters of one provider type, behind a deployment handle."""

    def __init__(self, provider_type: str) -> None:
        self.provider_type = provider_type
        self.upstream = LocalUpstream()

    async def complete(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> Completed:
        return await self.upstream.complete(provider, request, model)

    async def stream(
        self, provider: ProviderConfig, request: ChatCompletionRequest, model: ModelConfig
    ) -> AsyncIterator[StreamItem]:
        async for item in self.upstream.stream(provider, request, model):
            yield item

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed:
        return await self.upstream.embed(provider, request, model)

    async def discover(self, provider: ProviderConfig) -> list[ModelConfig]:
        return await self.upstream.adapter(provider).discover()


def unwrap(error: BaseException) -> BaseException:
    """The gateway error a pool raised, out of Ray's wrapper; a dead pool is a 503."""
    if isinstance(error, RayTaskError):
        cause = getattr(error, "cause", None)
        if isinstance(cause, GatewayError):
            return cause
    if isinstance(error, RayActorError):
        return ServiceUnavailableError(f"provider pool unavailable: {error}")
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
        except (RayTaskError, RayActorError) as error:
            raise unwrap(error) from None

    async def embed(
        self, provider: ProviderConfig, request: EmbeddingRequest, model: ModelConfig
    ) -> Completed:
        try:
            return await self._pool(provider).embed.remote(provider, request, model)
        except (RayTaskError, RayActorError) as error:
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
    except (RayTaskError, RayActorError) as error:
        done = True
        raise unwrap(error) from None
    finally:
        if not done:
            response.cancel()
