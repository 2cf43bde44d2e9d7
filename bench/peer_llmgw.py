"""llmgw as a benchmark peer: ``llmgw up --detach``, isolated from any other Ray cluster on
the machine, and stopped without touching anyone else's Ray.

One class, several configurations (``VARIANTS``), each a gateway name of its own so they run
side by side in one run: the headline ``llmgw`` (production HTTP mode, ingress -> pool ->
mock), ``llmgw-inline`` (the ingress calls the mock itself), ``llmgw-router`` (ingress ->
Router -> pool), and ``llmgw-sim`` / ``llmgw-sim-default`` (the built-in zero-latency sim
provider, in production and in Serve's default HTTP mode: the gateway's own floor).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from peers import MODEL, ROOT, Gateway, Skip, Target, base_env, log_tail, run_logged, wait_ready
from procs import Tagged, free_port, spawn, stop

# What `llmgw up` sets on a Ray it starts, by HTTP mode; the harness sets the same on the Ray
# it starts itself. Default mode has none of them.
from deployments.local_ray import INGRESS_ENV, PRODUCTION_ENV


@dataclass(frozen=True)
class Variant:
    hops: int  # DeploymentHandle hops on the hot path
    path: str  # the hot path behind the HTTP front (`FRONTS`)
    http_mode: str = "ingress"  # `llmgw up --http-mode`: ingress (auto) | production | default
    config: str = ""  # top-level YAML added to the gateway config
    sim: bool = False  # answered by the built-in sim provider; the mock is not called
    nosdk: bool = False  # the openai adapter skips the SDK's request path (bench/nosdk.py)


PROD = "ingress -> OpenAIPool by its side channel -> mock"
SIM = "ingress -> SimPool by its side channel (zero latency)"
VARIANTS = {
    "llmgw": Variant(1, PROD),
    "llmgw-inline": Variant(
        0, "ingress -> mock (in the ingress)", config="server: {inline_providers: [openai]}\n"
    ),
    "llmgw-inline-2x": Variant(
        0,
        "ingress x2 -> mock (in the ingress)",
        config="server: {inline_providers: [openai]}\ndeployments: {Ingress: {num_replicas: 2}}\n",
    ),
    "llmgw-nosdk": Variant(1, PROD + " (no openai SDK: bench/nosdk.py)", nosdk=True),
    "llmgw-inline-2x-nosdk": Variant(
        0,
        "ingress x2 -> mock (in the ingress; no openai SDK: bench/nosdk.py)",
        config="server: {inline_providers: [openai]}\ndeployments: {Ingress: {num_replicas: 2}}\n",
        nosdk=True,
    ),
    "llmgw-haproxy": Variant(1, PROD, http_mode="production"),
    "llmgw-2x": Variant(
        1,
        "ingress x2 -> OpenAIPool by its side channel -> mock",
        config="deployments: {Ingress: {num_replicas: 2}}\n",
    ),
    "llmgw-handle": Variant(
        1,
        "ingress -> OpenAIPool by Serve's handle -> mock",
        config="server: {side_channel: false}\n",
    ),
    "llmgw-router": Variant(
        2, "ingress -> Router -> OpenAIPool -> mock", config="routing: {placement: router}\n"
    ),
    "llmgw-sim": Variant(1, SIM, sim=True),
    "llmgw-sim-default": Variant(1, SIM, http_mode="default", sim=True),
}


FRONTS = {
    "production": "HAProxy",
    "default": "Serve's Python proxy",
    "ingress": "the ingress replicas' own uvicorn (no proxy)",
}


class Llmgw(Gateway):
    """llmgw in one of ``VARIANTS``: ``llmgw up --http-mode M --detach`` (production: HAProxy
    and the throughput-optimised Serve flags; default: Serve's Python proxy, and a Ray started
    without those flags); stopped with ``llmgw down --keep-ray`` and then by tag.

    Isolation from other Ray clusters on the machine (``ray status`` finds any cluster by
    scanning processes, and ``ray stop`` kills every Ray process): Ray's files go under a
    temp dir of ours; when another cluster is running, the harness starts a Ray of its own
    on a free loopback port first and points ``llmgw up`` at it with RAY_ADDRESS; and the
    harness never lets ``llmgw down`` run ``ray stop``, it ends its own Ray by tag.
    """

    def __init__(self, variant: str = "llmgw", **kw) -> None:
        self.name = self.label = variant
        self.variant = VARIANTS[variant]
        super().__init__(**kw)
        front = FRONTS[self.variant.http_mode]
        self.details = {
            "http_mode": self.variant.http_mode,
            "hops": self.variant.hops,
            "hot_path": f"{front} -> {self.variant.path}",
            "upstream": "sim provider (zero latency)" if self.variant.sim else "mock",
            "config_extra": self.variant.config.strip() or None,
        }
        self.streams = not self.variant.sim
        self.overhead_header = "x-llmgw-overhead-ms"
        self.home: Path | None = None
        self.env: dict[str, str] = {}
        self.keep_ray = False
        self.own_ray = False

    def cli(self) -> list[str]:
        exe = Path(sys.executable).parent / "llmgw"
        if exe.exists():
            return [str(exe)]
        code = "import sys; from deployments.cli import main; sys.argv[0] = 'llmgw'; main()"
        return [sys.executable, "-c", code]

    def _env(self) -> dict[str, str]:
        env = base_env(self.tag)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        paths = [str(ROOT), env.get("PYTHONPATH")]
        if self.variant.nosdk:  # its sitecustomize patches every process of this cluster
            paths.insert(0, str(ROOT / "bench" / "nosdk_site"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        env.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback benchmark cluster
        env.update(COLUMNS="200", RAY_USAGE_STATS_ENABLED="0")
        env.pop("RAY_ADDRESS", None)
        return env

    def _help(self, sub: str) -> str:
        r = subprocess.run(
            [*self.cli(), sub, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            env=self._env(),
        )
        return r.stdout + r.stderr if r.returncode == 0 else ""

    def install(self) -> None:
        if not (ROOT / "gateway/cli").exists() and not (ROOT / "gateway/cli.py").exists():
            raise Skip("no llmgw CLI (gateway.cli) in this tree yet")
        up = self._help("up")
        if "--detach" not in up:
            raise Skip("`llmgw up --detach` is not available yet")
        if "--http-mode" not in up:
            raise Skip("`llmgw up --http-mode` is not available yet")
        self.keep_ray = "--keep-ray" in self._help("down")
        try:
            from importlib.metadata import version

            self.version = version("llmgw")
        except Exception:
            self.version = "0.1.0 (source tree)"
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if rev:
            self.version += f" @ {rev}"

    def _start_own_ray(self) -> None:
        port = free_port()
        cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head"]
        cmd += ["--node-ip-address=127.0.0.1", f"--port={port}"]
        cmd += ["--include-dashboard=false", "--disable-usage-stats"]
        print(f"  another Ray cluster runs here: starting one of our own on 127.0.0.1:{port}")
        if run_logged(cmd, self.log, env=self.env, cwd=self.home, timeout=180):
            raise Skip(f"`ray start` failed:\n{log_tail(self.log)}")
        self.env["RAY_ADDRESS"] = f"127.0.0.1:{port}"
        self.own_ray = True

    def start(self, upstream: str) -> Target:
        port = free_port()
        # short: unix socket paths (Ray's, and HAProxy's under a 56-char hash dir) must fit 97
        self.home = Path(tempfile.mkdtemp(prefix="lgb", dir="/tmp"))
        cfg = self.home / "bench.yaml"
        cfg.write_text(gateway_config(self.variant, upstream))
        key = "sk-bench-admin-" + uuid.uuid4().hex
        self.env = self._env()
        self.env.update(
            LLMGW_HOME=str(self.home),
            LLMGW_ADMIN_KEY=key,
            BENCH_MOCK_KEY="sk-bench",
            RAY_TMPDIR=str(self.home / "ray"),
        )
        (self.home / "ray").mkdir()
        if self.variant.http_mode == "production":
            self.env.update(PRODUCTION_ENV)
            # HAProxy's files and side ports default to fixed places shared by every Serve
            # cluster on the machine (/tmp/haproxy-serve, :9101, :8404): give ours its own
            hp = self.home / "h"
            hp.mkdir()
            self.env.update(
                RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=str(hp / "haproxy.cfg"),
                RAY_SERVE_HAPROXY_SOCKET_PATH=str(hp / "admin.sock"),
                RAY_SERVE_HAPROXY_SERVER_STATE_BASE=str(hp),
                RAY_SERVE_HAPROXY_SERVER_STATE_FILE=str(hp / "server-state"),
                RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=str(hp / "metrics.sock"),
                RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
                RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
                # HAProxy's backup server, the Serve proxy, is on 8500 in every cluster
                RAY_SERVE_FALLBACK_PROXY_HTTP_PORT=str(free_port()),
                RAY_SERVE_FALLBACK_PROXY_GRPC_PORT=str(free_port()),
            )
        else:  # default and ingress: neither this cluster nor `llmgw up` may see the flags
            for k in [*PRODUCTION_ENV, *(k for k in self.env if k.startswith("RAY_SERVE_HA"))]:
                self.env.pop(k, None)
            if self.variant.http_mode == "ingress":  # as `llmgw up` starts its Ray for it
                self.env.update(INGRESS_ENV)
        t0 = time.monotonic()
        if foreign_ray(self.tag):
            self._start_own_ray()
        cmd = [*self.cli(), "up", "--config", str(cfg), "--port", str(port), "--detach"]
        cmd += ["--http-mode", self.variant.http_mode]
        self.proc = spawn(cmd, env=self.env, log=self.log, cwd=self.home)
        try:
            rc = self.proc.wait(self.ready_timeout)
        except subprocess.TimeoutExpired:
            raise Skip(
                f"`llmgw up --detach` still running after {self.ready_timeout:.0f}s"
            ) from None
        if rc != 0:
            extra = log_tail(self.home / "ray-start.log", 6)
            raise Skip(f"`llmgw up` exited with code {rc}:\n{log_tail(self.log)}\n{extra}")
        t = Target(
            self.name,
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"authorization": f"Bearer {key}"},
        )
        left = max(10.0, self.ready_timeout - (time.monotonic() - t0))
        wait_ready(t, None, self.log, left)
        self.ready_s = time.monotonic() - t0
        return t

    def stop(self) -> None:
        if self.env and self.keep_ray:  # drain and delete the app; never `ray stop`
            cmd = [*self.cli(), "down", "--keep-ray"]
            run_logged(cmd, self.log, env=self.env, cwd=self.home, timeout=180)
        stop(self.proc)
        self.proc = None
        self.tagged.terminate_all()  # our Ray: GCS, raylet, workers, proxies, HAProxy
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


def gateway_config(v: Variant, upstream: str) -> str:
    """The gateway config for a variant: one model, ``bench-model``, on the mock or the sim."""
    if v.sim:
        provider = "{name: sim, type: sim, sim: {output_tokens: 16}}"
    else:
        provider = (
            f"{{name: mock, type: openai, base_url: {upstream}, api_key_env: BENCH_MOCK_KEY}}"
        )
    name = "sim" if v.sim else "mock"
    return (
        f"providers:\n  - {provider}\n"
        f"models:\n  - {{name: {MODEL}, provider: {name}, upstream: {MODEL}}}\n" + v.config
    )


def foreign_ray(own_tag: str) -> bool:
    """Whether a Ray GCS that is not ours runs on this machine."""
    mine = set(Tagged(own_tag).pids())
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            try:
                comm = Path(f"/proc/{name}/comm").read_text().strip()
            except OSError:
                continue
            if comm == "gcs_server":
                return True
    return False
