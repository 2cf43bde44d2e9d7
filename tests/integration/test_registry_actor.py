"""The registry actor and the replica-side snapshot feed, on a real Ray (the usage writer's
tests are in test_usage_writer.py).

Every actor here has a name private to this module and is killed at the end, so a gateway
running on the same machine, or another test module, is never touched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from deployments.registry_actor import get_or_create_registry
from deployments.snapshot_feed import SnapshotFeed
from gateway.config import GatewayConfig, ModelConfig, load_config, parse_config
from gateway.errors import ConflictError, InvalidRequestError, ModelNotFoundError
from gateway.registry.snapshot import RegistrySnapshot
from gateway.registry.stats import CallSample

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

NAMESPACE = "llmgw-tests"
_SUFFIX = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('registry-actor') / 'llmgw.db'}"


@pytest.fixture(scope="module")
def config() -> GatewayConfig:
    return load_config()


@pytest.fixture(scope="module")
def actors() -> Iterator[list[Any]]:
    """Every actor this module starts, killed for good at the end."""
    created: list[Any] = []
    yield created
    for handle in created:
        ray.kill(handle, no_restart=True)


@pytest.fixture(scope="module")
def registry(ray_cluster: None, config: GatewayConfig, store_url: str, actors: list[Any]) -> Any:
    handle = get_or_create_registry(
        config,
        store_url,
        name=f"llmgw-registry-{_SUFFIX}",
        namespace=NAMESPACE,
        stats_interval_s=0.5,
    )
    actors.append(handle)
    return handle


async def restart(handle: Any) -> None:
    """Kill the registry actor's process and wait until Ray has restarted it."""
    pid = (await handle.status.remote())["pid"]
    ray.kill(handle, no_restart=False)
    deadline = time.monotonic() + 60
    while (await handle.status.remote())["pid"] == pid:
        assert time.monotonic() < deadline, "the actor did not restart"
        await asyncio.sleep(0.1)


