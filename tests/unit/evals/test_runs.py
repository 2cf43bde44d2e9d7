"""Run folders, the rows still to run, retries, the cost limit and early stopping; no Ray."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from evals import load_run
from evals.client import CallResult, GatewayClient
from evals.datasets import load_cases
from evals.precision import models_to_stop, normal_half_width, wilson_half_width
from evals.results import RunFolder, schema_for, to_table
from evals.runner import pending_rows, plan
from evals.sweep import parse_sweep
from evals.worker import Budget

SWEEP = parse_sweep(
    {
        "name": "t",
        "dataset": {"path": "chat", "reference": "reference", "category": "category"},
        "prompts": [
            {"name": "a", "template": "{input}", "system": "Be brief."},
            {"name": "b", "template": "Q: {input}"},
        ],
        "models": ["sim-fast", "auto:chat"],
        "repeats": 2,
        "scorers": ["exact_match"],
    }
)


def finished(rows: list[dict], error: str | None = None) -> list[dict]:
    out = []
    for r in rows:
        done = {
            k: v
            for k, v in r.items()
            if k
            not in ("messages", "case_json", "request_base", "attempts_before", "cached_response")
        }
        out.append(
            done
            | {
                "output": "x",
                "error": error,
                "cost_usd": 0.5,
                "attempts": 1,
                "score.exact_match": None if error else 1.0,
            }
        )
    return out


def test_plan_is_the_cross_product_with_every_model_in_each_stretch() -> None:
    cases = load_cases("chat")[:3]
    rows = plan(SWEEP, cases, "run-1")
    assert len(rows) == 3 * 2 * 2 * 2
    assert [r["model"] for r in rows[:2]] == ["sim-fast", "auto:chat"]
    assert {r["repeat"] for r in rows[:12]} == {0}
    assert rows[0]["category"] == "facts" and rows[0]["reference"] == "Ottawa"
    assert '"system"' in rows[0]["messages"] and rows[2]["input"].startswith("Q: ")
    ids = [r["request_base"] for r in rows]
    assert len(set(ids)) == len(ids) and all(len(i) + 3 <= 64 for i in ids)


def test_resume_skips_written_rows_and_retry_failed_reruns_errors(tmp_path: Path) -> None:
    rows = plan(SWEEP, load_cases("chat")[:2], "r")
    folder = RunFolder(str(tmp_path), "r")
    schema = schema_for(["exact_match"], [], [])
    folder.write_part(to_table(finished(rows[:4]), schema), 0)
    folder.write_part(to_table(finished(rows[4:6], error="HTTP 503: busy"), schema), 1)
    written = folder.rows()
    assert len(pending_rows(rows, written, retry_failed=False)) == len(rows) - 6
    again = pending_rows(rows, written, retry_failed=True)
    assert len(again) == len(rows) - 4
    assert [r["attempts_before"] for r in again[:2]] == [1, 1]  # new request ids

    # A retried row replaces the failed one; compaction keeps the sweep's order.
    folder.write_part(to_table(finished(rows[4:6]), schema), 2)
    order = [(r["case_id"], r["prompt"], r["model"], r["repeat"]) for r in rows]
    folder.write_manifest({"run_id": "r"})
    compacted = folder.compact(schema, order)
    assert len(compacted) == 6 and compacted["error"].isna().all()
    assert folder.parts() == []
    loaded, manifest = load_run(str(tmp_path / "r"))
    assert manifest == {"run_id": "r"}
    assert loaded.equals(load_run(str(tmp_path), "r")[0])
    assert list(loaded["case_id"]) == [k[0] for k in order[:6]]
    assert loaded["score.exact_match"].tolist() == [1.0] * 6


def test_wilson_and_normal_half_widths() -> None:
    # Wilson 95% for 50/100: (0.4038, 0.5962).
    assert wilson_half_width(50, 100) == pytest.approx((0.5962 - 0.4038) / 2, abs=1e-4)
    assert wilson_half_width(0, 0) == math.inf
    values = pd.Series([0.0, 1.0] * 50)
    assert normal_half_width(values) == pytest.approx(1.96 * values.std() / 10, rel=1e-3)


def test_models_stop_once_their_interval_is_narrow_enough() -> None:
    rng = np.random.default_rng(3)
    n = 400
    rows = pd.DataFrame(
        {
            "model": ["steady"] * n + ["noisy"] * n,
            "case_id": [str(i) for i in range(n)] * 2,
            "score.s": np.r_[0.8 + rng.normal(0, 0.01, n), rng.uniform(0, 1, n)],
        }
    )
    stopped = models_to_stop(rows, "s", "score", precision=0.02)
    assert list(stopped) == ["steady"]
    assert models_to_stop(rows.head(5), "s", "score", precision=1.0) == {}  # too few cases


async def test_retries_honour_retry_after_and_give_each_attempt_its_id() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-request-id"])
        if len(seen) < 3:
            return httpx.Response(
                429, headers={"retry-after": "0.2"}, json={"error": {"message": "slow down"}}
            )
        body = {
            "model": "sim-fast",
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
        return httpx.Response(
            200, json=body, headers={"x-llmgw-model": "sim-fast", "x-llmgw-cost-usd": "0.25"}
        )

    client = GatewayClient("http://gw", "k", transport=httpx.MockTransport(answer))
    started = asyncio.get_running_loop().time()
    result = await client.chat("sim-fast", [{"role": "user", "content": "q"}], {}, "ev-x")
    assert asyncio.get_running_loop().time() - started >= 0.4
    assert seen == ["ev-x-0", "ev-x-1", "ev-x-2"]
    assert (result.output, result.cost_usd, result.attempts, result.request_id) == (
        "hi",
        0.25,
        3,
        "ev-x-2",
    )

    refused = GatewayClient(
        "http://gw",
        "k",
        retries=1,
        transport=httpx.MockTransport(
            lambda r: httpx.Response(400, json={"error": {"message": "bad max_tokens"}})
        ),
    )
    failed = await refused.chat("sim-fast", [], {}, "ev-y")
    assert failed.error == "HTTP 400: bad max_tokens" and failed.attempts == 1
    await client.aclose()
    await refused.aclose()


async def test_the_cost_limit_stops_before_it_would_be_passed() -> None:
    budget = Budget(limit=1.0)
    calls = 0

    async def call() -> CallResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return CallResult("x", "m", 1, 1, 0.3, 1.0, None, 1, "id")

    results = await asyncio.gather(*(budget.run("m", call()) for _ in range(10)))
    done = [r for r in results if r is not None]
    assert len(done) == calls == 3 and budget.spent == pytest.approx(0.9)
    assert budget.exhausted
