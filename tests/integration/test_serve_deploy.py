"""`serve deploy serve_config.yaml` as ops run it: a Ray cluster of its own with the
dashboard, the shipped file (pointed at a test config), healthy by `serve status`, a call
through the official SDK, then user_configs re-deployed under traffic (a pool's bound set,
an invalid one refused, the bound removed): the running replicas apply each in place (the
same replica ids), the invalid one changes nothing, and no call fails.

This module starts and stops its own cluster (its own ports and temp dir) and never touches
the test session's Ray or any other cluster on the machine.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.config import DEPLOYMENT_NAMES
from tests.integration.local_cluster import LocalCluster, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEY = "sk-llmgw-serve-deploy-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
TTFT_S = 0.4  # the sim model's fixed latency: what makes a concurrency bound measurable


@dataclass
class Cluster:
    """A one-node Ray cluster of this module's own (tests/integration/local_cluster.py), the
    port its Serve listens on, and the `serve` CLI pointed at its dashboard."""

    local: LocalCluster
    http_port: int

    @property
    def dashboard(self) -> str:
        return self.local.dashboard

    @property
    def temp(self) -> Path:
        return self.local.root

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "serve"), *args],
            env=self.local.env,
            cwd=self.temp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _node_env(root: Path) -> dict[str, str]:
    """What this cluster's node adds to LocalCluster's clean environment: HAProxy files and
    side ports of its own (the defaults are shared by every Serve cluster on the machine),
    the admin key, and this tree importable by its workers."""
    haproxy = root / "hp"
    haproxy.mkdir()
    env = {
        "PYTHONPATH": str(ROOT),
        "LLMGW_HOME": str(root / "home"),
        "LLMGW_ADMIN_KEY": KEY,
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy / "metrics.sock"),
    }
    for name in (
        "RAY_SERVE_HAPROXY_METRICS_PORT",
        "RAY_SERVE_HAPROXY_STATS_PORT",
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
    ):
        env[name] = str(free_port())
    return env


@contextlib.contextmanager
def one_node_cluster(prefix: str, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A one-node cluster of its own under a temp dir named `prefix`, its nodes started with
    `_node_env` and `env` over it; every process of it ended on the way out."""
    # Short: Ray's socket paths under it must stay within ~100 characters.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    local = LocalCluster.create(root, _node_env(root) | (env or {}))
    try:
        local.start_head(num_cpus=2, resources={})
        local.wait_for_head()
        local.wait_for_nodes()
        yield Cluster(local, free_port())
    finally:
        # No `serve shutdown` first (a CLI run and Serve's drain, ~10 s): stop() ends every
        # process of the node, HAProxy included (a child of the proxy actor, `-db`).
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with one_node_cluster("llmgw-sd-") as cluster:
        yield cluster


def _wait(ready: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"not ready within {timeout_s:g} s")


