"""`llmgw usage` against a running gateway, as a user runs it: calls made through the HTTP API
show up in the report, billed once, under the request ids they were served with."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import llmgw

pytestmark = pytest.mark.ray

CONFIG = Path(__file__).with_name("gateway.yaml")
KEY = "sk-llmgw-e2e-admin-0123456789abcdef"


@pytest.fixture(scope="module")
def gateway(
    ray_cluster: None, serve_port: int, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    result = llmgw("up", "--config", str(CONFIG), "--port", str(serve_port), "--detach")
    url = f"http://127.0.0.1:{serve_port}"
    assert url in result.stdout
    yield url
    llmgw("down", "--keep-ray")


def chat(url: str, model: str, request_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "Hello"}]},
        headers={"authorization": f"Bearer {KEY}", "x-request-id": request_id},
        timeout=30,
    )


def test_llmgw_usage_reports_what_was_served(gateway: str) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    served = {}
    for n, model in enumerate(["sim-fast", "sim-fast", "sim-smart"]):
        sent = f"e2e-usage-{n}" if n else "not a usable id"
        response = chat(gateway, model, sent)
        assert response.status_code == 200
        (echoed,) = response.headers.get_list("x-request-id")
        served[echoed] = response.json()["usage"]
    assert "e2e-usage-1" in served and "e2e-usage-2" in served
    assert sum(1 for rid in served if re.fullmatch(r"req_[0-9a-f]{32}", rid)) == 1
    chat(gateway, "sim-fast", "e2e-usage-1")  # the same id again: billed once

    deadline = time.monotonic() + 30
    while True:
        rows = json.loads(llmgw("usage", "--since", since, "--format", "json").stdout)
        if sum(r["requests"] for r in rows) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_model = {r["model"]: r for r in rows}
    assert {r["tenant"] for r in rows} == {"admin"}
    assert by_model["sim-fast"]["requests"] == 2 and by_model["sim-smart"]["requests"] == 1
    fast = by_model["sim-fast"]
    assert (
        fast["prompt_tokens"]
        == sum(u["prompt_tokens"] for u in served.values())
        - (by_model["sim-smart"]["prompt_tokens"])
    )
    assert fast["total_tokens"] == fast["prompt_tokens"] + fast["completion_tokens"]
    assert fast["cost_usd"] > 0 and by_model["sim-smart"]["cost_usd"] > fast["cost_usd"]

    table = llmgw("usage", "--since", since, "--by", "provider,day", "--format", "csv").stdout
    (row,) = list(csv.DictReader(io.StringIO(table)))
    assert row["provider"] == "sim" and row["requests"] == "3"
    assert row["day"] == datetime.now(UTC).strftime("%Y-%m-%d")
    assert "sim-smart" in llmgw("usage", "--since", since).stdout  # the table
    refused = llmgw("usage", "--by", "week", check=False)
    assert refused.returncode == 1 and "cannot group usage by 'week'" in refused.stderr
