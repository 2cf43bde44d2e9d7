"""End-to-end: the `llmgw` CLI as a subprocess, on the session's shared Ray cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The console script pip installed, as a user runs it; `python -m` where there is none.
_SCRIPT = Path(sys.executable).with_name("llmgw")
LLMGW = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deployments.cli"]


def llmgw(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `llmgw ARGS` as a user would, with the test session's environment."""
    result = subprocess.run(
        [*LLMGW, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        cwd=Path(__file__).parent,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"llmgw {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result
