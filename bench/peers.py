"""The gateways under test: install, start, health-wait and stop each one.

Each gateway is a small class with ``install()``, ``start(upstream)`` returning a ``Target``
(what the load tools send to), and ``stop()``. A gateway that cannot run raises ``Skip``
with a reason the harness prints. Installs live in ``bench/.work/`` (gitignored) and are
reused while their pinned version matches; logs go to ``bench/.work/logs/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from procs import TAG_VAR, Tagged, free_port, spawn, stop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
LOGS = WORK / "logs"
LITELLM_VERSION = "1.108.7"
PORTKEY_VERSION = "1.15.2"
MODEL = "bench-model"


class Skip(Exception):
    """This gateway cannot be run here; the message says why."""


@dataclass
class Target:
    name: str
    url: str  # full URL of /v1/chat/completions
    headers: dict[str, str] = field(default_factory=dict)
    model: str = MODEL


def log_tail(path: Path, n: int = 12) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + ln[:300] for ln in lines[-n:])


def run_logged(cmd: list[str], log: Path, *, env=None, cwd=None, timeout: float) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(f"\n=== {time.strftime('%H:%M:%S')} $ {' '.join(map(str, cmd))}\n".encode())
        fh.flush()
        try:
            return subprocess.run(
                cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            fh.write(f"=== timed out after {timeout:.0f}s\n".encode())
            return -1


def probe(target: Target, timeout: float = 10.0) -> tuple[int, str]:
    body = {"model": target.model, "messages": [{"role": "user", "content": "ping"}]}
    req = urllib.request.Request(
        target.url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **target.headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_ready(target: Target, proc, log: Path, timeout: float) -> float:
    """Poll a real chat completion until it answers 200 with choices; seconds it took."""
    t0 = time.monotonic()
    last = "no answer"
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise Skip(f"exited with code {proc.returncode} while starting:\n{log_tail(log)}")
        try:
            status, text = probe(target, timeout=5)
            if status == 200 and '"choices"' in text:
                return time.monotonic() - t0
            last = f"HTTP {status}: {text[:300]}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.5)
    raise Skip(f"not ready after {timeout:.0f}s (last: {last})\n{log_tail(log)}")


def base_env(tag: str) -> dict[str, str]:
    env = dict(os.environ)
    env[TAG_VAR] = tag
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Gateway:
    name = "?"
    label = "?"

    def __init__(self, ready_timeout: float = 180.0) -> None:
        self.tag = f"{self.name}-{uuid.uuid4().hex[:10]}"
        self.tagged = Tagged(self.tag)
        self.proc: subprocess.Popen | None = None
        self.version: str | None = None
        self.install_s: float | None = None  # None: reused an existing install
        self.ready_s: float | None = None
        self.ready_timeout = ready_timeout
        self.log = LOGS / f"{self.name}.log"
        self.details: dict = {}  # recorded with the results (llmgw: HTTP mode, hops, path)
        self.streams = True  # False: scenario 3 means nothing for it and is skipped
        self.overhead_header: str | None = None  # a header reporting the gateway's own time

    def install(self) -> None:
        pass

    def start(self, upstream: str) -> Target:
        raise NotImplementedError

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
        self.tagged.kill_all()


class Direct(Gateway):
    """The mock upstream itself: the floor every gateway is compared with."""

    name, label = "direct", "direct (floor)"

    def __init__(self, mock_tagged: Tagged, **kw) -> None:
        super().__init__(**kw)
        self.tagged = mock_tagged  # its memory is the mock's
        self.version = "bench/mock_upstream.py"

    def start(self, upstream: str) -> Target:
        return Target(self.name, f"{upstream}/chat/completions")

    def stop(self) -> None:  # the harness owns the mock
        pass


class LiteLLM(Gateway):
    name, label = "litellm", f"LiteLLM {LITELLM_VERSION}"
    spec = f"litellm[proxy]=={LITELLM_VERSION}"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.venv = WORK / f"litellm-{LITELLM_VERSION}"
        self.marker = self.venv / ".bench-installed"

    def install(self) -> None:
        self.version = LITELLM_VERSION
        if self.marker.exists() and self.marker.read_text().strip() == self.spec:
            return
        ilog = LOGS / "litellm-install.log"
        print(f"  installing {self.spec} into {self.venv.relative_to(ROOT)} (log: {ilog})")
        t0 = time.monotonic()
        shutil.rmtree(self.venv, ignore_errors=True)
        if run_logged([sys.executable, "-m", "venv", str(self.venv)], ilog, timeout=300):
            raise Skip(f"could not create a virtualenv:\n{log_tail(ilog)}")
        pip = [str(self.venv / "bin/python"), "-m", "pip", "--disable-pip-version-check"]
        if run_logged([*pip, "install", "-q", self.spec], ilog, timeout=1800):
            raise Skip(f"pip install {self.spec} failed:\n{log_tail(ilog)}")
        self.install_s = time.monotonic() - t0
        self.marker.write_text(self.spec + "\n")

    def start(self, upstream: str) -> Target:
        port = free_port()
        cfg = WORK / "litellm-config.yaml"
        cfg.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {upstream}\n"
            "      api_key: sk-bench\n"
        )
        env = base_env(self.tag)
        env.update(
            LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
            LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the price map from the internet
            LITELLM_LOG="ERROR",
        )
        cmd = [str(self.venv / "bin/litellm"), "--config", str(cfg)]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        self.proc = spawn(cmd, env=env, log=self.log, cwd=WORK)
        t = Target(self.name, f"http://127.0.0.1:{port}/v1/chat/completions")
        self.ready_s = wait_ready(t, self.proc, self.log, self.ready_timeout)
        return t


# Portkey 1.15.2 answers every *stream* with HTTP 500 "TypeError: immutable" on node 20 and
# 22: its OpenAI stream path does `new Response(stream, upstreamResponse)` and then appends
# headers, and @hono/node-server's lightweight Response (which it installs as the global
# Response) keeps the upstream fetch response's immutable Headers object instead of copying
# it (seen with @hono/node-server 1.12.2 to 1.19.19). With --portkey-stream-fix the harness
# installs a second copy and patches that one line to copy the headers; results say so.
HONO_BUG = "body, headers || init?.headers]"
HONO_FIX = (
    "body, headers || (init?.headers instanceof Headers"
    " ? new Headers(init.headers) : init?.headers)]"
)


class Portkey(Gateway):
    name, label = "portkey", f"Portkey {PORTKEY_VERSION}"

    def __init__(self, stream_fix: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.stream_fix = stream_fix
        self.dir = WORK / f"portkey-{PORTKEY_VERSION}{'-streamfix' if stream_fix else ''}"
        self.pkg = self.dir / "node_modules/@portkey-ai/gateway"
        if stream_fix:
            self.label += " (node-server headers patched)"

    def _patch(self) -> None:
        dist = self.dir / "node_modules/@hono/node-server/dist"
        hits = 0
        for f in list(dist.glob("*.js")) + list(dist.glob("*.mjs")):
            text = f.read_text()
            if HONO_BUG in text:
                f.write_text(text.replace(HONO_BUG, HONO_FIX))
            hits += HONO_FIX in f.read_text()
        if not hits:
            raise Skip(f"--portkey-stream-fix: pattern not found in {dist}")

    def _installed(self) -> str | None:
        try:
            return json.loads((self.pkg / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None

    def install(self) -> None:
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            raise Skip("node/npm not found (Debian: apt-get install -y nodejs npm)")
        nv = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if self._installed() != PORTKEY_VERSION:
            ilog = LOGS / "portkey-install.log"
            print(f"  installing @portkey-ai/gateway@{PORTKEY_VERSION} (log: {ilog})")
            t0 = time.monotonic()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            (self.dir / "package.json").write_text('{"name": "bench-portkey", "private": true}\n')
            cmd = [npm, "install", "--no-audit", "--no-fund", "--save-exact"]
            cmd.append(f"@portkey-ai/gateway@{PORTKEY_VERSION}")
            if run_logged(cmd, ilog, cwd=self.dir, timeout=900) or not self._installed():
                raise Skip(f"npm install failed:\n{log_tail(ilog)}")
            self.install_s = time.monotonic() - t0
        hono = self.dir / "node_modules/@hono/node-server/package.json"
        hv = json.loads(hono.read_text()).get("version", "?") if hono.exists() else "?"
        if self.stream_fix:
            self._patch()
        fix = ", patched" if self.stream_fix else ""
        self.version = f"{PORTKEY_VERSION} (node {nv}, @hono/node-server {hv}{fix})"

    def start(self, upstream: str) -> Target:
        port = free_port()
        script = self.pkg / "build/start-server.js"
        # it reads only the `--port=N` form (and listens on all interfaces; we send to loopback)
        cmd = [shutil.which("node") or "node", str(script), f"--port={port}", "--headless"]
        self.proc = spawn(cmd, env=base_env(self.tag), log=self.log, cwd=self.dir)
        conf = {"provider": "openai", "api_key": "sk-bench", "custom_host": upstream}
        t = Target(
            self.name,
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"x-portkey-config": json.dumps(conf, separators=(",", ":"))},
        )
        self.ready_s = wait_ready(t, self.proc, self.log, self.ready_timeout)
        return t


class NoServe(Gateway):
    """llmgw's request path under one plain uvicorn process, no Ray: the floor that shows
    what Serve's data plane costs (bench/noserve.py). Not a deployable mode."""

    def __init__(self, nosdk: bool = False, **kw) -> None:
        self.nosdk = nosdk
        self.name = "llmgw-noserve" + ("-nosdk" if nosdk else "")
        self.label = "llmgw without Serve (floor, not deployable)"
        if nosdk:
            self.label += ", no openai SDK (bench/nosdk.py)"
        super().__init__(**kw)
        self.version = "bench/noserve.py"
        path = "uvicorn -> mock (in the process), no Ray" + (", no SDK" if nosdk else "")
        self.details = {"hops": 0, "hot_path": path}
        self.overhead_header = "x-llmgw-overhead-ms"

    def start(self, upstream: str) -> Target:
        port = free_port()
        key = "sk-bench-admin-" + uuid.uuid4().hex
        env = base_env(self.tag) | {"LLMGW_ADMIN_KEY": key, "BENCH_MOCK_KEY": "sk-bench"}
        cmd = [sys.executable, str(HERE / "noserve.py"), "--upstream", upstream]
        cmd += ["--no-sdk"] if self.nosdk else []
        self.proc = spawn([*cmd, "--port", str(port)], env=env, log=self.log)
        t = Target(
            self.name,
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"authorization": f"Bearer {key}"},
        )
        self.ready_s = wait_ready(t, self.proc, self.log, self.ready_timeout)
        return t