def _serve_config(cluster: Cluster, pool_bound: int | None) -> Path:
    """The shipped serve_config.yaml, pointed at a test config and this cluster's port."""
    gateway = cluster.temp / "gateway.yaml"
    if not gateway.exists():
        sim = {"ttft_ms": TTFT_S * 1000, "output_tokens": 4}
        gateway.write_text(
            yaml.safe_dump(
                {
                    "providers": [{"name": "sim", "type": "sim", "sim": sim}],
                    "models": [{"name": "sim-fast", "provider": "sim"}],
                    "store": {"url": f"sqlite:///{cluster.temp / 'llmgw.db'}"},
                }
            )
        )
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": cluster.http_port}
    (app,) = config["applications"]
    app["args"]["config"] = str(gateway)
    (pool,) = [d for d in app["deployments"] if d["name"] == "SimPool"]
    pool["user_config"]["max_concurrent_calls"] = pool_bound
    path = cluster.temp / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _status(cluster: Cluster) -> dict[str, Any]:
    done = cluster.cli("status", "-a", cluster.dashboard, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return yaml.safe_load(done.stdout)["applications"].get("llmgw") or {}


def _app(cluster: Cluster) -> dict[str, Any]:
    """The app in Serve's REST view, which `serve status` prints a summary of."""
    return cluster.local.serve_details().get("applications", {}).get("llmgw") or {}


def _healthy(app: dict[str, Any], deployed_after: float) -> bool:
    """The app (as `serve status` or the REST API shows it) is RUNNING and every deployment
    HEALTHY after a deploy at `deployed_after` (not the previous one)."""
    deployments = app.get("deployments") or {}
    return (
        app.get("last_deployed_time_s", 0) > deployed_after
        and app.get("status") == "RUNNING"
        and set(deployments) == set(DEPLOYMENT_NAMES)
        and all(d["status"] == "HEALTHY" for d in deployments.values())
    )


def _deploy_and_wait(
    cluster: Cluster, pool_bound: int | None, *, serve_status: bool = False
) -> dict[str, Any]:
    """`serve deploy`, then wait until the app is healthy after this deploy; with
    `serve_status`, `serve status` must say so too, and its view is returned. The wait polls
    the REST API that `serve status` reads: each CLI run costs 5-15 s of this machine's two
    cores, which the cluster needs to start and reconfigure replicas."""
    before = _app(cluster).get("last_deployed_time_s", 0)
    done = cluster.cli("deploy", str(_serve_config(cluster, pool_bound)), "-a", cluster.dashboard)
    assert done.returncode == 0, done.stderr[-2000:]
    _wait(lambda: _healthy(_app(cluster), before), 300)
    if not serve_status:
        return _app(cluster)
    status = _status(cluster)
    assert _healthy(status, before), status
    return status


def _replicas(cluster: Cluster) -> dict[str, set[str]]:
    """The replica ids of each deployment: the same ids mean no replica was replaced."""
    deployments = cluster.local.serve_details()["applications"]["llmgw"]["deployments"]
    return {
        name: {r["replica_id"] for r in d["replicas"] if r["state"] == "RUNNING"}
        for name, d in deployments.items()
    }


class Traffic:
    """One SDK client calling in a loop (streamed and not) until stopped; outcomes counted."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                if n % 2:
                    chunks = self.client.chat.completions.create(
                        model="sim-fast", messages=HELLO, stream=True
                    )
                    ok = any(c.choices and c.choices[0].finish_reason for c in chunks)
                else:
                    reply = self.client.chat.completions.create(model="sim-fast", messages=HELLO)
                    ok = bool(reply.choices[0].message.content)
                self.outcomes["ok" if ok else "incomplete"] += 1
            except openai.OpenAIError as error:
                self.outcomes[f"{type(error).__name__}: {error}"[:200]] += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def _burst_s(client: openai.OpenAI, calls: int) -> float:
    """Wall time of `calls` concurrent calls."""
    started = time.monotonic()
    with ThreadPoolExecutor(calls) as pool:
        replies = list(
            pool.map(
                lambda _: client.chat.completions.create(model="sim-fast", messages=HELLO),
                range(calls),
            )
        )
    assert all(r.choices[0].message.content for r in replies)
    return time.monotonic() - started


def _logged(cluster: Cluster, text: str) -> bool:
    """Whether any log file of this cluster has `text` (replicas' stderr included)."""
    logs = cluster.temp / "head" / "session_latest" / "logs"
    return any(
        text in path.read_text(errors="replace") for path in logs.rglob("*") if path.is_file()
    )


def test_serve_deploy_then_live_user_config_changes(cluster: Cluster) -> None:
    status = _deploy_and_wait(cluster, pool_bound=None, serve_status=True)
    deployments = status["deployments"]
    # Deployments the test config does not use run no replica, and Serve calls them healthy.
    for name in set(DEPLOYMENT_NAMES) - {"Ingress", "SimPool"}:
        assert not any(deployments[name].get("replica_states", {}).values()), name

    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{cluster.http_port}/v1", api_key=KEY, max_retries=0
    )
    reply = client.chat.completions.create(model="sim-fast", messages=HELLO)
    assert reply.choices[0].message.content and reply.model == "sim-fast"
    calls = 6
    unbounded_s = _burst_s(client, calls)

    replicas = _replicas(cluster)
    with Traffic(client) as traffic:
        _deploy_and_wait(cluster, pool_bound=1)
        bounded_s = _burst_s(client, calls)
        # A bound of 0 is out of bounds: refused in the replicas, the bound of 1 stands.
        _deploy_and_wait(cluster, pool_bound=0)
        refused_s = _burst_s(client, calls)
        _deploy_and_wait(cluster, pool_bound=None)
        reverted_s = _burst_s(client, calls)
    after = _replicas(cluster)

    print(
        f"\n{calls} concurrent calls of {TTFT_S:g} s: {unbounded_s:.2f} s unbounded, "
        f"{bounded_s:.2f} s with SimPool max_concurrent_calls 1, {refused_s:.2f} s after a "
        f"refused 0, {reverted_s:.2f} s reverted to null; traffic through the three "
        f"re-deploys: {dict(traffic.outcomes)}"
    )
    # One call at a time through the pool: at least `calls` latencies end to end.
    assert bounded_s >= calls * TTFT_S and refused_s >= calls * TTFT_S
    assert unbounded_s < bounded_s and reverted_s < bounded_s
    assert _logged(cluster, "SimPool user_config refused, settings unchanged")
    # Applied in place: the very same replicas, none replaced, and no call failed.
    assert after == replicas
    assert set(traffic.outcomes) == {"ok"}, traffic.outcomes
    assert traffic.outcomes["ok"] > 0
