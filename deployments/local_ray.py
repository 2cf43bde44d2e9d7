"""The local Ray that `llmgw up` starts when none runs: finding it, starting it, stopping only it.

Several Ray clusters may share one machine (a developer's gateway beside a test run). Every
port or file a new cluster would otherwise take by default, and so share with the others, is
chosen here: the GCS port, Serve's fallback proxy ports, and HAProxy's side ports and files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.cli.client import CLIError
from gateway.config import state_dir

# Ray's default GCS port is Redis's 6379; a local cluster of ours stays clear of it.
RAY_PORT = 6388
REQUEST_ID_MIDDLEWARES = "gateway.usage.request_ids:serve_middlewares"
# 97 (HAProxy's socket path limit) - 57 (/node-id) - 13 (/metrics.sock)
HAPROXY_DIR_MAX = 27
PRODUCTION_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # A replica leaving drains for this long so HAProxy stops sending it requests; Serve's
    # 30 s suits a cluster behind a load balancer, a local gateway stops sooner.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
}

# `--http-mode ingress`: no proxy at all. The throughput flags still speed the handle path
# (admin calls, fallback), but they also turn on Serve's direct ingress, which would start a
# proxy on the head node at Serve's HTTP port (our port, by default) and a second HTTP
# server in every ingress replica: that part stays off.
INGRESS_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
}


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port now (the check Serve's proxy would fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As uvicorn and HAProxy bind: a port in TIME_WAIT is still usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _preferred_or_free(port: int, taken: set[int]) -> int:
    if port not in taken and 0 < port < 65536 and port_free("0.0.0.0", port):
        return port
    chosen = free_port()
    while chosen in taken:
        chosen = free_port()
    return chosen


def side_ports_env(http_port: int, mode: str) -> dict[str, str]:
    """Environment for a new Ray's Serve, so it shares no port or file with another cluster.

    Serve's controller reads RAY_SERVE_FALLBACK_PROXY_HTTP_PORT once, at import (default 8500
    for every cluster): in production mode it starts a fallback proxy there, HAProxy's backup
    server. A second cluster on the machine then either fails to bind it or, worse, HAProxy
    sends this gateway's calls to the other cluster's proxy. Our HTTP port + 500 (8000 -> 8500,
    Serve's own pairing) when free, else any free port. Values the user set are kept.
    """
    env: dict[str, str] = {}
    taken = {http_port}
    for name, preferred in (
        ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", http_port + 500),
        ("RAY_SERVE_FALLBACK_PROXY_GRPC_PORT", http_port + 1500),
    ):
        if name not in os.environ:
            port = _preferred_or_free(preferred, taken)
            env[name] = str(port)
            taken.add(port)
    if mode == "production":
        # HAProxy's defaults (/tmp/haproxy-serve, :8404, :9101) are shared the same way.
        files = _haproxy_dir()
        for name, value in {
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": files / "haproxy.cfg",
            "RAY_SERVE_HAPROXY_SOCKET_PATH": files / "admin.sock",
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": files,
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": files / "server-state",
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": files / "metrics.sock",
            "RAY_SERVE_HAPROXY_METRICS_PORT": free_port(),
            "RAY_SERVE_HAPROXY_STATS_PORT": free_port(),
        }.items():
            if name not in os.environ:
                env[name] = str(value)
    return env


def _haproxy_dir() -> Path:
    """A directory of this gateway's own for HAProxy's files. Serve puts each node's sockets
    in a subdirectory named by its 56-character node id, and HAProxy refuses a socket path
    over 97 characters: so LLMGW_HOME/haproxy when that is short, else a short one under /tmp
    named after LLMGW_HOME, which each `up` of the same gateway reuses."""
    home = state_dir()
    files = home / "haproxy"
    if len(str(files)) > HAPROXY_DIR_MAX:
        digest = hashlib.sha256(str(home).encode()).hexdigest()[:6]
        files = Path(f"/tmp/llmgw-hp-{os.getuid()}-{digest}")
    files.mkdir(mode=0o700, parents=True, exist_ok=True)
    if files.stat().st_uid != os.getuid():  # someone else's, made to catch our sockets
        raise CLIError(f"{files} belongs to another user; set LLMGW_HOME to a shorter path")
    return files


def _address_file() -> Path:
    """Where `ray start` records the address: Ray's temp dir, as Ray itself finds it."""
    temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(temp) / "ray" / "ray_current_cluster"


def cluster_address() -> str | None:
    """RAY_ADDRESS, else "auto" if the local cluster Ray last started here answers.

    Ray's own "auto" trusts a file that outlives a crashed cluster and then waits a minute on
    a dead address; a one-second connect tells the two apart. "auto" (not the address itself)
    is what makes Ray load a local cluster's authentication token.
    """
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        address = _address_file().read_text().strip()
        host, _, port = address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=1.0):
            return "auto"
    except (OSError, ValueError):
        return None


