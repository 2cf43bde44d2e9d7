"""`llmgw up` starts its Ray with a metrics export port; `llmgw status` shows where to scrape
and each provider's health."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from deployments import local_ray
from deployments.cli import app
from gateway.cli.client import AdminClient, CLIError


def test_a_new_local_ray_exports_metrics_on_the_chosen_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(local_ray.subprocess, "run", run)
    local_ray.start_ray("default", None)
    local_ray.start_ray("default", None, metrics_port=19464)
    assert "--metrics-export-port=9464" in ran[0]
    assert "--metrics-export-port=19464" in ran[1]


@pytest.mark.parametrize(
    ("printed", "tries"),
    [("Exception: The current node timed out during startup.", 2), ("port in use", 1)],
)
def test_a_ray_start_too_slow_on_a_busy_machine_is_tried_once_more(
    monkeypatch: pytest.MonkeyPatch, printed: str, tries: int
) -> None:
    ran: list[list[str]] = []
    stopped: list[dict[str, str]] = []

    def run(command: list[str], stdout: Any, **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        stdout.write(printed)
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(local_ray.subprocess, "run", run)
    monkeypatch.setattr(local_ray, "stop_local_ray", stopped.append)
    with pytest.raises(CLIError, match="`ray start` failed"):
        local_ray.start_ray("default", None)
    assert len(ran) == len(stopped) == tries  # each failed start's leftovers stopped


def test_status_shows_the_metrics_urls_and_provider_health(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time()
    status = {
        "applications": {},
        "registry": {"version": 3, "models": 2, "providers": ["sim", "local"]},
        "metrics": [{"node": "10.0.0.5", "url": "http://10.0.0.5:9464/metrics"}],
        "health": {
            "local": {"state": "healthy", "checked_at": now - 4, "latency_ms": 2.71, "error": None},
            "gone": {
                "state": "unhealthy",
                "checked_at": now - 4,
                "latency_ms": 1.2,
                "error": "service_unavailable",
            },
        },
    }

    class Client:
        def request(self, method: str, path: str) -> dict[str, Any]:
            assert (method, path) == ("GET", "/admin/status")
            return status

    monkeypatch.setattr(AdminClient, "from_state", classmethod(lambda cls, url: Client()))
    out = CliRunner().invoke(app, ["status"]).output
    assert "http://10.0.0.5:9464/metrics" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.count("│") >= 5}
    assert "healthy" in lines["local"] and "2.7" in lines["local"] and "4 s ago" in lines["local"]
    assert "unhealthy" in lines["gone"] and "service_unavailable" in lines["gone"]
