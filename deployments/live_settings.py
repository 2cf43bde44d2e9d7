"""Settings an operator changes under traffic: each deployment's `user_config`.

`serve deploy` with only a changed `user_config` calls `reconfigure` on the running replicas
instead of replacing them, so these apply without a restart or a dropped request. Each
deployment's `reconfigure` is one line that hands its `user_config` to a function here, which
validates it and applies it whole, or refuses it whole. A refused user_config is logged as an
error naming each bad field and changes nothing: raising instead would make Serve replace the
replicas, each of which would refuse it again, and leave the deployment with none (measured
with Ray 2.60: a pool at DEPLOY_FAILED, no replica, every call failing). What needs new
replicas (the gateway config, ray_actor_options) is not here.

Check a serve_config before deploying it:  python -m deployments.live_settings serve_config.yaml
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deployments.options import POOL_NAMES
from gateway.errors import ServiceUnavailableError
from gateway.observability.logs import LOGGERS, configure_json_logs
from gateway.pipeline.upstream import Upstream, UpstreamCall
from gateway.providers.framing import Completed, StreamItem

logger = logging.getLogger("llmgw.live")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LiveSettings(BaseModel):
    """What every deployment can change live: how much its replicas log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_level: LogLevel = Field(
        default="INFO", description="level of the gateway's loggers (llmgw.*, gateway.*)"
    )


class IngressSettings(LiveSettings):
    """The ingress's live settings."""

    access_log: bool = Field(
        default=True,
        description="one llmgw.access line per model call; off sheds log volume at high rates",
    )


class PoolSettings(LiveSettings):
    """A provider pool's live settings: how hard one replica may press its upstream."""

    max_concurrent_calls: int | None = Field(
        default=None,
        ge=1,
        description="calls one replica makes at once to each provider (streams until they "
        "end); the rest wait their turn. None: no bound beyond max_ongoing_requests",
    )
    queue_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="how long a call waits for its turn before a retryable 503",
    )


class RouterSettings(LiveSettings):
    """The Router's live settings."""


S = TypeVar("S", bound=LiveSettings)


# The user_config model of each deployment the app builder creates.
SETTINGS: dict[str, type[LiveSettings]] = {
    "Ingress": IngressSettings,
    "Router": RouterSettings,
    **{name: PoolSettings for name in POOL_NAMES.values()},
}


def _described(error: ValidationError) -> list[str]:
    """Each refused field as `field: why`, never its value."""
    return [
        f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
        for item in error.errors()
    ]


def _validated(model: type[S], name: str, user_config: Any) -> S | None:
    try:
        return model.model_validate(user_config or {})
    except ValidationError as error:
        problems = "; ".join(_described(error))
        logger.error("%s user_config refused, settings unchanged: %s", name, problems)
        return None


def _apply_logging(settings: LiveSettings) -> None:
    for name in LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level)


async def reconfigure_ingress(user_config: Any) -> IngressSettings | None:
    """`Ingress.reconfigure`: log level and the per-call access line."""
    settings = _validated(IngressSettings, "Ingress", user_config)
    if settings is None:
        return None
    _apply_logging(settings)
    # The access logger's own level gates its lines whatever the gateway's level is.
    logging.getLogger("llmgw.access").setLevel(logging.NOTSET if settings.access_log else 100)
    logger.info("ingress settings applied: %s", settings.model_dump())
    return settings


async def reconfigure_router(user_config: Any) -> RouterSettings | None:
    """`Router.reconfigure`: log level."""
    configure_json_logs()
    settings = _validated(RouterSettings, "Router", user_config)
    if settings is None:
        return None
    _apply_logging(settings)
    logger.info("router settings applied: %s", settings.model_dump())
    return settings


