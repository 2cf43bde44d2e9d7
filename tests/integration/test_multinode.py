"""Multi-node: the gateway on a real three-node Ray cluster (a head and two workers, separate
`ray start` processes on this machine), its provider pools placed on the workers through a
custom resource: SimPool on one replica, OpenAIPool on two (one per worker). The worker
hosting SimPool is killed (SIGKILL of its whole process tree, as when a machine dies) under
traffic from the official SDK: SimPool comes back on the other worker, OpenAIPool serves on
from its survivor, and the registry, the keys and the usage made before the kill are intact.
The output states what was measured (recovery timeline, failures, slowest calls, usage).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.integration.local_cluster import LocalCluster, free_port
from tests.protocol_servers import OpenAIServer

ADMIN_KEY = "sk-llmgw-multinode-0123456789abcdef0000"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
HELLO = [{"role": "user", "content": "Hello"}]
TENANT = "multinode"


def _serve_config(gateway_config: Path, http_port: int) -> dict[str, Any]:
    """cluster/ray-cluster.yaml's Serve config in small: each deployment asks for a sliver of
    the custom resource its nodes advertise (the ingress `ingress_node`, which only the head
    has; the pool `pool_node`, which only the workers have), so Ray places it there."""
    return {
        # One proxy, on the head: every node of this cluster shares one machine (and one
        # port 8000); on real machines cluster/ runs one per node (EveryNode).
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": http_port},
        "applications": [
            {
                "name": "llmgw",
                "route_prefix": "/",
                "import_path": "deployments.app:build_app",
                "args": {"config": str(gateway_config)},
                "deployments": [
                    {
                        "name": "Ingress",
                        "num_replicas": 1,
                        "ray_actor_options": {
                            "num_cpus": 0.05,
                            "resources": {"ingress_node": 0.01},
                        },
                    },
                    {
                        "name": "SimPool",
                        "num_replicas": 1,
                        "ray_actor_options": {"num_cpus": 0.05, "resources": {"pool_node": 0.01}},
                        # Serve finds a dead replica by its next health check (default every
                        # 10 s) and only then starts another: checked every second, it starts
                        # the replacement about as soon as the GCS declares the node dead.
                        "health_check_period_s": 1,
                        "health_check_timeout_s": 5,
                    },
                    {
                        # Two replicas, one per worker (Serve spreads replicas; the cap per
                        # node makes it certain here, where the workers join one by one).
                        "name": "OpenAIPool",
                        "num_replicas": 2,
                        "max_replicas_per_node": 1,
                        "ray_actor_options": {"num_cpus": 0.05, "resources": {"pool_node": 0.01}},
                        "health_check_period_s": 1,
                        "health_check_timeout_s": 5,
                    },
                ],
            }
        ],
    }


@pytest.fixture
def upstream() -> Iterator[OpenAIServer]:
    """An OpenAI-protocol upstream for the OpenAIPool, in this process."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    # Ray's socket paths must stay under 107 bytes: a short root, not pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="llmgw-mn-", dir="/tmp"))
    home = root / "home"
    home.mkdir(mode=0o700)
    cluster = LocalCluster.create(
        root,
        {
            "LLMGW_HOME": str(home),
            # As an operator sets it on every node (from a secret on Kubernetes).
            "LLMGW_ADMIN_KEY": ADMIN_KEY,
            "LLMGW_MULTINODE_OPENAI_KEY": OpenAIServer().api_key,
            # Serve's own proxy: HAProxy's side files and ports are per machine, and this
            # machine already runs the test session's.
            "RAY_SERVE_ENABLE_HA_PROXY": "0",
            # The GCS declares a silent node dead after 3 missed 1 s health checks (defaults:
            # 5 missed 3 s checks, ~15 s), and Serve replaces its replicas from then on.
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
            # A raylet waits this long for its node's agent (default 30 s, missed when the
            # machine is busy).
            "RAY_agent_register_timeout_ms": "120000",
        },
    )
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Call:
    model: str
    started: float
    ended: float
    outcome: str  # "ok", "status 502", "APIConnectionError: ...", ...


@dataclass
class Traffic:
    """Clients of the official SDK calling in a loop (streamed and not) until stopped; no SDK
    retries, so every failure the gateway lets through is counted."""

    url: str
    key: str
    models: list[str]
    clients: int = 4
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, i: int) -> None:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)
        n = 0
        while not self._stop.is_set():
            n += 1
            model = self.models[i % len(self.models)]  # a model per client, all through
            started = time.monotonic()
            try:
                if n % 2:
                    stream = client.chat.completions.create(
                        model=model, messages=HELLO, stream=True, timeout=60
                    )
                    ok = bool(
                        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    )
                else:
                    reply = client.chat.completions.create(model=model, messages=HELLO, timeout=60)
                    ok = bool(reply.choices[0].message.content)
                outcome = "ok" if ok else "empty answer"
            except openai.APIStatusError as error:
                outcome = f"status {error.status_code}"
            except openai.APIError as error:
                outcome = f"{type(error).__name__}: {error.message[:60]}"
            self.calls.append(Call(model, started, time.monotonic(), outcome))

    def __enter__(self) -> Traffic:
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


