"""Provider health: each configured provider probed with its cheapest call, on a schedule.

`HealthChecker` holds one adapter per provider (the same adapters the pools use) and probes
them concurrently, each within a timeout. The registry actor runs it every
`observability.health.interval_s` and publishes the results in the registry snapshot, so
routing skips an unhealthy provider's models before a client's call fails on them; the same
round re-discovers Ollama's installed models.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from gateway.config import HealthConfig, ModelConfig, ProviderConfig
from gateway.errors import GatewayError
from gateway.observability.metrics import metrics
from gateway.providers.base import Provider
from gateway.registry.snapshot import ProviderHealth

log = logging.getLogger("llmgw.health")

HEALTHY, UNHEALTHY, UNPROBED = "healthy", "unhealthy", "unprobed"


async def probe(adapter: Provider, timeout_s: float) -> ProviderHealth:
    """One probe of one provider: its state, when, how long it took, and why it failed."""
    started = time.perf_counter()
    at = time.time()
    error: str | None = None
    try:
        async with asyncio.timeout(timeout_s):
            asked = await adapter.probe()
        state = HEALTHY if asked else UNPROBED
    except TimeoutError:
        state, error = UNHEALTHY, f"no answer within {timeout_s:g} s"
    except GatewayError as exc:
        state, error = UNHEALTHY, exc.code or type(exc).__name__
    except Exception as exc:  # a probe must never take the schedule down
        state, error = UNHEALTHY, type(exc).__name__
    ms = (time.perf_counter() - started) * 1000
    if state != UNPROBED:
        metrics().probe(adapter.name, state == HEALTHY, ms / 1000)
    return ProviderHealth(state, at, round(ms, 3), error)


class HealthChecker:
    """Probes every provider it is given; keeps one adapter per provider between rounds."""

    def __init__(self, config: HealthConfig, build: Callable[[ProviderConfig], Provider]) -> None:
        self.config = config
        self._build = build
        self._adapters: dict[str, tuple[ProviderConfig, Provider]] = {}

    def _adapter(self, provider: ProviderConfig) -> Provider:
        held = self._adapters.get(provider.name)
        if held is None or held[0] != provider:
            held = (provider, self._build(provider))
            self._adapters[provider.name] = held
        return held[1]

    async def check(self, providers: Iterable[ProviderConfig]) -> dict[str, ProviderHealth]:
        """A probe of each provider, all at once."""
        listed = list(providers)
        results = await asyncio.gather(
            *(probe(self._adapter(p), self.config.timeout_s) for p in listed)
        )
        for provider, health in zip(listed, results, strict=True):
            if health.state == UNHEALTHY:
                log.warning("provider %s failed its health probe: %s", provider.name, health.error)
        return {p.name: h for p, h in zip(listed, results, strict=True)}

    async def installed(self, providers: Iterable[ProviderConfig]) -> list[ModelConfig]:
        """Models the providers that discover (Ollama) report installed, if they answer."""
        found: list[ModelConfig] = []
        for provider in providers:
            if provider.type != "ollama":
                continue
            try:
                async with asyncio.timeout(self.config.timeout_s * 2):
                    found.extend(await self._adapter(provider).discover())
            except Exception as exc:
                log.warning("re-discovering %s's models failed: %r", provider.name, exc)
        return found

    async def aclose(self) -> None:
        for _, adapter in self._adapters.values():
            try:
                await adapter.aclose()
            except Exception:
                log.debug("closing %s failed", adapter.name, exc_info=True)
        self._adapters.clear()
