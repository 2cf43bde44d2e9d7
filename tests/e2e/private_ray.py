"""A user's machine with no Ray running, for tests of `llmgw up` starting (and stopping) its
own: a temp dir no other cluster uses, so whatever the test's Ray leaves behind is found."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LLMGW

KEY = "sk-llmgw-e2e-up-admin-0123456789abcdef"


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`llmgw ARGS` with an environment of the test's own (no session cluster in it)."""
    return subprocess.run(
        [*LLMGW, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ray_processes(mark: str) -> list[int]:
    """Processes whose command line names `mark` (a private Ray temp dir): a cluster's."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def private_ray(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a user with no Ray running: `up` starts one of its own, in a temp
    dir no other cluster uses, and whatever it leaves running is found (and stopped) by it."""
    temp = Path(tempfile.mkdtemp(prefix="llmgw-up-", dir="/tmp"))  # socket paths stay short
    env = {
        k: v
        for k, v in os.environ.items()
        # The session's own choices (conftest), so `up`'s are the ones tested.
        if k != "RAY_ADDRESS" and not k.startswith(("RAY_SERVE_FALLBACK", "RAY_SERVE_HAPROXY"))
    }
    env |= {"RAY_TMPDIR": str(temp), "LLMGW_HOME": str(tmp_path), "LLMGW_ADMIN_KEY": KEY}
    yield env
    left = ray_processes(str(temp))
    for pid in left:  # only this test's cluster: its processes name its temp dir
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    shutil.rmtree(temp, ignore_errors=True)  # the Ray's logs and sockets
    assert not left, f"processes of the test's Ray were left running: {left}"
