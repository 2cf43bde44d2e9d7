"""Fixtures shared by every test: a private LLMGW_HOME and one Ray cluster per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Every test run gets its own state directory, never the user's ~/.llmgw.
_HOME = Path(tempfile.mkdtemp(prefix="llmgw-test-home-"))
os.environ["LLMGW_HOME"] = str(_HOME)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def llmgw_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the whole session: a bare start costs ~7 s here."""
    import ray

    if not ray.is_initialized():
        ray.init(
            include_dashboard=False,
            num_cpus=2,
            namespace="llmgw-tests",
            log_to_driver=False,
            runtime_env={"env_vars": {"LLMGW_HOME": str(_HOME)}},
        )
    yield
    ray.shutdown()
