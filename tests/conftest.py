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


@pytest.fixture(scope="session")
def llmgw_home() -> Path:
    return _HOME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def serve_port() -> int:
    """The one HTTP port Serve listens on for the whole session (Serve keeps its first)."""
    return free_port()


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
        )
    # CLI subprocesses (`llmgw up`) join this cluster instead of starting their own.
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    yield
    ray.shutdown()