def _wait(what: str, check: Any, timeout_s: float = 90, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


def _replicas(cluster: LocalCluster, deployment: str) -> list[dict[str, Any]]:
    app = cluster.serve_details().get("applications", {}).get("llmgw") or {}
    return (app.get("deployments") or {}).get(deployment, {}).get("replicas", [])


def _running_on(cluster: LocalCluster, deployment: str) -> set[str]:
    """Node ids with a RUNNING replica of `deployment`."""
    return {r.get("node_id") for r in _replicas(cluster, deployment) if r["state"] == "RUNNING"}


def _recovery(cluster: LocalCluster, dead: str, survivor: str, since: float) -> dict[str, float]:
    """Seconds from `since` until the GCS declared the node dead, Serve let go of the dead
    replica and scheduled a new one, the new one had a node (the survivor), and it ran."""
    timeline: dict[str, float] = {}
    before = {r["replica_id"] for r in _replicas(cluster, "SimPool")}
    deadline = since + 150
    while "replacement RUNNING" not in timeline:
        assert time.monotonic() < deadline, f"no pool replica back on the survivor: {timeline}"
        now = time.monotonic() - since
        with contextlib.suppress(httpx.HTTPError):
            if dead not in {row["node_id"] for row in cluster.alive_nodes()}:
                timeline.setdefault("node declared dead", now)
            new = [r for r in _replicas(cluster, "SimPool") if r["replica_id"] not in before]
            if new:
                timeline.setdefault("replacement scheduled", now)
            states = {r["state"] for r in new if r.get("node_id") == survivor}
            if states:
                timeline.setdefault("replacement on the survivor", now)
            if "RUNNING" in states:
                timeline.setdefault("replacement RUNNING", now)
        time.sleep(0.1)
    return timeline


def _usage(url: str, **params: str) -> dict[str, int]:
    rows = httpx.get(f"{url}/admin/usage", params={"tenant": TENANT, **params}, headers=ADMIN)
    assert rows.status_code == 200, rows.text
    data = rows.json()["data"]
    return {"requests": sum(r["requests"] for r in data), "errors": sum(r["errors"] for r in data)}


def test_a_worker_node_dies_under_traffic_and_the_pools_come_back(
    cluster: LocalCluster, upstream: OpenAIServer, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    home = Path(cluster.env["LLMGW_HOME"])
    store = f"sqlite:///{home / 'llmgw.db'}"
    gateway = {
        "providers": [
            {"name": "sim", "type": "sim", "sim": {"output_tokens": 8, "ttft_ms": 20}},
            {
                "name": "up",
                "type": "openai",
                "base_url": f"{upstream.url}/v1",
                "api_key_env": "LLMGW_MULTINODE_OPENAI_KEY",
            },
        ],
        "models": [
            {"name": "sim-fast", "provider": "sim", "price": {"input_per_mtok": 1}},
            {"name": "gpt-mn", "provider": "up", "price": {"input_per_mtok": 1}},
        ],
        "store": {"url": store},
    }
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(gateway))
    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}"

    cluster.start_head(num_cpus=1, resources={"head": 1, "ingress_node": 1})
    cluster.wait_for_nodes()
    head = cluster.nodes[0]
    # The app first runs on the head alone, so the ingress makes the gateway's actors there
    # (see below); its pools wait for nodes with `pool_node`.
    cluster.serve_deploy(_serve_config(tmp_path / "gateway.yaml", http_port))
    _wait("the ingress", lambda: _running_on(cluster, "Ingress"), timeout_s=180)
    # One at a time: on a loaded machine two nodes starting at once miss Ray's start timeouts.
    workers = []
    for i in (1, 2):
        workers.append(cluster.start_worker(f"worker{i}", 1, {"pool_node": 1, f"worker{i}": 1}))
        cluster.wait_for_nodes()
    _wait(
        "the pools",
        lambda: _running_on(cluster, "SimPool") and len(_running_on(cluster, "OpenAIPool")) == 2,
        timeout_s=180,
    )
    _wait(
        "the gateway's HTTP",
        lambda: httpx.get(f"{url}/v1/models", headers=ADMIN).status_code == 200,
    )
    up_s = time.monotonic() - t0

    # Placement: ingress on the head, the pools on the workers, one OpenAIPool on each.
    assert _running_on(cluster, "Ingress") == {head.node_id}
    assert _running_on(cluster, "OpenAIPool") == {w.node_id for w in workers}
    (pool_node,) = _running_on(cluster, "SimPool")
    victim = cluster.node(pool_node)
    assert victim in workers
    (survivor,) = [w for w in workers if w is not victim]

    # State made before the kill: a model added through the admin API, a tenant and its key.
    added = httpx.post(
        f"{url}/admin/models",
        json={"name": "sim-added", "provider": "sim", "price": {"input_per_mtok": 2}},
        headers=ADMIN,
    )
    assert added.status_code == 201, added.text
    assert (
        httpx.post(f"{url}/admin/tenants", json={"name": TENANT}, headers=ADMIN).status_code == 201
    )
    made = httpx.post(
        f"{url}/admin/keys", json={"tenant": TENANT, "scopes": ["inference"]}, headers=ADMIN
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    tenant = {"authorization": f"Bearer {key}"}
    _wait(
        "the key and the added model on the ingress",
        lambda: "sim-added" in httpx.get(f"{url}/v1/models", headers=tenant).text,
        timeout_s=30,
    )
    actors = {a["class_name"]: cluster.node_name(a["node_id"]) for a in cluster.actors()}
    # The gateway's own actors (registry, access, quota, usage writer) ask for no resources,
    # so Ray may start them on any node: here the head, the only node when the ingress
    # made them. (Were they on the killed node they would restart elsewhere from the store.)
    stateful = ("RegistryActor", "AccessActor", "QuotaActor", "UsageWriter")
    assert {actors.get(name) for name in stateful} == {"head"}, actors

    with Traffic(url, key, ["sim-fast", "sim-added", "gpt-mn", "gpt-mn"]) as traffic:
        # Warmed up: calls answered by every pool before the kill.
        _wait("calls before the kill", lambda: len(traffic.calls) >= 30, timeout_s=120)
        killed_at = time.monotonic()
        killed_wall = datetime.now(UTC)
        victim.kill()
        timeline = _recovery(cluster, victim.node_id, survivor.node_id, killed_at)
        time.sleep(4)  # traffic on the rescheduled pool

    calls = sorted(traffic.calls, key=lambda c: c.started)
    failed = [c for c in calls if c.outcome != "ok"]
    before = [c for c in calls if c.ended < killed_at]
    # Recovered: from the kill to the end of the first call after which every call succeeded.
    last_failure = max((c.ended for c in failed), default=killed_at)
    first_good = min(c.ended for c in calls if c.started >= last_failure and c.outcome == "ok")
    recovered_s = max(0.0, first_good - killed_at)
    spanning = [c for c in calls if c.started < killed_at < c.ended]

    def slowest(models: set[str]) -> float:
        after = [c.ended - c.started for c in calls if c.ended > killed_at and c.model in models]
        return max(after, default=0.0)

    slowest_sim, slowest_openai = slowest({"sim-fast", "sim-added"}), slowest({"gpt-mn"})

    # The registry, the key and the usage from before the kill are all still there.
    listed = httpx.get(f"{url}/v1/models", headers=tenant)
    assert listed.status_code == 200 and "sim-added" in listed.text, listed.text
    late = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    assert (
        late.chat.completions.create(model="sim-added", messages=HELLO).choices[0].message.content
    )
    ok_total = sum(c.outcome == "ok" for c in calls) + 1
    usage = _wait(
        "every answered call in the usage report",
        lambda: next((u for u in [_usage(url)] if u["requests"] - u["errors"] >= ok_total), None),
        timeout_s=30,
    )
    usage_before = _usage(url, until=killed_wall.isoformat())

    print(
        f"\ncluster up and gateway serving in {up_s:.1f} s; actors before the kill: {actors}"
        f"\nkilled {victim.name} (the pool's node); seconds after the kill: "
        + ", ".join(f"{event} {at:.1f}" for event, at in timeline.items())
        + (
            f"; every call succeeded again {recovered_s:.1f} s after the kill"
            if failed
            else "; no call failed"
        )
        + f"\ncalls: {len(calls)}, outcomes {dict(Counter(c.outcome for c in calls))}; "
        f"{len(spanning)} in flight at the kill; slowest call after it: SimPool (one replica) "
        f"{slowest_sim:.1f} s, OpenAIPool (one replica left) {slowest_openai:.1f} s"
        f"\nusage: {usage} (answered {ok_total}); before the kill {usage_before} "
        f"(answered before it: {sum(c.outcome == 'ok' for c in before)})"
    )
    assert len(before) >= 30
    # The OpenAIPool kept its replica on the survivor: its calls went on through the gap.
    gap = (killed_at + 1, killed_at + timeline["replacement RUNNING"])
    in_gap = [c for c in calls if c.model == "gpt-mn" and gap[0] < c.started and c.ended < gap[1]]
    assert len(in_gap) >= 3 and all(c.outcome == "ok" for c in in_gap), in_gap
    assert usage_before["requests"] >= sum(c.outcome == "ok" for c in before)
    # Once the replacement ran, every call succeeded, for seconds of traffic; any failure
    # happened in the gap.
    settled = [c for c in calls if c.started >= killed_at + timeline["replacement RUNNING"]]
    assert len(settled) > 10 and all(c.outcome == "ok" for c in settled), settled
    assert all(c.ended > killed_at for c in failed), failed
    assert recovered_s <= timeline["replacement RUNNING"] + 10, recovered_s
