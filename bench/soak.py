"""Soak: minutes of mixed traffic against llmgw with injected upstream failures, watching
memory and file descriptors of every gateway process.

    .venv/bin/python bench/soak.py --minutes 10            # the issue's run; appends to RESULTS.md
    .venv/bin/python bench/soak.py --minutes 1 --no-report  # a smoke run

Starts ``llmgw up --detach`` (bench/peer_llmgw.py's isolation: own RAY_TMPDIR, HAProxy paths
and, beside another cluster, its own Ray) on the built-in sim provider with 5% injected
upstream failures (429/500/503), then drives a paced, bounded loop of requests on loopback:
streaming and not, to a model with a fallback and to one without. Every ``--sample-s``
seconds it sums RSS and PSS over every process carrying the run's tag (all of Ray's processes
for this gateway) and counts their open file descriptors.

An error is *explained* when it is a clean OpenAI-shaped 429/5xx naming the flaky provider's
injected status (``upstream provider 'flaky' answered ...``), on the model without a fallback,
after the gateway's retry; anything else (a connection error, a timeout, a stream cut without
an error event, a 5xx from a model with a healthy fallback) is *unexplained*.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import peer_llmgw
from peer_llmgw import VARIANTS, Llmgw, Variant
from peers import Skip
from procs import Tagged, memory, proc_name

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
FAILURE_RATE = 0.05
INJECTED = [429, 500, 503]
PROMPT = [{"role": "user", "content": "Say something short about soak tests."}]

SOAK_CONFIG = f"""\
providers:
  - {{name: flaky, type: sim, sim: {{seed: 11, ttft_ms: 20, tokens_per_s: 400, output_tokens: 24,
      failure_rate: {FAILURE_RATE}, failure_statuses: {INJECTED}}}}}
  - {{name: steady, type: sim, sim: {{seed: 3, ttft_ms: 20, tokens_per_s: 400, output_tokens: 24}}}}
models:
  # bench-model: the name the harness's readiness probe asks for
  - {{name: soak-fb, provider: flaky, upstream: soak, fallbacks: [soak-backup],
     aliases: [bench-model]}}
  - {{name: soak-alone, provider: flaky, upstream: soak}}
  - {{name: soak-backup, provider: steady, upstream: backup}}
routing:
  retries: {{max_attempts: 2, base_delay_s: 0.02, max_delay_s: 0.2, max_retry_after_s: 2}}
  # 5% failures must not open circuits: the soak measures steady state, not tripping
  circuit: {{failure_threshold: 50, min_requests: 1000}}
"""


def soak_config(variant: Variant, upstream: str) -> str:
    return SOAK_CONFIG


class SoakGateway(Llmgw):
    """llmgw, started as the benchmark starts it, with the soak's config."""

    def __init__(self, **kw: object) -> None:
        VARIANTS.setdefault("llmgw-soak", Variant(1, "ingress -> SimPool (5% failures)", sim=True))
        super().__init__("llmgw-soak", **kw)


# ------------------------------------------------------------------------------ sampling


