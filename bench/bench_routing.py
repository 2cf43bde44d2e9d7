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
import platform
import random
import statistics
import sys
import time
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

    results: dict[str, dict[str, float]] = {}
    raw: dict[str, list[float]] = {}
    python = platform.python_version()
    print(f"{args.models} models, {args.calls} decisions per scenario, python {python}")
    print(f"routing table build: {statistics.median(builds):.1f} ms (median of 5)\n")
    print(f"{'scenario':40} {'p50 us':>8} {'p99 us':>8} {'max us':>9}")
    clock = time.perf_counter_ns
    for name, requests in scenarios(snapshot).items():
        for request in requests:  # warm: the table is built on the first call
            plan(request, snapshot, config, board)
        timings = []
        gc.disable()
        for i in range(args.calls):
            request = requests[i % len(requests)]
            start = clock()
            plan(request, snapshot, config, board)
            timings.append((clock() - start) / 1000)
        gc.enable()
        ordered = sorted(timings)
        results[name] = {
            "p50_us": percentile(ordered, 0.5),
            "p99_us": percentile(ordered, 0.99),
            "max_us": ordered[-1],
            "mean_us": statistics.fmean(ordered),
        }
        raw[name] = timings
        r = results[name]
        print(f"{name:40} {r['p50_us']:8.1f} {r['p99_us']:8.1f} {r['max_us']:9.1f}")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "models": args.models,
                    "calls": args.calls,
                    "python": platform.python_version(),
                    "table_build_ms": builds,
                    "summary": results,
                    "timings_us": raw,
                }
            )
        )
        print(f"\nraw figures written to {args.json}")


if __name__ == "__main__":
    main()
