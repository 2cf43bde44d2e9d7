"""A small hand-made registry whose every ranking can be worked out by hand.

chat, active:  gpt-big   openai     q .95  $7.50/Mtok  p50  900 ms  tools vision json
               claude    anthropic  q .90  $6.00       p50 1200     tools vision
               gpt-mini  openai     q .70  $0.26       p50  300     tools json
               haiku     anthropic  q .60  $1.60       p50  200     tools
               llama     ollama     q .50  $0.00       unmeasured   (no streaming)
also:          sim-next  sim        q .99  testing     research + chat
               old-gpt   openai     q .80  deprecated
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.config import ModelConfig, ProviderConfig, RoutingConfig
from gateway.registry.snapshot import ModelStats, RegistrySnapshot

ALL_CAPS = ["chat", "streaming", "tools", "vision", "json_mode"]

MODELS: list[dict[str, Any]] = [
    {
        "name": "gpt-big",
        "provider": "openai",
        "use_cases": ["chat", "research", "summarization"],
        "capabilities": ALL_CAPS,
        "context_window": 128000,
        "price": {"input_per_mtok": 5.0, "output_per_mtok": 15.0},
        "quality": 0.95,
    },
    {
        "name": "claude",
        "provider": "anthropic",
        "use_cases": ["chat", "research", "summarization"],
        "capabilities": ["chat", "streaming", "tools", "vision"],
        "context_window": 200000,
        "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
        "quality": 0.9,
        "fallbacks": ["gpt-big", "mini"],
    },
    {
        "name": "gpt-mini",
        "provider": "openai",
        "upstream": "gpt-mini-2025",
        "aliases": ["mini"],
        "use_cases": ["chat", "summarization", "classification", "extraction"],
        "capabilities": ["chat", "streaming", "tools", "json_mode"],
        "context_window": 128000,
        "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
        "quality": 0.7,
    },
    {
        "name": "haiku",
        "provider": "anthropic",
        "use_cases": ["chat", "classification"],
        "capabilities": ["chat", "streaming", "tools"],
        "context_window": 200000,
        "price": {"input_per_mtok": 0.8, "output_per_mtok": 4.0},
        "quality": 0.6,
    },
    {
        "name": "llama",
        "provider": "ollama",
        "use_cases": ["chat", "summarization"],
        "capabilities": ["chat"],
        "context_window": 8192,
        "quality": 0.5,
        "fallbacks": ["sim-next"],
    },
    {
        "name": "sim-next",
        "provider": "sim",
        "use_cases": ["chat", "research"],
        "capabilities": ALL_CAPS,
        "context_window": 32768,
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
        "quality": 0.99,
        "status": "testing",
    },
    {
        "name": "old-gpt",
        "provider": "openai",
        "use_cases": ["chat"],
        "capabilities": ALL_CAPS,
        "context_window": 8192,
        "price": {"input_per_mtok": 10.0, "output_per_mtok": 30.0},
        "quality": 0.8,
        "status": "deprecated",
    },
]

LATENCY_MS = {"gpt-big": 900.0, "claude": 1200.0, "gpt-mini": 300.0, "haiku": 200.0}

Builder = Callable[..., RegistrySnapshot]


def build(
    models: list[dict[str, Any]] | None = None,
    stats: dict[str, ModelStats] | None = None,
    version: int = 1,
) -> RegistrySnapshot:
    """A snapshot of `models` (default: the hand-made registry) with its latencies."""
    configs = [ModelConfig(**m) for m in (MODELS if models is None else models)]
    providers = {
        name: ProviderConfig(name=name, type="sim") for name in {m.provider for m in configs}
    }
    if stats is None:
        stats = {
            name: ModelStats(requests=100, latency_p50_ms=ms) for name, ms in LATENCY_MS.items()
        }
    return RegistrySnapshot(version, providers, {m.name: m for m in configs}, stats)


@pytest.fixture
def snapshot() -> RegistrySnapshot:
    return build()


@pytest.fixture
def config() -> RoutingConfig:
    return RoutingConfig()


class FakeClock:
    """A clock tests move by hand, so circuit timings need no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
