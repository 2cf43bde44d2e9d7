"""How many usage records a hard kill loses: load a gateway, kill -9 its ingress replica (or
the usage writer) in the middle, then compare the requests served (HTTP 200, by request id)
with the usage rows in the store. A graceful stop (`serve.delete`) is measured the same way.

    .venv/bin/python bench/usage_loss.py [--seconds 12] [--concurrency 16]
                                         [--kill ingress|writer|none]

Starts its own local Ray and Serve (HAProxy mode, as `llmgw up`), in a private LLMGW_HOME.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOME = Path(tempfile.mkdtemp(prefix="llmgw-loss-"))
os.environ["LLMGW_HOME"] = str(HOME)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
os.environ.setdefault(
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "gateway.usage.request_ids:serve_middlewares"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# HAProxy's files and side ports default to places every Serve cluster on the machine shares.
_HAPROXY = Path(tempfile.mkdtemp(prefix="llmgw-hp-", dir="/tmp"))
for _name, _value in {
    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": _HAPROXY / "haproxy.cfg",
    "RAY_SERVE_HAPROXY_SOCKET_PATH": _HAPROXY / "admin.sock",
    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": _HAPROXY,
    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": _HAPROXY / "server-state",
    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": _HAPROXY / "metrics.sock",
    "RAY_SERVE_HAPROXY_METRICS_PORT": _free_port(),
    "RAY_SERVE_HAPROXY_STATS_PORT": _free_port(),
}.items():
    os.environ.setdefault(_name, str(_value))
KEY = "sk-llmgw-loss-bench-0123456789abcdef"
os.environ["LLMGW_ADMIN_KEY"] = KEY
PORT = _free_port()


def pids(title: str) -> list[int]:
    """Processes of this script's own Ray cluster (descendants of this process) whose command
    line names `title`: never another cluster's on the same machine."""
    import psutil

    me = os.getpid()
    found = []
    for process in psutil.Process(me).children(recursive=True):
        try:
            if title in " ".join(process.cmdline()):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


async def load(
    url: str, seconds: float, concurrency: int, kill_at: float, kill: str
) -> tuple[dict[str, float], int, float | None]:
    import httpx

    served: dict[str, float] = {}  # request id -> when its response arrived (s from start)
    failed = 0
    killed_at: float | None = None
    body = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}]}
    counter = 0
    start = time.monotonic()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal counter, failed
        while time.monotonic() - start < seconds:
            counter += 1
            rid = f"loss-{counter}"
            try:
                r = await client.post(
                    f"{url}/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {KEY}", "x-request-id": rid},
                )
                if r.status_code == 200:
                    served[rid] = time.monotonic() - start
                else:
                    failed += 1
            except httpx.HTTPError:
                failed += 1
                await asyncio.sleep(0.05)

    async def killer() -> None:
        nonlocal killed_at
        if kill == "none":
            return
        await asyncio.sleep(kill_at)
        title = "ServeReplica:llmgw:Ingress" if kill == "ingress" else "UsageWriter"
        targets = pids(title)
        for pid in targets:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic() - start
        print(f"killed {kill} pids {targets} at {killed_at:.1f} s", flush=True)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(killer(), *(worker(client) for _ in range(concurrency)))
    return served, failed, killed_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--kill", choices=["ingress", "writer", "none"], default="ingress")
    args = parser.parse_args()

    import ray
    from ray import serve

    from deployments.app import APP_NAME, build_app, teardown
    from gateway.store import Store

    config = HOME / "gateway.yaml"
    config.write_text(
        "providers: [{name: sim, type: sim, sim: {output_tokens: 8}}]\n"
        "models: [{name: sim-fast, provider: sim}]\n"
    )
    ray.init(include_dashboard=False, namespace="llmgw-loss", num_cpus=2)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(build_app({"config": str(config)}), name=APP_NAME, route_prefix="/")
    url = f"http://127.0.0.1:{PORT}"
    served, failed, killed_at = asyncio.run(
        load(url, args.seconds, args.concurrency, args.seconds / 2, args.kill)
    )
    rate = len(served) / args.seconds
    print(f"served {len(served)} (200), failed {failed}, ~{rate:.0f} req/s", flush=True)
    teardown()  # graceful: replicas ship their buffers, the writer drains
    store = Store(f"sqlite:///{HOME / 'llmgw.db'}")
    stored = {
        r.request_id for r in store.list_usage(limit=None) if r.request_id.startswith("loss-")
    }
    lost = sorted(served[rid] for rid in set(served) - stored)
    print(f"usage rows {len(stored)}; served but not recorded {len(lost)}")
    if lost and killed_at is not None:
        # The window: how long before the kill the oldest lost response was sent.
        before = sum(1 for t in served.values() if killed_at - 1.0 <= t < killed_at)
        print(
            f"lost responses were sent {killed_at - lost[-1]:.2f}-{killed_at - lost[0]:.2f} s"
            f" before the kill; {before} responses in the last second before it"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
