"""Fixtures shared by every test: a private LLMGW_HOME and one Ray cluster per session."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Every test run gets its own state directory, never the user's ~/.llmgw.
_HOME = Path(tempfile.mkdtemp(prefix="llmgw-test-home-"))
os.environ["LLMGW_HOME"] = str(_HOME)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The tests serve through the production HTTP path (HAProxy), as `llmgw up` does by default.
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
# An app torn down between modules need not wait out production's 30 s ingress drain.
os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
# As `llmgw up` sets it: Serve's proxy sanitises client request ids before echoing them.
os.environ.setdefault(
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "gateway.usage.request_ids:serve_middlewares"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# HAProxy's files and side ports default to places every Serve cluster on the machine shares
# (/tmp/haproxy-serve, :9101, :8404): this session's get their own, so the tests run beside a
# developer's gateway. Socket paths must stay under ~100 characters, hence a short /tmp dir.
_HAPROXY = Path(tempfile.mkdtemp(prefix="llmgw-hp-", dir="/tmp"))
for _name, _value in {
    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": _HAPROXY / "haproxy.cfg",
    "RAY_SERVE_HAPROXY_SOCKET_PATH": _HAPROXY / "admin.sock",
    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": _HAPROXY,
    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": _HAPROXY / "server-state",
    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": _HAPROXY / "metrics.sock",
    "RAY_SERVE_HAPROXY_METRICS_PORT": _free_port(),
    "RAY_SERVE_HAPROXY_STATS_PORT": _free_port(),
    # HAProxy's backup server is the Serve proxy on this port (default 8500 for every
    # cluster): shared, a marked-down replica sent this session's calls to another gateway.
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": _free_port(),
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": _free_port(),
}.items():
    os.environ.setdefault(_name, str(_value))


@pytest.fixture(scope="session")
def llmgw_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def serve_port() -> int:
    """The one HTTP port Serve listens on for the whole session (Serve keeps its first)."""
    return _free_port()


# Ray's per-node metrics exporter for the session's cluster (Prometheus text at /metrics).
_METRICS_PORT = _free_port()


@pytest.fixture(scope="session")
def metrics_port() -> int:
    """Where the session's Ray serves every replica's metrics."""
    return _METRICS_PORT


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the whole session: a bare start costs ~7 s here."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            include_dashboard=False,
            num_cpus=2,
            namespace="llmgw-tests",
            log_to_driver=False,
            runtime_env={"env_vars": {"LLMGW_HOME": str(_HOME)}},
            _metrics_export_port=_METRICS_PORT,
        )
    # CLI subprocesses (`llmgw up`) join this cluster instead of starting their own.
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    yield
    ray.shutdown()


def serve_with_proxy(port: int) -> None:
    """Serve on the session's cluster with its HTTP proxy on `port`. Serve keeps the settings
    it first started with: one left without a proxy (`llmgw up --http-mode ingress` on this
    cluster, its app gone) is stopped first."""
    from ray import serve

    from deployments.lifecycle import proxy_disabled, serve_controller

    controller = serve_controller()
    if controller is not None and proxy_disabled(controller):
        assert not serve.status().applications, "a proxy-less Serve still has apps"
        serve.shutdown()
    serve.start(http_options={"host": "127.0.0.1", "port": port})


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """`monkeypatch` for module-scoped fixtures (a gateway deployed once per module)."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch
