"""Where a gateway's CPU goes under load: CPU per process and a py-spy profile of its replicas.

Starts one llmgw variant (bench/peer_llmgw.py) against the mock upstream, puts `wrk` load on
it, and while the load runs reads every process's CPU from /proc and records the Serve
replicas with py-spy (raw folded stacks, then a leaf-first and a frame-inclusive summary).

    .venv/bin/python bench/profile_hot.py --variant llmgw-inline --conns 16 --seconds 15
    .venv/bin/python bench/profile_hot.py --variant llmgw --pyspy-out /tmp/prof --rate 250
    .venv/bin/python bench/profile_hot.py --variant llmgw --streams 100 --seconds 20

With ``--streams N`` the load is bursts of N streams opened at once (scenario 3's shape), one
after another for the duration; each burst's time to first token is printed, and the CPU is
per stream instead of per request.

Needs wrk and py-spy (`pip install py-spy`, found on PATH or beside this Python; it runs as
root here).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import peer_llmgw  # noqa: E402
import peers  # noqa: E402
from peer_llmgw import Llmgw  # noqa: E402
from run import Mock  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def names(pids: list[int]) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        out[pid] = cmd.rsplit("/", 1)[-1][:48]
    return out


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def machine_cpu() -> list[int]:
    """The machine's CPU time so far by state (/proc/stat: user nice system idle iowait irq
    softirq steal), in ticks."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def sample_cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            out[pid] = cpu_seconds(pid)
    return out


# A sample is charged to the first of these its stack meets walking up from the leaf: the
# provider SDK's own time, then each llmgw module, then the frameworks around them.
PARTS: list[tuple[str, str]] = [
    (
        r"[(/](openai|anthropic|httpx2|httpcore2|httpx|httpcore|h11|aiohttp|multidict|yarl)/",
        "provider SDK and HTTP client",
    ),
    (r"gateway/pipeline/steps/(\w+)\.py.*?\(|(\w+)\.(handle|finish) \(gateway", "step"),
    (r"\(gateway/([\w/]+)\.py", "llmgw"),
    (r"\(deployments/(\w+)\.py", "deployments"),
    (r"ray/util/metrics|opentelemetry|prometheus", "metrics"),
    (r"\(logging/|ray/serve/_private/logging", "logging"),
    (r"[(/](fastapi|starlette)/", "FastAPI and Starlette"),
    (r"[(/](uvicorn|httptools|anyio)/", "uvicorn and anyio"),
    (r"ray/serve/", "Serve's replica"),
    (r"ray/|_raylet", "Ray core"),
    (r"asyncio/", "asyncio"),
]


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for pattern, label in PARTS:
            m = re.search(pattern, frame)
            if m is None:
                continue
            if label == "step":
                return "step " + frame.split(" (")[0]
            if label in ("llmgw", "deployments"):
                return f"{label} {m.group(1)}"
            return label
    return "other"


def summarise(folded: Path, top: int) -> str:
    """Shares of a py-spy raw (folded) file by part (above) and by inclusive frame."""
    parts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        parts[part_of(frames)] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{folded.name}: {total} samples"]
    lines.append("  by part (leaf-first):")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in parts.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def bursts(target, a) -> dict:
    """Bursts of ``a.streams`` streams, one after another for ``a.seconds``; their TTFTs."""
    deadline = 3 * a.stream_tokens / a.stream_rate + 30
    end = time.monotonic() + a.seconds
    runs = []
    while time.monotonic() < end:
        r = load.run_async(load.stream_run(target, a.streams, a.stream_tokens, deadline))
        runs.append(r)
        print(f"  burst: ttft p50 {r['ttft_p50_ms']} p99 {r['ttft_p99_ms']} ms, ok {r['ok']}")
    return {"streams": a.streams * len(runs), "bursts": len(runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="llmgw-inline")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples a second")
    ap.add_argument("--pyspy-out", default=str(HERE / ".work" / "profile"))
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--config", default="", help="YAML added to the variant's gateway config")
    ap.add_argument("--no-pyspy", action="store_true", help="CPU per process only")
    ap.add_argument("--streams", type=int, default=0, help="bursts of N streams, not wrk")
    ap.add_argument("--stream-tokens", type=int, default=20)
    ap.add_argument("--stream-rate", type=float, default=5.0)
    a = ap.parse_args()
    load.check_local("http://127.0.0.1")
    out = Path(a.pyspy_out)
    out.mkdir(parents=True, exist_ok=True)
    mock = Mock()
    mock.start()
    if a.config:
        base = peer_llmgw.VARIANTS[a.variant]
        extra = base.config + a.config.replace("\\n", "\n") + "\n"
        peer_llmgw.VARIANTS[a.variant] = dataclasses.replace(base, config=extra)
    gw = Llmgw(a.variant)
    try:
        gw.install()
        target = gw.start(mock.base)
        mock.config(latency_ms=0, ttft_ms=0, rate=0)
        load.nonstream(target, 4, 2.0)  # warm-up
        before = sample_cpu(all_pids())
        machine_before = machine_cpu()
        spies = []
        pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
        if not a.no_pyspy and pyspy:
            for pid, name in names(all_pids()).items():
                if "ServeReplica" in name or "UsageWriter" in name:
                    path = out / f"{name.split(':')[-1]}-{pid}.txt"
                    cmd = [pyspy, "record", "-p", str(pid), "-r", str(a.rate), "-d"]
                    cmd += [str(int(a.seconds)), "-f", "raw", "-o", str(path), "--nonblocking"]
                    spies.append((path, subprocess.Popen(cmd, stdout=subprocess.DEVNULL)))
        result: dict = {}
        t0 = time.monotonic()
        if a.streams:
            mock.config(ttft_ms=0, rate=a.stream_rate)
            work = lambda: result.update(bursts(target, a))  # noqa: E731
        else:
            work = lambda: result.update(load.nonstream(target, a.conns, a.seconds))  # noqa: E731
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        elapsed = time.monotonic() - t0
        after = sample_cpu(all_pids())
        states = [b - a for a, b in zip(machine_before, machine_cpu(), strict=True)]
        for _, proc in spies:
            proc.wait(timeout=60)
        label = names(list(after))
        used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
        used = {pid: sec for pid, sec in used.items() if sec > 0}
        rps = result.get("rps") or result.get("req_s") or 0
        shape = f"{a.streams} streams a burst" if a.streams else f"c={a.conns}"
        print(f"{a.variant}: {shape}, {elapsed:.1f} s: {result}")
        served = result["streams"] if a.streams else (rps or 1) * elapsed
        busy = {"user": states[0] + states[1], "system": states[2] + states[5] + states[6]}
        busy |= {"idle": states[3] + states[4], "steal": states[7]}
        print(
            "machine, cores: " + ", ".join(f"{k} {v / TICK / elapsed:.2f}" for k, v in busy.items())
        )
        per = "ms CPU/stream" if a.streams else "ms CPU/request"
        print(f"{'process':<50} {'cores':>6} {per:>15}")
        for pid, sec in sorted(used.items(), key=lambda kv: -kv[1])[:20]:
            print(f"{label.get(pid, pid)!s:<50} {sec / elapsed:6.2f} {1000 * sec / served:15.3f}")
        for path, _ in spies:
            if path.exists():
                print(summarise(path, a.top))
    finally:
        gw.stop()
        mock.stop()
        _ = peers
    return 0


if __name__ == "__main__":
    sys.exit(main())
