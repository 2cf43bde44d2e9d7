"""The registry actor's event loop keeps answering while the store is slow (a held SQLite lock
would otherwise stall every replica's snapshot watch)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deployments import registry_actor
from gateway.config import load_config

SLOW_S = 0.4


@pytest.fixture
def actor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    context = SimpleNamespace(was_current_actor_reconstructed=False)
    monkeypatch.setattr(registry_actor.ray, "get_runtime_context", lambda: context)
    cls = registry_actor.RegistryActor.__ray_actor_class__
    actor = cls(load_config(), f"sqlite:///{tmp_path / 'llmgw.db'}", stats_interval_s=60)
    store = actor._registry._store
    save = store.save_registry_change

    def slow_save(*args: Any, **kwargs: Any) -> None:
        time.sleep(SLOW_S)  # a database lock held by someone else
        save(*args, **kwargs)

    monkeypatch.setattr(store, "save_registry_change", slow_save)
    return actor


async def test_a_slow_store_never_blocks_the_actors_loop(actor: Any) -> None:
    start = await actor.snapshot()
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.monotonic()
        for _ in range(40):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    watch = asyncio.create_task(actor.watch(start.version, start.stats_version, 5.0))
    beat = asyncio.create_task(heartbeat())
    first = asyncio.create_task(actor.deprecate("sim-next"))
    second = asyncio.create_task(actor.update_model("sim-next", {"quality": 0.7}))
    versions = await asyncio.gather(first, second)
    await beat
    assert max(gaps) < SLOW_S / 2
    assert versions == [start.version + 1, start.version + 2]  # serialised, in order
    snapshot = await watch
    assert snapshot is not None and snapshot.version > start.version
    final = await actor.snapshot()
    assert final.models["sim-next"].status == "deprecated"
    assert final.models["sim-next"].quality == 0.7
