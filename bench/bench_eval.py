"""A 10,000-call eval sweep against the sim models, and the same calls from a plain asyncio loop.

    .venv/bin/python bench/bench_eval.py                       # starts its own gateway
    .venv/bin/python bench/bench_eval.py --gateway URL --key K  # against a running one
    .venv/bin/python bench/bench_eval.py --calls 2000 --append  # + a section in RESULTS.md

The sweep is the built-in chat dataset (50 cases) x 2 prompts x 2 sim models x N repeats, with
two cheap scorers; the plain loop sends the same requests with the same concurrency through
one httpx.AsyncClient and does nothing else. Both go through the same gateway, so the
difference is the sweep's own cost: Ray Data, scoring, Parquet parts and resume bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals import load_run  # noqa: E402
from evals.datasets import load_cases  # noqa: E402
from evals.runner import RunOptions, plan, run_sweep  # noqa: E402
from evals.sweep import parse_sweep  # noqa: E402

LLMGW = [str(Path(sys.executable).with_name("llmgw"))]
ADMIN = "sk-llmgw-bench-eval-admin-0123456789abcdef"


def sweep_for(calls: int, concurrency: int, output: str) -> dict:
    repeats = max(1, calls // (50 * 2 * 2))
    return {
        "name": "bench",
        "dataset": {"path": "chat", "reference": "reference", "category": "category"},
        "prompts": [
            {"name": "terse", "template": "{input}", "system": "Answer briefly."},
            {"name": "plain", "template": "Question: {input}"},
        ],
        "models": ["sim-fast", "sim-smart"],
        "params": {"temperature": 0, "max_tokens": 32},
        "repeats": repeats,
        "scorers": ["exact_match", "token_f1"],
        "concurrency": concurrency,
        "batch_size": 256,
        "output": output,
    }


async def plain_loop(url: str, key: str, bodies: list[dict], concurrency: int) -> float:
    """The same calls, `concurrency` in flight, nothing else: seconds taken."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {key}"}, limits=limits, timeout=120
    ) as client:
        queue = iter(bodies)
        errors = 0

        async def worker() -> None:
            nonlocal errors
            for body in queue:
                response = await client.post("/v1/chat/completions", json=body)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if errors:
        print(f"plain loop: {errors} errors", file=sys.stderr)
    return elapsed


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(home: str) -> tuple[str, str, dict[str, str]]:
    """A Ray of this process's own (as the tests start one: never a cluster someone else runs),
    with HAProxy's files and ports private, and `llmgw up` on it; a tenant key for the sweep."""
    import ray

    haproxy = tempfile.mkdtemp(prefix="lgb-", dir="/tmp")
    env = dict(os.environ, LLMGW_HOME=home, LLMGW_ADMIN_KEY=ADMIN, RAY_USAGE_STATS_ENABLED="0")
    env["RAY_AUTH_MODE"] = "disabled"  # a private cluster on loopback, for this run only
    env |= {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{haproxy}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{haproxy}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": haproxy,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{haproxy}/server-state",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{haproxy}/metrics.sock",
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
    }
    os.environ.update(env)
    ray.init(
        address="local",
        include_dashboard=False,
        num_cpus=2,
        log_to_driver=False,
        runtime_env={"env_vars": {"LLMGW_HOME": home}},
    )
    env["RAY_ADDRESS"] = os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    port = str(_free_port())
    subprocess.run([*LLMGW, "up", "--port", port, "--detach"], env=env, check=True)
    subprocess.run([*LLMGW, "tenants", "create", "bench"], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [*LLMGW, "keys", "create", "--tenant", "bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return f"http://127.0.0.1:{port}", json.loads(made.stdout)["key"], env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway")
    parser.add_argument("--key")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="llmgw-bench-eval-")
    started_here = args.gateway is None
    env: dict[str, str] = {}
    if started_here:
        args.gateway, args.key, env = start_gateway(home)
    os.environ.setdefault("LLMGW_HOME", home)
    load_before = os.getloadavg()
    try:
        sweep = parse_sweep(sweep_for(args.calls, args.concurrency, f"{home}/runs"))
        rows = plan(sweep, load_cases("chat"), "bench")
        bodies = [
            {**sweep.params, "model": r["model"], "messages": json.loads(r["messages"])}
            for r in rows
        ]
        plain_s = asyncio.run(plain_loop(args.gateway, args.key, bodies, args.concurrency))

        options = RunOptions(gateway=args.gateway, key=args.key)
        started = time.perf_counter()
        manifest = run_sweep(sweep, options)
        sweep_s = time.perf_counter() - started
        results, _ = load_run(manifest["location"])
    finally:
        if started_here:
            import ray

            subprocess.run([*LLMGW, "down", "--keep-ray"], env=env, check=False)
            ray.shutdown()

    n = len(rows)
    errors = int(results["error"].notna().sum())
    lines = [
        "",
        f"## Eval sweep throughput ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`.venv/bin/python bench/bench_eval.py --calls {args.calls} --concurrency "
        f"{args.concurrency}` on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load_before[0]:.1f} at start (other work shared the machine). "
        f"{n:,} chat calls (built-in chat dataset x 2 prompts x 2 sim models x "
        f"{sweep.repeats} repeats) through one llmgw (default config, HAProxy mode), "
        f"{args.concurrency} in flight.",
        "",
        "| client | seconds | calls/s | errors |",
        "|---|---|---|---|",
        f"| plain asyncio loop (httpx, no scoring, no writes) | {plain_s:.1f} | "
        f"{n / plain_s:.0f} | - |",
        f"| `llmgw eval run` (Ray Data, 1 worker, 2 scorers, Parquet parts, resume) | "
        f"{sweep_s:.1f} | {n / sweep_s:.0f} | {errors} |",
        "",
        f"Sweep / plain loop: {sweep_s / plain_s:.2f}x the time (the sweep's figure includes "
        "connecting to Ray, starting the Ray Data actor, checking models with the gateway and "
        "compacting the run).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(ROOT / "bench" / "RESULTS.md", "a") as results_md:
            results_md.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