async def until(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- the registry actor


async def test_changes_through_the_actor(registry: Any) -> None:
    start: RegistrySnapshot = await registry.snapshot.remote()
    assert set(start.models) >= {"sim-fast", "sim-smart", "sim-classifier", "sim-next"}

    model = ModelConfig(name="actor-a", provider="sim", aliases=["aa"])
    version = await registry.register_model.remote(model)
    assert version == start.version + 1
    assert await registry.register_model.remote(model) == version  # the same again: no-op
    version = await registry.update_model.remote("actor-a", {"price": {"input_per_mtok": 3}})
    version = await registry.deprecate.remote("actor-a")
    snap: RegistrySnapshot = await registry.snapshot.remote()
    assert snap.version == version
    assert snap.resolve("aa").price.input_per_mtok == 3
    assert snap.models["actor-a"].status == "deprecated"
    assert await registry.remove.remote("actor-a") == version + 1

    # The gateway's own errors cross the process boundary with their status and message.
    with pytest.raises(InvalidRequestError, match="unknown provider 'nope'") as refused:
        await registry.register_model.remote({"name": "x", "provider": "nope"})
    assert refused.value.status_code == 400
    with pytest.raises(ConflictError):
        await registry.register_model.remote(ModelConfig(name="sim-fast", provider="sim"))
    with pytest.raises(ModelNotFoundError):
        await registry.remove.remote("actor-a")
    with pytest.raises(InvalidRequestError, match="quality"):
        await registry.update_model.remote("sim-fast", {"quality": 7})


async def test_get_or_create_finds_the_running_actor(registry: Any, config, store_url) -> None:
    again = get_or_create_registry(
        config, store_url, name=f"llmgw-registry-{_SUFFIX}", namespace=NAMESPACE
    )
    assert again._actor_id == registry._actor_id


async def test_watch_returns_new_snapshots(registry: Any) -> None:
    snap: RegistrySnapshot = await registry.snapshot.remote()
    assert await registry.watch.remote(snap.version, snap.stats_version, 0.2) is None

    pending = registry.watch.remote(snap.version, snap.stats_version, 30.0)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await registry.register_model.remote(ModelConfig(name="watched", provider="sim"))
    pushed: RegistrySnapshot = await pending
    assert time.monotonic() - started < 2.0
    assert pushed.version == snap.version + 1
    assert pushed.resolve("watched") is not None

    # A replica that is behind gets the current snapshot at once.
    assert (await registry.watch.remote(snap.version, snap.stats_version, 30.0)) == pushed


async def test_reported_calls_reach_snapshots_as_stats(registry: Any) -> None:
    snap: RegistrySnapshot = await registry.snapshot.remote()
    samples = [CallSample("sim-smart", "sim", True, float(ms), 5.0) for ms in range(1, 101)]
    registry.report.remote(samples)
    pushed: RegistrySnapshot = await registry.watch.remote(snap.version, snap.stats_version, 10.0)
    assert pushed is not None and pushed.version == snap.version
    stats = pushed.stats_for("sim-smart")
    assert (stats.requests, stats.latency_p50_ms, stats.latency_p99_ms) == (100, 50.0, 99.0)


async def test_a_restarted_actor_has_the_same_models(registry: Any) -> None:
    await registry.register_model.remote(ModelConfig(name="survivor", provider="sim"))
    # A newer config file applied since start; the restart must not bring back the old one.
    data = load_config().model_dump(mode="json")
    data["models"][0]["price"]["output_per_mtok"] = 0.8
    await registry.apply_config.remote(parse_config(data))
    before: RegistrySnapshot = await registry.snapshot.remote()
    assert before.models["sim-fast"].price.output_per_mtok == 0.8
    await restart(registry)
    after: RegistrySnapshot = await registry.snapshot.remote()  # retried until it is back
    assert after.version == before.version
    assert after.models == before.models
    assert after.stats_version >= before.stats_version
    version = await registry.register_model.remote(ModelConfig(name="after", provider="sim"))
    assert version == before.version + 1


# ---------------------------------------------------------------- the replica's feed


async def test_snapshot_feed_follows_changes_and_survives_a_restart(registry: Any) -> None:
    feed = SnapshotFeed(registry, watch_timeout_s=2.0, report_interval_s=0.2)
    first = await feed.start()
    assert feed.current is first
    try:
        version = await registry.register_model.remote(ModelConfig(name="fed", provider="sim"))
        assert (await feed.wait_for_version(version)).resolve("fed") is not None

        for ms in (10.0, 20.0, 30.0):
            feed.report(CallSample("sim-classifier", "sim", True, ms))
        await until(lambda: feed.current.stats_for("sim-classifier").requests >= 3)

        await restart(registry)
        version = await registry.register_model.remote(ModelConfig(name="fed-2", provider="sim"))
        snap = await feed.wait_for_version(version, timeout_s=30.0)
        assert {"fed", "fed-2"} <= set(snap.models)
        await until(lambda: feed.connected)
    finally:
        await feed.aclose()


async def test_snapshot_feed_reconnects_to_a_registry_started_anew(
    config: GatewayConfig, store_url: str, actors: list[Any]
) -> None:
    """An actor gone for good (no restart left) is started again from the store."""
    name = f"llmgw-registry-gone-{_SUFFIX}"

    def connect() -> Any:
        handle = get_or_create_registry(config, store_url, name=name, namespace=NAMESPACE)
        actors.append(handle)
        return handle

    first = connect()
    feed = SnapshotFeed(first, watch_timeout_s=2.0, reconnect=connect)
    await feed.start()
    try:
        version = await first.register_model.remote(ModelConfig(name="phoenix", provider="sim"))
        await feed.wait_for_version(version)
        ray.kill(first, no_restart=True)
        await until(lambda: not feed.connected)
        await until(lambda: feed.connected)
        second = ray.get_actor(name, namespace=NAMESPACE)
        assert second._actor_id != first._actor_id
        version = await second.register_model.remote(ModelConfig(name="ash", provider="sim"))
        snap = await feed.wait_for_version(version, timeout_s=30.0)
        assert {"phoenix", "ash"} <= set(snap.models)  # restored from the store
    finally:
        await feed.aclose()