def fd_count(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def sample(tagged: Tagged, t0: float) -> dict:
    mem = memory(tagged, breakdown=True)
    pids = tagged.pids()
    fds_by: Counter[str] = Counter()
    for pid in pids:
        fds_by[proc_name(pid)] += fd_count([pid])
    return {
        "t_s": round(time.monotonic() - t0, 1),
        "rss_mb": mem["rss_mb"],
        "pss_mb": mem["pss_mb"],
        "processes": mem["processes"],
        "fds": sum(fds_by.values()),
        "rss_mb_by_process": mem["rss_mb_by_process"],
        "fds_by_process": dict(fds_by),
    }


# ------------------------------------------------------------------------------ traffic


class Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.ok = 0
        self.fell_back = 0
        self.explained: Counter[str] = Counter()
        self.unexplained: Counter[str] = Counter()
        self.examples: list[str] = []
        self.by_kind: Counter[str] = Counter()

    def bad(self, what: str, detail: str) -> None:
        self.unexplained[what] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{what}: {detail[:300]}")


def _explained(status: int, error: dict | None, model: str) -> bool:
    if model != "soak-alone" or not isinstance(error, dict):
        return False
    message = str(error.get("message", ""))
    shape = {"message", "type", "param", "code"} <= set(error)
    injected = any(f"answered {s}" in message for s in INJECTED)
    return shape and status in (429, 502, 503) and "'flaky'" in message and injected


async def one_call(client: httpx.AsyncClient, url: str, tally: Tally, rng: random.Random) -> None:
    model = "soak-fb" if rng.random() < 0.7 else "soak-alone"
    stream = rng.random() < 0.5
    kind = f"{model}/{'stream' if stream else 'json'}"
    tally.requests += 1
    tally.by_kind[kind] += 1
    body = {"model": model, "messages": PROMPT, "max_tokens": 24}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    try:
        async with client.stream("POST", url, json=body, timeout=30) as response:
            if response.status_code != 200:
                raw = await response.aread()
                try:
                    error = json.loads(raw).get("error")
                except ValueError:
                    error = None
                label = f"{response.status_code} {(error or {}).get('code')}"
                if _explained(response.status_code, error, model):
                    tally.explained[label] += 1
                else:
                    tally.bad(f"http {label} ({kind})", raw.decode(errors="replace"))
                return
            served = response.headers.get("x-llmgw-model")
            if not stream:
                data = json.loads(await response.aread())
                if not data.get("choices"):
                    tally.bad(f"no choices ({kind})", json.dumps(data))
                    return
            else:
                done = False
                async for line in response.aiter_lines():
                    if line.startswith("data: [DONE]"):
                        done = True
                    elif line.startswith("data: ") and '"error"' in line[:20]:
                        tally.bad(f"in-stream error ({kind})", line)
                        return
                if not done:
                    tally.bad(f"stream without [DONE] ({kind})", "")
                    return
            tally.ok += 1
            if served and served != model:
                tally.fell_back += 1
    except (httpx.HTTPError, ValueError) as exc:
        tally.bad(f"{type(exc).__name__} ({kind})", repr(exc))


async def drive(url: str, key: str, seconds: float, rps: float, tally: Tally) -> None:
    """Calls at `rps` on average (Poisson arrivals), at most 64 in flight, until `seconds`."""
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    headers = {"authorization": f"Bearer {key}"}
    in_flight = asyncio.Semaphore(64)
    tasks: set[asyncio.Task] = set()
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            next_at += rng.expovariate(rps)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await in_flight.acquire()

            async def call() -> None:
                try:
                    await one_call(client, url, tally, rng)
                finally:
                    in_flight.release()

            task = asyncio.create_task(call())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=60)


async def soak(url: str, key: str, tagged: Tagged, args: argparse.Namespace) -> dict:
    tally = Tally()
    samples: list[dict] = []
    t0 = time.monotonic()
    seconds = args.minutes * 60

    async def sampler() -> None:
        while True:
            samples.append(sample(tagged, t0))
            s = samples[-1]
            print(
                f"  t={s['t_s']:6.0f}s requests={tally.requests} ok={tally.ok} "
                f"explained={sum(tally.explained.values())} "
                f"unexplained={sum(tally.unexplained.values())} RSS={s['rss_mb']:.0f} MB "
                f"PSS={s['pss_mb']:.0f} MB fds={s['fds']} procs={s['processes']}",
                flush=True,
            )
            await asyncio.sleep(args.sample_s)

    watcher = asyncio.create_task(sampler())
    try:
        await drive(url, key, seconds, args.rps, tally)
    finally:
        watcher.cancel()
    await asyncio.sleep(2)  # let in-flight streams and usage writes settle
    samples.append(sample(tagged, t0))
    return {"tally": tally, "samples": samples, "elapsed_s": time.monotonic() - t0}