def connect() -> dict[str, str] | None:
    """Join the running Ray cluster: its session directory and GCS address, or None if no
    cluster runs."""
    import ray

    address = cluster_address()
    if address is None:
        return None
    if ray.is_initialized():  # `up` in the foreground, stopping on Ctrl-C
        ray.shutdown()
    try:
        context = ray.init(address=address, namespace="llmgw", log_to_driver=False)
    except ConnectionError:
        return None
    info = context.address_info
    return {"session_dir": info.get("session_dir", ""), "gcs_address": info.get("gcs_address", "")}


# What `ray start` prints when its own processes were too slow to come up (it waits a fixed
# 30 s for the raylet to register, and for the metrics agent's port file): on a loaded
# two-core machine a second try usually starts.
SLOW_START = ("timed out during startup", "metrics_agent_port")
START_ATTEMPTS = 2


def start_ray(
    mode: str,
    num_cpus: int | None,
    metrics_port: int = 9464,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """`ray start --head` with our ports; returns the marks `stop_local_ray` finds it by."""
    # The `ray` installed beside this Python: another on PATH may be another Ray version.
    beside = Path(sys.executable).with_name("ray")
    ray = str(beside) if beside.exists() else shutil.which("ray") or "ray"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", LLMGW_HOME=str(state_dir()))
    # Serve echoes a request's x-request-id as sent: ours replaces an unusable one first.
    env.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", REQUEST_ID_MIDDLEWARES)
    # Serve kills a proxy not ready in 5 s three times running, and `serve.start` then fails:
    # a starting HAProxy manager on a busy two-core machine was measured to need longer.
    env.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "20")
    mode_env = {"production": PRODUCTION_ENV, "ingress": INGRESS_ENV}.get(mode, {})
    env.update({k: v for k, v in mode_env.items() if k not in os.environ})
    env.update(extra_env or {})
    log = state_dir() / "ray-start.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        # Another cluster on this machine may hold our usual GCS port: then any free one.
        gcs_port = RAY_PORT if port_free("0.0.0.0", RAY_PORT) else free_port()
        command = [
            ray,
            "start",
            "--head",
            f"--port={gcs_port}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            # Every replica's metrics, through Ray's exporter, at one Prometheus scrape a node.
            f"--metrics-export-port={metrics_port}",
        ]
        if num_cpus:
            command.append(f"--num-cpus={num_cpus}")
        with log.open("w") as out:
            result = subprocess.run(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=180
            )
        # Even a failed start may have left a head behind: these marks find it to stop it.
        marks = {"gcs_port": str(gcs_port)}
        with contextlib.suppress(OSError):
            marks["gcs_address"] = _address_file().read_text().strip()
        if result.returncode == 0:
            return marks
        stop_local_ray(marks)
        slow = any(sign in log.read_text(errors="replace") for sign in SLOW_START)
        if not slow or attempt == START_ATTEMPTS:
            break
        print(f"`ray start` timed out on a busy machine; trying again ({log})", file=sys.stderr)
    raise CLIError(f"`ray start` failed; see {log}")


def _marks(cluster: dict[str, str]) -> list[re.Pattern[bytes]]:
    """What a process of this cluster has on its command line: its session directory, its GCS
    address, or its GCS port as `--gcs_server_port=` (GCS) or `--gcs-address=` (the rest).
    A mark followed by a digit is another cluster's (port 6388 is not port 63880)."""
    literal = [v for k, v in cluster.items() if v and k != "gcs_port"]
    marks = [re.compile(re.escape(v.encode()) + rb"(?!\d)") for v in literal]
    if port := cluster.get("gcs_port"):
        gcs = rb"--gcs(?:_server_port=|-address=[^\0]*:)" + port.encode() + rb"(?!\d)"
        marks.append(re.compile(gcs))
    return marks


def stop_local_ray(cluster: dict[str, str], timeout_s: float = 10.0) -> None:
    """Stop the Ray that `up` started, and only it: `ray stop` would end every Ray here.

    Its head processes carry one of its marks on their command line; the rest (workers, and
    HAProxy under its manager actor) are their descendants, found before anything is stopped
    so none is orphaned holding the HTTP port.
    """
    marks = _marks(cluster)
    if not marks:
        return
    parents: dict[int, int] = {}
    heads = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            # The parent pid is the 2nd field after the parenthesised command name.
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if any(mark.search(cmdline) for mark in marks):
            heads.append(int(proc.name))
    pids = set(heads)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in pids} - pids
        pids |= children
        grew = bool(children)
    pids.discard(os.getpid())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
