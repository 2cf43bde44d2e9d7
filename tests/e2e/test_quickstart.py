"""The quickstart on a machine with no Ray running: `llmgw up` starts its own Ray, serves, and
`llmgw down` stops that Ray again, leaving nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import LLMGW

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_up_starts_its_own_ray_and_down_stops_it(tmp_path: Path) -> None:
    port = _free_port()
    # A Ray of its own: no RAY_ADDRESS, and a temp dir where no other cluster is recorded
    # (short: Ray's and HAProxy's socket paths must fit ~100 characters).
    ray_tmp = tempfile.mkdtemp(prefix="lq", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_HAPROXY")}
    env.pop("RAY_ADDRESS", None)
    haproxy = Path(ray_tmp) / "h"
    haproxy.mkdir()
    env.update(
        LLMGW_HOME=str(tmp_path / "home"),
        RAY_TMPDIR=ray_tmp,
        LLMGW_ADMIN_KEY="sk-llmgw-quickstart-0123456789abcdef",
        RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=str(haproxy / "haproxy.cfg"),
        RAY_SERVE_HAPROXY_SOCKET_PATH=str(haproxy / "admin.sock"),
        RAY_SERVE_HAPROXY_SERVER_STATE_BASE=str(haproxy),
        RAY_SERVE_HAPROXY_SERVER_STATE_FILE=str(haproxy / "server-state"),
        RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=str(haproxy / "metrics.sock"),
        RAY_SERVE_HAPROXY_METRICS_PORT=str(_free_port()),
        RAY_SERVE_HAPROXY_STATS_PORT=str(_free_port()),
    )

    def llmgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LLMGW, *args], env=env, capture_output=True, text=True, timeout=300)

    up = llmgw("up", "--port", str(port), "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Starting a local Ray" in up.stdout
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=env["LLMGW_ADMIN_KEY"], max_retries=0
        )
        assert (
            client.chat.completions.create(
                model="sim-fast", messages=[{"role": "user", "content": "hi"}]
            )
            .choices[0]
            .message.content
        )
        session = (Path(ray_tmp) / "ray" / "session_latest").resolve()
        ours = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and str(session).encode() in _cmdline(p)
        ]
        assert ours, "the Ray that `up` started runs from its own session directory"
    finally:
        down = llmgw("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _alive(ours) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "nothing serves the port after down"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
