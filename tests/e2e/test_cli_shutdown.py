"""Stopping a real `llmgw up` mid-traffic, as a service manager (SIGTERM) or an operator
(`llmgw down`) does: calls in flight, streamed or not, finish; every one is in the usage store;
the stop takes no longer than the drain bound; and the Ray `up` started is gone afterwards."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import yaml

from deployments.app import DRAIN_TIMEOUT_S
from tests.e2e.conftest import LLMGW
from tests.e2e.private_ray import KEY, free_port, private_ray, ray_processes, run

pytestmark = pytest.mark.ray
__all__ = ["private_ray"]  # a fixture the tests here use

TOKENS = 30
CALLS = 8
HELLO = [{"role": "user", "content": "Hello"}]
# Ray's own stop after the drain: its processes get SIGTERM, then SIGKILL after 10 s.
RAY_STOP_S = 15


def _config(home: Path) -> Path:
    """One sim model that answers in ~3 s (30 tokens at 10/s), and a store in `home`."""
    path = home / "gateway.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "providers": [
                    {
                        "name": "slow",
                        "type": "sim",
                        "sim": {"output_tokens": TOKENS, "tokens_per_s": 10},
                    }
                ],
                "models": [{"name": "sim-slow", "provider": "slow", "timeouts": {"total_s": 60}}],
                "store": {"url": f"sqlite:///{home / 'usage.db'}"},
            }
        )
    )
    return path


def _call(client: openai.OpenAI, i: int) -> int:
    """Completion tokens the client received in one ~3 s call (odd calls stream)."""
    headers = {"x-request-id": f"stop-{i}"}
    if i % 2:
        stream = client.chat.completions.create(
            model="sim-slow",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        chunks = list(stream)
        assert chunks[-1].usage is not None
        return chunks[-1].usage.completion_tokens
    reply = client.chat.completions.create(model="sim-slow", messages=HELLO, extra_headers=headers)
    assert reply.usage is not None
    return reply.usage.completion_tokens


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _fallback_port(temp: str) -> int:
    """Serve's fallback proxy port in the environment the test's Ray started with."""
    for pid in ray_processes(temp):
        if b"raylet" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(_environ(pid)["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
    raise AssertionError("no raylet of the test's Ray")


@pytest.mark.parametrize("how", ["sigterm", "down"])
def test_stopping_mid_traffic_loses_nothing(
    how: str, private_ray: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    args = ["up", "--config", str(_config(tmp_path)), "--port", str(port)]
    if how == "down":
        args.append("--detach")
    up = subprocess.Popen(
        [*LLMGW, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=private_ray,
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            output.append(line)
            if "llmgw is up at" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(300), "".join(output)
        url = f"http://127.0.0.1:{port}"
        assert f"llmgw is up at {url}" in "".join(output)
        # The new Ray's Serve has a fallback proxy port of its own, not the shared default.
        assert _fallback_port(private_ray["RAY_TMPDIR"]) not in (8500, port)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
        with ThreadPoolExecutor(CALLS) as pool:
            calls = [pool.submit(_call, client, i) for i in range(CALLS)]
            time.sleep(1.0)  # every call is in flight, about a third through
            assert not any(c.done() for c in calls)
            stopped_at = time.monotonic()
            if how == "sigterm":
                up.send_signal(signal.SIGTERM)
                stopper = up
            else:
                assert up.wait(30) == 0  # `up --detach` returned once ready
                stopper = subprocess.Popen([*LLMGW, "down"], env=private_ray)
            results = [c.result(timeout=90) for c in calls]
        assert stopper.wait(DRAIN_TIMEOUT_S + RAY_STOP_S + 30) == 0, "".join(output)
        took = time.monotonic() - stopped_at
    finally:
        if up.poll() is None:
            up.kill()
        reader.join(10)
    assert results == [TOKENS] * CALLS
    print(f"stopped by {how} in {took:.1f} s, {CALLS} calls in flight")
    assert took < DRAIN_TIMEOUT_S + RAY_STOP_S, f"the stop took {took:.1f} s"
    with sqlite3.connect(tmp_path / "usage.db") as db:
        rows = db.execute(
            "select request_id, status, completion_tokens from usage where request_id like 'stop-%'"
        ).fetchall()
    assert sorted(rows) == sorted((f"stop-{i}", 200, TOKENS) for i in range(CALLS))
    assert not ray_processes(private_ray["RAY_TMPDIR"]), "the Ray `up` started is still running"
    assert run("status", env=private_ray).returncode == 1  # no gateway left to ask
