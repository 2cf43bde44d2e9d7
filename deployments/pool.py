"""Provider pools: one Serve deployment per provider type, each scaled on its own.

A pool holds one adapter (one pooled SDK client) per configured provider of its type. A call
arrives as a lean `UpstreamCall` (names, registry version, request bytes); the pool looks both
configs up in the registry snapshot of that version and returns framed results (stream chunks
as ready SSE frames), so the ingress forwards bytes without re-parsing them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from ray import serve
from ray.exceptions import OutOfMemoryError, RayActorError, RayError, RayTaskError
from ray.exceptions import TaskCancelledError as RayTaskCancelledError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RayServeException

from deployments.live_settings import reconfigure_pool
from deployments.pool_status import PoolWatch, no_replica, serve_statuses
from deployments.registry_versions import Fetch, RegistryVersions, registry_fetch
from deployments.side_channel import IN_FLIGHT_METRIC
from deployments.side_channel_client import ChannelClient
from deployments.side_channel_directory import get_or_create_directory
from deployments.side_channel_pool import PoolChannel
from gateway.errors import GatewayError, ServiceUnavailableError
from gateway.observability.metrics import metrics
from gateway.pipeline.invoker import CANCELLED
from gateway.pipeline.upstream import ByProviderType, LocalUpstream, Upstream, UpstreamCall
from gateway.providers.framing import Completed, StreamItem, coalesced


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
class ProviderPool:
    """The adapters of one provider type, behind a deployment handle."""

    def __init__(
        self,
        provider_type: str,
        fetch: Fetch | None = None,
        side_channel: Mapping[str, float] | None = None,
    ) -> None:
        self.provider_type = provider_type
        self.upstream = LocalUpstream()
        self.versions = RegistryVersions(fetch or registry_fetch())
        self.ongoing = 0  # calls accepted and not yet answered: the pool's queue depth
        # With `server.side_channel`: the directory actor's placement (`actors.resources`).
        self._side_channel = side_channel
        self.channel: PoolChannel | None = None

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        await reconfigure_pool(self, user_config)
        if self._side_channel is not None and self.channel is None:
            # Here, not in the constructor: Serve runs this on the replica's own event loop.
            self.channel = PoolChannel(
                self, self.provider_type, get_or_create_directory(self._side_channel)
            )
            await self.channel.start()

    def side_channel_calls(self) -> int:
        """Calls this replica has served by its side channel (0 without one)."""
        return self.channel.server.calls if self.channel is not None else 0

    def record_autoscaling_stats(self) -> dict[str, float]:
        """For Serve's autoscaler (a pool that autoscales): the calls it cannot count itself,
        those in flight by the side channel (`side_channel.autoscaling_policy` adds them)."""
        return {IN_FLIGHT_METRIC: self.channel.server.in_flight if self.channel else 0}

    async def __del__(self) -> None:
        if self.channel is not None:
            await self.channel.aclose()

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.ongoing += 1
        metrics().pool_queue(self.provider_type, self.ongoing)
        try:
            yield
        finally:
            self.ongoing -= 1
            metrics().pool_queue(self.provider_type, self.ongoing)

    # Both entry points re-raise a gateway error `from None`: Serve logs a failed call's
    # traceback, and the SDK exception chained to it carries the upstream's raw text (which
    # may echo credentials), unredacted; the caller never receives the chain anyway.

    async def send(self, call: UpstreamCall) -> Completed:
        """A finished answer (chat or embeddings)."""
        try:
            with self._counted():
                await self.versions.resolve(call)
                return await self.upstream.send(call)
        except GatewayError as error:
            raise error from None

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]:
        """A stream, as its head, SSE frames and tail."""
        try:
            with self._counted():
                await self.versions.resolve(call)
                async for item in coalesced(self.upstream.stream(call)):
                    yield item
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


def replica_upstream(
    pools: dict[str, Any], inline: list[str], channel: ChannelClient | None = None
) -> Upstream:
    """What a replica calls providers through: its own adapters for the inline types, the
    pools (by their side channel where it has one, else their handles) for the rest."""
    pooled = PoolUpstream(pools, channel=channel)
    if not inline:
        return pooled
    local = LocalUpstream()
    return ByProviderType(pooled, {kind: local for kind in inline})


def _kind(call: UpstreamCall) -> str:
    """The provider type of a call's pool ("" for a call without its provider's config)."""
    return call.provider_config.type if call.provider_config else ""


def direct(handle: Any) -> Any:
    """`handle` on Serve's gRPC path to the replica, not Ray actor calls by object reference.

    A handle keeps the transport chosen in the process that made it: one bound as a deployment
    argument is made where `serve.run` ran, which takes actor calls unless that process had
    RAY_SERVE_THROUGHPUT_OPTIMIZED set. bench/hop_cost.py measured a no-op hop at ~3-4 ms of
    CPU a side by actor call against ~1.1 ms by gRPC.
    """
    return handle.options(_by_reference=False)


class PoolUpstream:
    """The `Upstream` the ingress uses: one handle hop to the pool of the provider's type."""

    def __init__(
        self,
        pools: dict[str, Any],
        watch: PoolWatch | None = None,
        channel: ChannelClient | None = None,
    ) -> None:
        self.channel = channel
        if watch is None:
            names = {kind: handle.deployment_name for kind, handle in pools.items()}
            app = next(iter(pools.values())).app_name if pools else ""
            watch = PoolWatch(names, serve_statuses(app))
            watch.start()
        self.watch = watch
        # Method handles made once (`handle.send` builds a new handle on every access), each
        # with the set of its pool's calls in flight, so a call takes one lookup for both.
        pools = {kind: direct(handle) for kind, handle in pools.items()}
        waiting = watch.waiting
        self._sends = {kind: (h.send, waiting[kind]) for kind, h in pools.items()}
        self._streams = {
            kind: (h.options(stream=True).stream, waiting[kind]) for kind, h in pools.items()
        }

    def _pool(self, call: UpstreamCall, handles: dict[str, Any]) -> tuple[Any, set[Any]]:
        kind = _kind(call)
        try:
            return handles[kind]
        except KeyError:
            raise ServiceUnavailableError(
                f"no pool is deployed for provider type '{kind}' "
                f"(provider '{call.provider}'); redeploy with it in the config"
            ) from None

    async def send(self, call: UpstreamCall) -> Completed:
        method, waiting = self._pool(call, self._sends)
        if self.channel is not None:
            answer = await self.channel.send(_kind(call), call)
            if answer is not None:
                return answer
        response = None
        try:
            response = method.remote(call)
            waiting.add(response)
            return await response
        except RAY_ERRORS as error:
            raise self._failure(call, response, error) from None
        finally:
            waiting.discard(response)

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]:
        method, waiting = self._pool(call, self._streams)
        if self.channel is not None:
            return self._stream_by_channel(call, method, waiting)
        return self._stream_by_handle(call, method, waiting)

    def _stream_by_handle(
        self, call: UpstreamCall, method: Any, waiting: set[Any]
    ) -> AsyncIterator[StreamItem]:
        response = method.remote(call)
        waiting.add(response)
        return relay(response, lambda error: self._failure(call, response, error), waiting)

    async def _stream_by_channel(
        self, call: UpstreamCall, method: Any, waiting: set[Any]
    ) -> AsyncIterator[StreamItem]:
        assert self.channel is not None
        items = await self.channel.stream(_kind(call), call)
        if items is None:
            items = self._stream_by_handle(call, method, waiting)
        async with contextlib.aclosing(items):
            async for item in items:
                yield item

    def _failure(self, call: UpstreamCall, response: Any, error: BaseException) -> BaseException:
        """A failed call's error: the watch's refusal if it cancelled the call, Serve's
        refusal of a pool that failed to deploy, or `unwrap`'s."""
        refused = self.watch.refusal(response)
        if refused is not None:
            return refused
        if isinstance(error, DeploymentUnavailableError):
            kind = _kind(call) or "?"
            deployment = self.watch.deployments.get(kind, kind)
            return no_replica(kind, deployment, "its replicas failed to start")
        return unwrap(error)


async def relay(
    response: Any,
    failure: Callable[[BaseException], BaseException] = unwrap,
    waiting: set[Any] | None = None,
) -> AsyncIterator[Any]:
    """The items of a streaming handle call, with Ray's errors made gateway errors by
    `failure`; closing it early (the client left, a timeout fired) cancels the call downstream
    too. A call in `waiting` (its pool's calls in flight) leaves it when done."""
    done = False
    try:
        async for item in response:
            yield item
        done = True
    except RAY_ERRORS as error:
        done = True
        raise failure(error) from None
    finally:
        if waiting is not None:
            waiting.discard(response)
        if not done:
            response.cancel()