class PythonFloor(Gateway):
    """The least a Python proxy does (bench/floor.py): raw ASGI on uvicorn, bytes through an
    aiohttp session, no gateway work. Not a gateway: the floor under every Python one."""

    def __init__(self, workers: int = 1, **kw) -> None:
        self.workers = workers
        self.name = "python-floor" + (f"-{workers}x" if workers > 1 else "")
        procs = f"{workers} processes on one port" if workers > 1 else "one process"
        self.label = f"Python pass-through proxy, {procs} (floor, not a gateway)"
        super().__init__(**kw)
        self.version = "bench/floor.py"
        self.details = {"hops": 0, "hot_path": f"uvicorn -> aiohttp -> mock, {procs}"}

    def start(self, upstream: str) -> Target:
        port = free_port()
        cmd = [sys.executable, str(HERE / "floor.py"), "--upstream", upstream]
        cmd += ["--port", str(port), "--workers", str(self.workers)]
        self.proc = spawn(cmd, env=base_env(self.tag), log=self.log)
        t = Target(
            self.name,
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"authorization": "Bearer sk-bench"},
        )
        self.ready_s = wait_ready(t, self.proc, self.log, self.ready_timeout)
        return t


FLOORS = ("python-floor", "python-floor-2x")
LLMGW_VARIANTS = (
    "llmgw-haproxy",
    "llmgw-2x",
    "llmgw-handle",
    "llmgw-inline",
    "llmgw-inline-2x",
    "llmgw-router",
    "llmgw-sim",
    "llmgw-sim-default",
    "llmgw-noserve",
)
# The experiment in bench/nosdk.py: named only, never in a shorthand.
NOSDK = ("llmgw-nosdk", "llmgw-inline-2x-nosdk", "llmgw-noserve-nosdk")
ALL = ("llmgw", *LLMGW_VARIANTS, *NOSDK, "litellm", "portkey", *FLOORS)  # the order they run in
DEFAULT = ("llmgw", "litellm", "portkey")
GROUPS = {  # shorthands accepted by --only
    "all": tuple(name for name in ALL if name not in NOSDK),
    "default": DEFAULT,
    "llmgw-all": ("llmgw", *LLMGW_VARIANTS),
    "llmgw-variants": LLMGW_VARIANTS,
}


def make(name: str, portkey_stream_fix: bool = False, **kw) -> Gateway:
    if name == "portkey":
        return Portkey(stream_fix=portkey_stream_fix, **kw)
    if name.startswith("llmgw-noserve"):
        return NoServe(nosdk=name.endswith("-nosdk"), **kw)
    if name in FLOORS:
        return PythonFloor(workers=2 if name.endswith("-2x") else 1, **kw)
    if name == "llmgw" or name in LLMGW_VARIANTS or name in NOSDK:
        from peer_llmgw import Llmgw

        return Llmgw(variant=name, **kw)
    return LiteLLM(**kw)
