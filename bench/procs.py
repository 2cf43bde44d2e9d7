"""Process plumbing for the benchmark: start in a process group, stop for sure, find and measure.

Every process the harness starts gets an environment variable ``LLMGW_BENCH_TAG=<tag>``.
Children inherit it (uvicorn workers, node, and every Ray process: GCS, raylet, workers,
proxies, HAProxy), so "all of a gateway's processes" is "every process whose environment
carries its tag", even for daemons that ``llmgw up --detach`` re-parents away from us.
Memory is the sum of their RSS (and PSS), read with psutil when it is installed and from
/proc otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

TAG_VAR = "LLMGW_BENCH_TAG"

try:  # optional: the /proc fallback below does the same on Linux
    import psutil  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the venv
    psutil = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(
    cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in its own session (process group), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
    fh.write(f"\n=== {time.strftime('%H:%M:%S')} $ {' '.join(cmd)}\n".encode())
    fh.flush()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    proc._bench_log = fh  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen | None, *, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL it."""
    if proc is None:
        return
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    fh = getattr(proc, "_bench_log", None)
    if fh is not None:
        fh.close()


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Tagged:
    """Finds the processes that carry one tag; remembers which pids it has checked."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._needle = f"{TAG_VAR}={tag}\0".encode()
        self._seen: dict[int, bool] = {}

    def pids(self) -> list[int]:
        me = os.getpid()
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid == me:
                continue
            hit = self._seen.get(pid)
            if hit is None:
                hit = self._seen[pid] = _environ_has(pid, self._needle)
            if hit and _alive(pid):
                out.append(pid)
        return out

    def terminate_all(self, grace: float = 5.0) -> None:
        """SIGTERM every process with the tag, then SIGKILL what is left after ``grace``."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.kill_all()

    def kill_all(self) -> int:
        """SIGKILL every live process with the tag (the last resort after a clean stop)."""
        n = 0
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                n += 1
        return n


def _kb_field(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def mem_bytes(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process. PSS splits shared pages among their sharers, so a sum of
    PSS over many processes (Ray's workers share libraries) does not count them twice."""
    if psutil is not None:
        try:
            info = psutil.Process(pid).memory_full_info()
            return info.rss, getattr(info, "pss", 0)
        except Exception:
            return 0, 0
    rss = _kb_field(f"/proc/{pid}/status", "VmRSS:")
    return rss, _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def proc_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = [p for p in f.read().split(b"\0") if p]
    except OSError:
        return "?"
    if not parts:
        return "?"
    name = os.path.basename(parts[0].decode(errors="replace"))
    if name.startswith("python"):  # python [-u] x.py / -m mod: name it by its script
        args = [a.decode(errors="replace") for a in parts[1:] if not a.startswith(b"-")]
        name = os.path.basename(args[0]) if args else name
    return name or "?"


def memory(tagged: Tagged, breakdown: bool = False) -> dict:
    """Summed RSS and PSS (MB) over every process with the tag."""
    rss = pss = 0
    by_name: dict[str, float] = {}
    pids = tagged.pids()
    for pid in pids:
        r, p = mem_bytes(pid)
        rss, pss = rss + r, pss + p
        if breakdown:
            name = proc_name(pid)
            by_name[name] = round(by_name.get(name, 0) + r / 1e6, 1)
    out = {"rss_mb": round(rss / 1e6, 1), "pss_mb": round(pss / 1e6, 1), "processes": len(pids)}
    if breakdown:
        out["rss_mb_by_process"] = dict(sorted(by_name.items(), key=lambda kv: -kv[1]))
    return out


class MemorySampler:
    """Samples a tag's summed RSS and PSS in a thread while a load runs."""

    def __init__(self, tagged: Tagged | None, interval: float = 0.5) -> None:
        self.tagged = tagged
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        if self.tagged is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(memory(self.tagged))  # type: ignore[arg-type]
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def result(self) -> dict | None:
        if not self.samples:
            return None
        rss = [s["rss_mb"] for s in self.samples]
        return {
            "peak_mb": max(rss),
            "mean_mb": round(sum(rss) / len(rss), 1),
            "peak_pss_mb": max(s["pss_mb"] for s in self.samples),
            "processes": max(s["processes"] for s in self.samples),
        }
