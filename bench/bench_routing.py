"""Micro-benchmark of routing decisions over a 1,000-model registry.

Times `plan()` one call at a time (perf_counter_ns around each call) for `auto` under every
strategy, `auto` with selective filters, and a named model; prints p50/p99 microseconds per
decision, and with `--json PATH` writes the raw figures. Also times building the routing table,
which happens once per registry or stats version, off the per-request path.

    .venv/bin/python bench/bench_routing.py [--models 1000] [--calls 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import USE_CASES, ModelConfig, ProviderConfig, RoutingConfig
from gateway.registry.snapshot import ModelStats, RegistrySnapshot
from gateway.routing import CircuitBoard, RouteRequest, TenantPolicy, plan
from gateway.routing.table import RoutingTable

PROVIDER_TYPES = ("openai", "anthropic", "bedrock", "azure_openai", "ollama", "sim")


def build_snapshot(n_models: int, seed: int = 1) -> RegistrySnapshot:
    """A registry shaped like a large enterprise's: 24 providers, mixed use cases, prices
    spread over three orders of magnitude, a few testing and deprecated models, stats for most."""
    rng = random.Random(seed)
    providers = {}
    for i in range(24):
        kind = PROVIDER_TYPES[i % len(PROVIDER_TYPES)]
        providers[f"{kind}-{i}"] = ProviderConfig(name=f"{kind}-{i}", type=kind)
    names = list(providers)
    models: dict[str, ModelConfig] = {}
    stats: dict[str, ModelStats] = {}
    for i in range(n_models):
        name = f"model-{i:04d}"
        capabilities = ["chat", "streaming"]
        for capability, share in (("tools", 0.6), ("json_mode", 0.7), ("vision", 0.3)):
            if rng.random() < share:
                capabilities.append(capability)
        use_cases = ["chat"] if rng.random() < 0.8 else []
        use_cases += [u for u in USE_CASES[1:] if rng.random() < 0.35]
        input_price = round(10 ** rng.uniform(-2, 1.3), 3)
        status = rng.choices(["active", "testing", "deprecated"], [0.9, 0.07, 0.03])[0]
        models[name] = ModelConfig(
            name=name,
            provider=rng.choice(names),
            upstream=f"up-{i}",
            aliases=[f"alias-{i}"],
            use_cases=use_cases or ["summarization"],
            capabilities=capabilities,
            context_window=rng.choice([4096, 8192, 32768, 128000, 200000, 1000000]),
            price={"input_per_mtok": input_price, "output_per_mtok": input_price * 4},
            status=status,
            quality=round(rng.uniform(0.2, 0.95), 3),
            fallbacks=[f"model-{(i + j) % n_models:04d}" for j in (1, 2)],
        )
        if rng.random() < 0.7:
            requests = rng.randint(20, 5000)
            stats[name] = ModelStats(
                requests=requests,
                errors=int(requests * rng.choice([0, 0, 0.01, 0.05, 0.3])),
                latency_p50_ms=rng.uniform(80, 4000),
            )
    return RegistrySnapshot(1, providers, models, stats, stats_version=1)


def scenarios(snapshot: RegistrySnapshot) -> dict[str, list[RouteRequest]]:
    """64 varied requests per scenario, cycled: use cases, needs, sizes and hints differ."""
    rng = random.Random(2)
    providers = sorted(snapshot.providers)
    needs_mix = [
        frozenset({"chat"}),
        frozenset({"chat", "streaming"}),
        frozenset({"chat", "tools"}),
        frozenset({"chat", "streaming", "json_mode"}),
    ]

    def requests(**fixed: object) -> list[RouteRequest]:
        out = []
        for _ in range(64):
            fields: dict[str, object] = {
                "model": "auto",
                "use_case": rng.choice(USE_CASES),
                "needs": rng.choice(needs_mix),
                "prompt_tokens": rng.choice([50, 500, 3000]),
                "max_output_tokens": rng.choice([None, 256, 1024]),
            }
            fields.update(fixed)
            out.append(RouteRequest(**fields))  # type: ignore[arg-type]
        return out

    tenant = TenantPolicy(
        preferred_models=("model-0007",),
        preferred_providers=(providers[3], providers[5]),
    )
    return {
        "capability": requests(strategy="capability"),
        "cost": requests(strategy="cost"),
        "latency": requests(strategy="latency"),
        "preference": requests(strategy="preference", prefer=(providers[1], "model-0042")),
        "tenant": requests(strategy="tenant", policy=tenant),
        "hybrid": requests(strategy="hybrid"),
        "hybrid+prefer": requests(strategy="hybrid", prefer=(providers[2], providers[9])),
        "cost, 2 providers, vision, 100k ctx": requests(
            strategy="cost",
            providers=frozenset(providers[:2]),
            needs=frozenset({"chat", "vision"}),
            prompt_tokens=100_000,
        ),
        "hybrid, max $1/Mtok, p50<1s": requests(
            strategy="hybrid", max_cost_per_mtok=1.0, max_latency_ms=1000.0
        ),
        "named (+2 fallbacks)": [
            RouteRequest(model=f"alias-{rng.randrange(len(snapshot.models))}") for _ in range(64)
        ],
    }


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20_000, help="decisions per scenario")
    parser.add_argument("--json", type=Path, help="write raw figures here")
    args = parser.parse_args()

    snapshot = build_snapshot(args.models)
    config = RoutingConfig(provider_preference=sorted(snapshot.providers)[4:8])
    board = CircuitBoard(config.circuit)
    # Trip a few circuits so the circuit filter is exercised, as it would be in production.
    for name in list(snapshot.models)[::97]:
        model = snapshot.models[name]
        for _ in range(config.circuit.failure_threshold):
            board.get(model.provider, name).record(False)

    builds = []
    for _ in range(5):
        start = time.perf_counter()
        RoutingTable(snapshot, config)
        builds.append((time.perf_counter() - start) * 1000)

    python = platform.python_version()
    load = os.getloadavg()[0]
    print(f"{args.models} models, {args.calls} decisions per scenario, python {python}")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} at start")
    print(f"routing table build: {statistics.median(builds):.1f} ms (median of 5)")
    print(
        "wall = perf_counter around each call; cpu = this thread's CPU time around each call\n"
        "(cpu leaves out time the OS gave other processes, so it holds on a busy machine)\n"
    )
    print(f"{'scenario':40} {'wall p50':>9} {'p99':>7} {'cpu p50':>9} {'p99':>7}  (us)")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    raw: dict[str, dict[str, list[float]]] = {}
    for name, requests in scenarios(snapshot).items():
        for request in requests:  # warm: the table is built on the first call
            plan(request, snapshot, config, board)
        summary[name], raw[name] = {}, {}
        for kind, clock in (("wall", time.perf_counter_ns), ("cpu", time.thread_time_ns)):
            timings = time_calls(requests, snapshot, config, board, args.calls, clock)
            ordered = sorted(timings)
            summary[name][kind] = {
                "p50_us": percentile(ordered, 0.5),
                "p99_us": percentile(ordered, 0.99),
                "max_us": ordered[-1],
                "mean_us": statistics.fmean(ordered),
            }
            raw[name][kind] = timings
        wall, cpu = summary[name]["wall"], summary[name]["cpu"]
        print(
            f"{name:40} {wall['p50_us']:9.1f} {wall['p99_us']:7.1f}"
            f" {cpu['p50_us']:9.1f} {cpu['p99_us']:7.1f}"
        )
    overhead = {
        kind: percentile(sorted(clock_overhead(clock) for _ in range(2000)), 0.5)
        for kind, clock in (("wall", time.perf_counter_ns), ("cpu", time.thread_time_ns))
    }
    print(
        f"\nclock overhead included in each figure: wall {overhead['wall']:.2f} us,"
        f" cpu {overhead['cpu']:.2f} us"
    )

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "models": args.models,
                    "calls": args.calls,
                    "python": python,
                    "cpus": os.cpu_count(),
                    "load_average": load,
                    "table_build_ms": builds,
                    "clock_overhead_us": overhead,
                    "summary": summary,
                    "timings_us": raw,
                }
            )
        )
        print(f"raw figures written to {args.json}")


def time_calls(
    requests: list[RouteRequest],
    snapshot: RegistrySnapshot,
    config: RoutingConfig,
    board: CircuitBoard,
    calls: int,
    clock: Callable[[], int],
) -> list[float]:
    """Microseconds per `plan()` call, one call at a time, garbage collection paused."""
    timings = []
    gc.disable()
    try:
        for i in range(calls):
            request = requests[i % len(requests)]
            start = clock()
            plan(request, snapshot, config, board)
            timings.append((clock() - start) / 1000)
    finally:
        gc.enable()
    return timings


def clock_overhead(clock: Callable[[], int]) -> float:
    start = clock()
    return (clock() - start) / 1000


if __name__ == "__main__":
    main()