# ------------------------------------------------------------------------------ report


def _window(samples: list[dict], start: float, end: float) -> list[dict]:
    return [s for s in samples if start <= s["t_s"] <= end] or samples[-1:]


def _mean(samples: list[dict], field: str) -> float:
    return sum(s[field] for s in samples) / len(samples)


def usage_figures(home: Path | None) -> dict:
    """What the gateway billed: its usage rows (read before the run's home is removed)."""
    from gateway.store.store import Store

    db = home / "llmgw.db" if home else None
    if db is None or not db.exists():
        return {}
    store = Store(f"sqlite:///{db}")
    try:
        rows = store.list_usage(limit=None)
    finally:
        store.close()
    return {
        "rows": len(rows),
        "retried": sum(1 for r in rows if r.attempts > 1 and not r.fallbacks),
        "fell_back": sum(1 for r in rows if r.fallbacks),
        "failed_by_status": dict(Counter(r.status for r in rows if r.status != 200)),
    }


def summarise(result: dict, args: argparse.Namespace) -> dict:
    samples, tally = result["samples"], result["tally"]
    warm = args.warmup_s
    after = _window(samples, warm, warm + 3 * args.sample_s)
    end = samples[-3:]
    rss_warm, rss_end = _mean(after, "rss_mb"), _mean(end, "rss_mb")
    pss_warm, pss_end = _mean(after, "pss_mb"), _mean(end, "pss_mb")
    fds_warm, fds_end = _mean(after, "fds"), _mean(end, "fds")
    by_proc_warm, by_proc_end = after[0]["rss_mb_by_process"], end[-1]["rss_mb_by_process"]
    growth = {
        name: round(by_proc_end.get(name, 0) - mb, 1)
        for name, mb in by_proc_warm.items()
        if abs(by_proc_end.get(name, 0) - mb) >= 5
    }
    return {
        "minutes": args.minutes,
        "rps_target": args.rps,
        "elapsed_s": round(result["elapsed_s"]),
        "requests": tally.requests,
        "ok": tally.ok,
        "fell_back": tally.fell_back,
        "by_kind": dict(tally.by_kind),
        "explained": dict(tally.explained),
        "unexplained": dict(tally.unexplained),
        "examples": tally.examples,
        "rss_warm_mb": round(rss_warm),
        "rss_end_mb": round(rss_end),
        "rss_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 2),
        "pss_warm_mb": round(pss_warm),
        "pss_end_mb": round(pss_end),
        "pss_growth_pct": round(100 * (pss_end - pss_warm) / pss_warm, 2),
        "fds_warm": round(fds_warm),
        "fds_end": round(fds_end),
        "fds_min": min(s["fds"] for s in samples[len(samples) // 4 :]),
        "fds_max": max(s["fds"] for s in samples[len(samples) // 4 :]),
        "processes": sorted({s["processes"] for s in samples}),
        "rss_change_by_process_mb": growth,
        "usage": result.get("usage", {}),
        "load_before": args.load_before,
        "load_after": os.getloadavg(),
    }


def markdown(s: dict, command: str) -> str:
    explained = sum(s["explained"].values())
    unexplained = sum(s["unexplained"].values())
    u = s["usage"]
    kinds = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["by_kind"].items()))
    lines = [
        f"## Soak, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`{command}`: {s['minutes']:g} minutes of mixed traffic (Poisson arrivals at "
        f"{s['rps_target']:g} req/s, half streaming; 70% to `soak-fb`, a sim model failing 5% "
        "of calls (429/500/503) with a healthy fallback, 30% to `soak-alone`, the same model "
        "without one; retries: 2 attempts) through `llmgw up` (production HTTP mode) on "
        "loopback. Memory and open fds are summed over every process of the gateway's Ray "
        f"(GCS, raylet, workers, Serve controller, HAProxy, replicas), sampled every "
        f"{s.get('sample_s', 10):g} s; warm-up is the first {s.get('warmup_s', 60):g} s. "
        f"Two cores shared with other engineers' test runs (load average "
        f"{s['load_before'][0]:.1f} before, {s['load_after'][0]:.1f} after).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests | {s['requests']:,} ({kinds}) |",
        f"| succeeded | {s['ok']:,} (of which served by the fallback: {s['fell_back']:,}) |",
        f"| explained errors (clean OpenAI-shaped 429/5xx for an injected failure, model "
        f"without fallback, after its retry) | {explained:,} {s['explained'] or ''} |",
        f"| unexplained errors | {unexplained:,} {s['unexplained'] or ''} |",
        f"| RSS after warm-up -> end | {s['rss_warm_mb']:,} MB -> {s['rss_end_mb']:,} MB "
        f"({s['rss_growth_pct']:+.1f}%) |",
        f"| PSS after warm-up -> end | {s['pss_warm_mb']:,} MB -> {s['pss_end_mb']:,} MB "
        f"({s['pss_growth_pct']:+.1f}%) |",
        f"| open fds after warm-up -> end (min-max after the first quarter) | "
        f"{s['fds_warm']:,} -> {s['fds_end']:,} ({s['fds_min']:,}-{s['fds_max']:,}) |",
        f"| usage rows the gateway wrote (every call, the readiness probes too) | "
        f"{u.get('rows', 'n/a')}: retried and served {u.get('retried', 'n/a')}, fell back "
        f"{u.get('fell_back', 'n/a')}, failed by status {u.get('failed_by_status', 'n/a')} |",
        f"| processes | {', '.join(map(str, s['processes']))} |",
        f"| RSS change by process (>= 5 MB) | {s['rss_change_by_process_mb'] or 'none'} |",
        "",
    ]
    if s["examples"]:
        lines += ["Unexplained errors, first ones:", ""]
        lines += [f"- `{e}`" for e in s["examples"]] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="llmgw soak: mixed traffic, memory and fds")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rps", type=float, default=20.0, help="mean request rate (Poisson)")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--warmup-s", type=float, help="default: 60 s, or 10%% of a short run")
    ap.add_argument("--ready-timeout", type=float, default=240.0)
    ap.add_argument("--no-report", action="store_true", help="print only; leave RESULTS.md")
    args = ap.parse_args(argv)
    if args.warmup_s is None:
        args.warmup_s = min(60.0, args.minutes * 6)
    args.load_before = os.getloadavg()
    command = "python bench/soak.py " + " ".join(argv if argv is not None else sys.argv[1:])
    # The benchmark's llmgw peer writes its one-model config; the soak needs its own.
    peer_llmgw.gateway_config = soak_config
    gateway = SoakGateway(ready_timeout=args.ready_timeout)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        gateway.install()
        print(f"starting llmgw (tag {gateway.tag}) ...", flush=True)
        target = gateway.start("unused")
        print(f"ready in {gateway.ready_s:.0f} s at {target.url}", flush=True)
        key = target.headers["authorization"].split()[1]
        result = asyncio.run(soak(target.url, key, gateway.tagged, args))
        time.sleep(2)  # the usage writer flushes within a second or two
        result["usage"] = usage_figures(gateway.home)
    except Skip as exc:
        print(f"llmgw could not start: {exc}", file=sys.stderr)
        return 2
    finally:
        gateway.stop()
    summary = summarise(result, args) | {"sample_s": args.sample_s, "warmup_s": args.warmup_s}
    text = markdown(summary, command)
    print(text)
    print(json.dumps({k: v for k, v in summary.items() if k != "examples"}, indent=1))
    if not args.no_report:
        with RESULTS.open("a") as fh:
            fh.write("\n" + text)
    return 0 if not summary["unexplained"] else 1


if __name__ == "__main__":
    sys.exit(main())