async def reconfigure_pool(pool: Any, user_config: Any) -> PoolSettings | None:
    """`ProviderPool.reconfigure`: log level and the bound on concurrent upstream calls.

    A pool (and the Router) logs JSON lines to the real stderr from here on, as the ingress
    does: Serve's replica log would buffer its lines and drop those under WARNING. The pool's
    `upstream` is wrapped once in a `BoundedUpstream`; later calls resize its
    limits in place, so calls already waiting keep their place in line.
    """
    configure_json_logs()
    name = POOL_NAMES.get(getattr(pool, "provider_type", ""), "ProviderPool")
    settings = _validated(PoolSettings, name, user_config)
    if settings is None:
        return None
    _apply_logging(settings)
    if not isinstance(pool.upstream, BoundedUpstream):
        pool.upstream = BoundedUpstream(pool.upstream)
    pool.upstream.resize(settings.max_concurrent_calls, settings.queue_timeout_s)
    logger.info("pool settings applied: %s", settings.model_dump())
    return settings


class CallLimit:
    """A semaphore whose size changes live; waiters are served first come, first served.

    All of it runs on the replica's event loop, so no lock: a slot is handed to the next
    waiter directly, and one handed to a waiter that gave up is passed on.
    """

    def __init__(self, limit: int | None = None, timeout_s: float = 30.0) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _room(self) -> bool:
        return self.limit is None or self.active < self.limit

    def resize(self, limit: int | None, timeout_s: float) -> None:
        """A new bound: a larger one lets waiters in now; a smaller one lets calls in flight
        finish and admits no more until they are under it."""
        self.limit, self.timeout_s = limit, timeout_s
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._room():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    async def acquire(self) -> None:
        if not self._waiters and self._room():
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout_s):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot arrived as this call left: the next waiter takes it
            else:
                waiter.cancel()
            if isinstance(error, TimeoutError):
                raise ServiceUnavailableError(
                    f"the provider pool is at its bound of {self.limit} concurrent calls; "
                    f"no turn within {self.timeout_s:g} s",
                    code="pool_at_capacity",
                    retry_after=1.0,
                ) from None
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


class BoundedUpstream:
    """An `Upstream` that takes a slot of its provider's `CallLimit` for each call (a stream
    holds it until it ends), so an upstream with a concurrency cap of its own is not pressed
    past it. Each provider of the pool's type has its own limit, all of the same size."""

    def __init__(self, inner: Upstream) -> None:
        self.inner = inner
        self.bound: int | None = None
        self.timeout_s = 30.0
        self.limits: dict[str, CallLimit] = {}

    def resize(self, bound: int | None, timeout_s: float) -> None:
        self.bound, self.timeout_s = bound, timeout_s
        for limit in self.limits.values():
            limit.resize(bound, timeout_s)

    def _limit(self, call: UpstreamCall) -> CallLimit:
        limit = self.limits.get(call.provider)
        if limit is None:
            limit = self.limits[call.provider] = CallLimit(self.bound, self.timeout_s)
        return limit

    async def send(self, call: UpstreamCall) -> Completed:
        async with self._limit(call).slot():
            return await self.inner.send(call)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamItem]:
        async with self._limit(call).slot():
            async for item in self.inner.stream(call):
                yield item


def check_serve_config(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with the user_configs of a serve_config's llmgw deployments (the
    replicas would log and ignore such a user_config)."""
    problems = []
    for app in config.get("applications") or []:
        for deployment in app.get("deployments") or []:
            name = deployment.get("name")
            if "user_config" not in deployment:
                continue
            model = SETTINGS.get(name)
            if model is None:
                problems.append(f"deployments.{name}: not a deployment llmgw has")
                continue
            try:
                model.model_validate(deployment["user_config"] or {})
            except ValidationError as error:
                problems += [f"deployments.{name}.user_config.{p}" for p in _described(error)]
    return problems


def main(argv: list[str]) -> int:
    """Exit 1 and name each bad field if a serve_config's user_configs would not apply."""
    if len(argv) != 1:
        print("usage: python -m deployments.live_settings SERVE_CONFIG.yaml", file=sys.stderr)
        return 2
    problems = check_serve_config(yaml.safe_load(Path(argv[0]).read_text()) or {})
    for problem in problems:
        print(f"{argv[0]}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
