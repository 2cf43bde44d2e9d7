"""Benchmarks llmgw against LiteLLM, Portkey and the bare upstream, in one command.

    .venv/bin/python bench/run.py [--quick] [--only llmgw,litellm,portkey] [--scenarios 1,2,3,4,5]
    .venv/bin/python bench/run.py --only all   # also llmgw's inline, router and sim variants

Starts bench/mock_upstream.py, then each gateway in turn against it (the upstream alone,
"direct", always runs first: it is the floor), loads each with the same tools, and writes a
section to bench/RESULTS.md and the raw figures to bench/results/<timestamp>.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
import peers
import procs
import report
from procs import MemorySampler, Tagged, free_port, spawn, stop

HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="llmgw vs LiteLLM vs Portkey vs direct")
    ap.add_argument("--quick", action="store_true", help="smoke test: short runs, small counts")
    ap.add_argument(
        "--only",
        default=",".join(peers.DEFAULT),
        help=f"gateways, comma-separated, of {', '.join(peers.ALL)}; or a shorthand: "
        + "; ".join(f"{k} = {','.join(v)}" for k, v in peers.GROUPS.items()),
    )
    ap.add_argument("--scenarios", default="1,2,3,4,5", help="comma-separated, of 1-5")
    ap.add_argument("--duration", type=float, help="seconds per non-streaming run (10; quick 2)")
    ap.add_argument("--concurrency", help="scenario 2 connection counts (16,64)")
    ap.add_argument("--streams", help="scenario 3 stream counts (100,1000; quick 20,100)")
    ap.add_argument("--stream-tokens", type=int, help="tokens a stream (200; quick 20)")
    ap.add_argument(
        "--stream-rate",
        type=float,
        help="tokens/s a stream (50; lower it when the floor cannot keep up)",
    )
    ap.add_argument(
        "--stream-arrival",
        type=float,
        default=0.0,
        help="also run scenario 3 with the streams opening at this many a second (3a)",
    )
    ap.add_argument("--ready-timeout", type=float, default=240.0, help="health-wait seconds")
    ap.add_argument(
        "--portkey-stream-fix",
        action="store_true",
        help="run Portkey with a one-line @hono/node-server patch so its streams work "
        "(stock 1.15.2 answers every stream with HTTP 500; see bench/README.md)",
    )
    ap.add_argument("--no-report", action="store_true", help="write JSON only, not RESULTS.md")
    a = ap.parse_args(argv)
    q = a.quick
    a.duration = a.duration or (2.0 if q else 10.0)
    a.concurrency = [int(x) for x in (a.concurrency or "16,64").split(",")]
    a.streams = [int(x) for x in (a.streams or ("20,100" if q else "100,1000")).split(",")]
    a.stream_tokens = a.stream_tokens or (20 if q else 200)
    a.stream_rate = a.stream_rate or 50.0
    a.scenarios = {int(x) for x in a.scenarios.split(",") if x.strip()}
    names = []
    for n in (x.strip() for x in a.only.split(",")):
        names += peers.GROUPS.get(n, [n] if n and n != "direct" else [])
    bad = [n for n in names if n not in peers.ALL]
    if bad:
        ap.error(
            f"unknown gateway(s) {bad}; choose from {', '.join(peers.ALL)} "
            f"or {', '.join(peers.GROUPS)}"
        )
    a.gateways = [n for n in peers.ALL if n in names]  # each once, in the table's order
    return a


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Mock:
    """The mock upstream in its own process (a process group of its own)."""

    def __init__(self) -> None:
        self.tag = "mock-" + uuid.uuid4().hex[:10]
        self.tagged = Tagged(self.tag)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self.proc = None

    def start(self) -> None:
        env = peers.base_env(self.tag)
        cmd = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(self.port)]
        self.proc = spawn(cmd, env=env, log=peers.LOGS / "mock_upstream.log")
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1).read()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = peers.log_tail(peers.LOGS / "mock_upstream.log")
        raise RuntimeError(f"mock upstream did not start:\n{tail}")

    def config(self, **kw) -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_mock/config",
            data=json.dumps(kw).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        stop(self.proc, grace=3)
        self.tagged.kill_all()


def idle_memory(g: peers.Gateway, settle: float) -> dict:
    time.sleep(settle)
    samples = []
    for _ in range(3):
        samples.append(procs.memory(g.tagged, breakdown=True))
        time.sleep(0.3)
    out = samples[-1]
    out["rss_mb"] = round(sum(s["rss_mb"] for s in samples) / len(samples), 1)
    out["pss_mb"] = round(sum(s["pss_mb"] for s in samples) / len(samples), 1)
    return out


def scenario(entry: dict, key: str, fn) -> None:
    """Run one scenario step; a failure is recorded and the run goes on."""
    try:
        entry["scenarios"][key] = fn()
    except Exception as e:
        traceback.print_exc()
        entry["scenarios"][key] = {"failed": f"{type(e).__name__}: {e}"[:500]}


def run_gateway(g: peers.Gateway, t: peers.Target, mock: Mock, a) -> dict:
    entry: dict = {"scenarios": {}}
    mock.config(latency_ms=0, ttft_ms=0, rate=0)
    entry["idle"] = idle_memory(g, 1.0 if a.quick else 3.0)
    idle = entry["idle"]
    print(
        f"  idle RSS {idle['rss_mb']} MB (PSS {idle['pss_mb']} MB) in {idle['processes']} "
        f"processes: {idle.get('rss_mb_by_process')}"
    )
    # warm-up: connection pools, JITs, lazy imports; a few streams too when scenario 3 runs
    load.nonstream(t, 4, 1.0)
    if 3 in a.scenarios and g.streams:
        mock.config(rate=0)
        load.run_async(load.stream_run(t, 4, 8, 30))

    if 1 in a.scenarios:
        scenario(entry, "s1_c1", lambda: load.nonstream(t, 1, a.duration))
        print(f"  s1 c=1: {summary(entry['scenarios']['s1_c1'])}")
        if g.overhead_header or g.name == "direct":  # direct: the sampling client's floor
            s1 = entry["scenarios"]["s1_c1"]
            try:
                s1["sampled"] = load.run_async(load.header_sample(t, g.overhead_header))
                print(f"  s1 sampled: {sampled(s1['sampled'])}")
            except Exception as e:
                traceback.print_exc()
                s1["sampled"] = {"failed": f"{type(e).__name__}: {e}"[:500]}
    if 2 in a.scenarios or 5 in a.scenarios:
        for c in a.concurrency:

            def s2(c=c):
                with MemorySampler(g.tagged) as m:
                    r = load.nonstream(t, c, a.duration)
                r["memory"] = m.result()
                return r

            scenario(entry, f"s2_c{c}", s2)
            print(f"  s2 c={c}: {summary(entry['scenarios'][f's2_c{c}'])}")
    if 3 in a.scenarios and not g.streams:
        why = "not run: it answers from the sim provider, which ignores the mock's pacing"
        entry["notes"] = [*entry.get("notes", []), f"scenario 3 {why}"]
        for n in a.streams:
            entry["scenarios"][f"s3_n{n}"] = {"skipped": why}
        print(f"  s3: {why}")
    elif 3 in a.scenarios:
        mock.config(ttft_ms=0, rate=a.stream_rate)
        # 3: every stream opened at once; 3a: the same streams opening `--stream-arrival` a second
        shapes = [("s3", 0.0)] + ([("s3a", a.stream_arrival)] if a.stream_arrival else [])
        try:
            for prefix, arrival in shapes:
                for n in a.streams:
                    # each stream's own, from its opening (in 3a too)
                    deadline = 3 * a.stream_tokens / a.stream_rate + 30 + n / 20

                    def s3(n=n, deadline=deadline, arrival=arrival):
                        run = load.stream_run(t, n, a.stream_tokens, deadline, arrival)
                        with MemorySampler(g.tagged) as m:
                            r = load.run_async(run)
                        r["memory"] = m.result()
                        r["rate"] = a.stream_rate
                        r["arrival"] = arrival or None
                        return r

                    key = f"{prefix}_n{n}"
                    scenario(entry, key, s3)
                    print(f"  {prefix} {n} streams: {summary(entry['scenarios'][key])}")
                    time.sleep(1.0)  # let closed connections drain before the next burst
        finally:
            mock.config(rate=0)
    return entry


def sampled(r: dict) -> str:
    s = f"{r['requests']} requests one at a time, p50 {r['p50_ms']} ms, errors {r['errors']}"
    if r.get("header"):
        s += f"; {r['header']} p50 {r['header_p50_ms']} ms ({r['header_count']} answers had it)"
    return s


def summary(r: dict) -> str:
    if "skipped" in r:
        return "skipped: " + r["skipped"]
    if "failed" in r:
        return "FAILED " + r["failed"]
    if "streams" in r:
        s = (
            f"ok {r['ok']}/{r['streams']}, TTFT p50 {r['ttft_p50_ms']} ms p99 "
            f"{r['ttft_p99_ms']} ms, gap p50 {r['gap_p50_ms']} ms p99 {r['gap_p99_ms']} ms, "
            f"wall {r['wall_s']} s"
        )
        if r["errors"]:
            s += f", errors {r['error_kinds']} first: {r['first_error']}"
    else:
        s = (
            f"{r.get('rps')} req/s, p50 {r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms, "
            f"errors {r.get('errors')}"
        )
    mem = r.get("memory")
    if mem:
        s += f", RSS peak {mem['peak_mb']} MB"
    return s


def run_routing(a) -> dict:
    script = HERE / "bench_routing.py"
    if not script.exists():
        return {"skipped": "bench/bench_routing.py does not exist yet"}
    out = peers.WORK / "routing.json"
    out.unlink(missing_ok=True)
    log = peers.LOGS / "bench_routing.log"
    t0 = time.monotonic()
    cmd = [sys.executable, str(script), "--json", str(out)]
    if a.quick and "--calls" in script.read_text():
        cmd += ["--calls", "2000"]
    rc = peers.run_logged(cmd, log, cwd=HERE.parent, timeout=900)
    if rc != 0 or not out.exists():
        return {"skipped": f"bench_routing.py exited {rc}:\n{peers.log_tail(log, 6)}"}
    raw = json.loads(out.read_text())
    if isinstance(raw, dict):  # keep the summary, not every timing
        raw = {k: v for k, v in raw.items() if not (isinstance(v, dict) and _has_long_list(v))}
    shown = " ".join(os.path.relpath(c, HERE.parent) if c.startswith("/") else c for c in cmd[1:])
    return {"raw": raw, "wall_s": round(time.monotonic() - t0, 1), "command": shown}


def _has_long_list(d: dict) -> bool:
    return any(isinstance(v, list) and len(v) > 100 for v in d.values())


def machine(a, argv) -> dict:
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    mem_kb = 0
    with contextlib.suppress(OSError, StopIteration):
        mem_kb = int(
            next(
                ln.split()[1]
                for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")
            )
        )
    wrk = load.wrk_path()
    wrk_v = ""
    if wrk:
        wrk_v = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
        wrk_v = wrk_v.split("[")[0].strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "load_tool": wrk_v or "asyncio client (wrk missing)",
        "command": "bench/run.py " + " ".join(argv),
        "quick": a.quick,
        "stream_rate": a.stream_rate,
        "stream_arrival": a.stream_arrival or None,
        "stream_tokens": a.stream_tokens,
        "streams": a.streams,
        "concurrency": a.concurrency,
        "duration_s": a.duration,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    peers.LOGS.mkdir(parents=True, exist_ok=True)
    if not load.wrk_path():
        print(
            f"wrk not found ({load.WRK_INSTALL_HINT}): non-streaming load uses the asyncio "
            "client, which costs CPU and reads lower req/s"
        )
    stamp = time.strftime("%Y%m%dT%H%M%S")
    res = {"stamp": stamp, "machine": machine(a, argv), "gateways": {}}
    mock = Mock()
    try:
        mock.start()
        print(f"mock upstream on {mock.base} (pid {mock.proc.pid})")
        names = ["direct", *a.gateways]
        if a.scenarios & {1, 2, 3, 5}:
            for name in names:
                res["gateways"][name] = one(name, mock, a)
        if 4 in a.scenarios:
            print("== scenario 4: routing with 1,000 models")
            res["routing"] = run_routing(a)
            print("  " + str(res["routing"].get("skipped") or res["routing"]["raw"])[:400])
    finally:
        mock.stop()
    res["machine"]["versions"] = {n: g.get("version") for n, g in res["gateways"].items()}
    out = report.write(res, write_md=not a.no_report)
    print(f"raw figures: {out['json']}" + (f"; section added to {out['md']}" if out["md"] else ""))
    return 0


def one(name: str, mock: Mock, a) -> dict:
    kw = {"ready_timeout": a.ready_timeout}
    if name == "direct":
        g = peers.Direct(mock.tagged, **kw)
    else:
        g = peers.make(name, portkey_stream_fix=a.portkey_stream_fix, **kw)
    print(f"== {g.label}")
    entry = {"label": g.label, "status": "skipped", **g.details}
    try:
        g.install()
        entry.update(version=g.version, install_s=g.install_s)
        if g.install_s:
            print(f"  installed in {g.install_s:.0f} s")
        target = g.start(mock.base)
        entry["ready_s"] = g.ready_s
        if g.ready_s is not None:
            print(f"  ready in {g.ready_s:.1f} s")
        entry.update(run_gateway(g, target, mock, a))
        entry["status"] = "ok"
    except peers.Skip as e:
        entry["reason"] = str(e)
        print(f"  SKIPPED {g.label}: {e}")
    except Exception as e:
        traceback.print_exc()
        entry.update(status="failed", reason=f"{type(e).__name__}: {e}"[:1000])
        print(f"  FAILED {g.label}: {e}")
    finally:
        g.stop()
    return entry


if __name__ == "__main__":
    sys.exit(main())
