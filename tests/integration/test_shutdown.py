"""A graceful stop (`llmgw down`, or SIGTERM to `llmgw up`, both end in `teardown()`) lets every
in-flight request finish, streamed or not, and bills each one: nothing is lost. The same through
the CLI itself, on a Ray `up` starts and stops: tests/e2e/test_cli_shutdown.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.conftest import Deployed

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-shutdown-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
TOKENS = 30
CONFIG = {
    "providers": [
        {"name": "slow", "type": "sim", "sim": {"output_tokens": TOKENS, "tokens_per_s": 10}}
    ],
    "models": [{"name": "sim-slow", "provider": "slow", "timeouts": {"total_s": 60}}],
}


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    return serve_gateway(CONFIG)


def _call(url: str, i: int) -> tuple[int, int]:
    """(status, completion tokens the client received) of one ~3 s call."""
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": f"drain-{i}"}
    body = {"model": "sim-slow", "messages": HELLO}
    with httpx.Client(timeout=60) as http:
        if i % 2:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
            with http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                lines = [line for line in r.iter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]", lines[-3:]
            return r.status_code, json.loads(lines[-2][6:])["usage"]["completion_tokens"]
        r = http.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        return r.status_code, r.json()["usage"]["completion_tokens"]


def test_teardown_drains_in_flight_requests_and_bills_every_one(gateway: Deployed) -> None:
    from deployments.app import teardown

    n = 8
    assert httpx.get(f"{gateway.url}/health/ready").status_code == 200
    with ThreadPoolExecutor(n) as pool:
        calls = [pool.submit(_call, gateway.url, i) for i in range(n)]
        time.sleep(1.0)  # every call is in flight, about a third through
        assert not any(c.done() for c in calls)
        stopped = threading.Event()
        started = time.monotonic()
        stopper = threading.Thread(target=lambda: (teardown(), stopped.set()))
        stopper.start()
        results = [c.result(timeout=90) for c in calls]
        stopper.join(timeout=90)
    took = time.monotonic() - started
    assert stopped.is_set()
    assert results == [(200, TOKENS)] * n
    assert took < 30, f"the stop took {took:.1f} s"
    with create_engine(gateway.store_url).connect() as db:
        rows = db.execute(
            text(
                "select request_id, status, completion_tokens from usage"
                " where request_id like 'drain-%'"
            )
        ).all()
    assert sorted(rows) == sorted((f"drain-{i}", 200, TOKENS) for i in range(n))
