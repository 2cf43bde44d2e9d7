"""The local Ray `llmgw up` starts shares nothing with other clusters on the machine, and
stopping it stops only its own processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments import local_ray

SLEEPER = "import time; time.sleep(120)"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def spawn(started: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    """A process whose command line carries `args`, as a Ray process carries its flags."""
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER, *args])
    started.append(proc)
    return proc


def test_stopping_a_cluster_ends_its_processes_and_spares_another(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port = str(local_ray.free_port())  # free now: no running cluster's GCS listens on it
    gcs = spawn(processes, f"--gcs_server_port={port}")
    raylet = spawn(processes, f"--gcs-address=192.0.2.9:{port}", "--node-manager-port=0")
    session = spawn(processes, f"--logs-dir={tmp_path}/session_1/logs")
    other = spawn(processes, f"--gcs-address=192.0.2.9:{port}1")  # port 63880 beside 6388
    other_session = spawn(processes, f"--logs-dir={tmp_path}/session_11/logs")
    time.sleep(0.3)  # each has exec'd, so its command line is the one above
    local_ray.stop_local_ray(
        {"gcs_port": port, "session_dir": f"{tmp_path}/session_1"}, timeout_s=5
    )
    assert [p.poll() is not None for p in (gcs, raylet, session)] == [True, True, True]
    assert other.poll() is None and other_session.poll() is None


def test_a_new_rays_side_ports_are_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    http = local_ray.free_port()
    with socket.socket() as held:  # another cluster's fallback proxy on our +500
        held.bind(("0.0.0.0", 0))
        held.listen()
        taken = held.getsockname()[1]
        env = local_ray.side_ports_env(taken - 500, "default")
        assert int(env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"]) != taken
    ports = local_ray.side_ports_env(http, "default")
    fallback = int(ports["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
    assert fallback != 8500 and fallback != http
    assert fallback != int(ports["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"])
    assert "RAY_SERVE_HAPROXY_STATS_PORT" not in ports  # HAProxy runs in production mode only


def test_side_ports_the_user_set_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "18500")
    monkeypatch.setenv("RAY_SERVE_HAPROXY_STATS_PORT", "18404")
    for name in ("RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    env = local_ray.side_ports_env(8000, "production")
    assert "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT" not in env
    assert "RAY_SERVE_HAPROXY_STATS_PORT" not in env
    # HAProxy refuses a socket path over 97 characters; Serve adds /<56-char node id> to it.
    assert len(env["RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH"]) + 57 <= 97
    assert "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT" in env


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert not local_ray.port_free("127.0.0.1", port)
    assert local_ray.port_free("127.0.0.1", port)
