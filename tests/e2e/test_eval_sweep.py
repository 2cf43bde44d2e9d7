"""A data scientist's sweep: two sim models through a running gateway, the CLI killed mid-way
(SIGKILL) and resumed under the same run id, the run read back with `load_run`, every row's
cost checked against the gateway's own usage records for the sweep's key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from evals import load_run
from tests.e2e.conftest import LLMGW, llmgw

pytestmark = pytest.mark.ray

ADMIN_KEY = "sk-llmgw-e2e-evals-admin-0123456789abcdef"
CASES, PROMPTS, MODELS, REPEATS = 10, 1, 2, 2


@pytest.fixture(scope="module")
def gateway(
    ray_cluster: None, serve_port: int, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", ADMIN_KEY)
    llmgw("up", "--port", str(serve_port), "--detach")
    yield f"http://127.0.0.1:{serve_port}"
    llmgw("down", "--keep-ray")


def sweep_file(tmp_path: Path, **overrides: object) -> Path:
    sweep = {
        "name": "e2e",
        "dataset": {"path": "chat", "id": "id", "input": "input", "reference": "reference"},
        "prompts": [{"name": "terse", "template": "{input}", "system": "Answer briefly."}],
        "models": ["sim-fast", "sim-smart"],
        "params": {"temperature": 0, "max_tokens": 16},
        "repeats": REPEATS,
        "scorers": ["exact_match", {"type": "contains", "name": "mentions"}, "token_f1"],
        "limits": {"max_cases": CASES},
        # Slow enough to be killed mid-way: 4 rows a batch, 8 calls a second.
        "concurrency": 2,
        "requests_per_second": 8,
        "batch_size": 4,
        "output": str(tmp_path / "runs"),
    } | overrides
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def eval_run(gateway: str, key: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LLMGW, "eval", "run", *args, "--gateway", gateway, "--key", key, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def usage_by_request(request_ids: list[str]) -> dict[str, dict]:
    """The gateway's usage records for these request ids, once the writer has stored them."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{os.environ['LLMGW_HOME']}/llmgw.db")
    found: dict[str, dict] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT request_id, key_id, cost_usd, prompt_tokens, completion_tokens"
                    " FROM usage"
                )
            ).mappings()
            found = {r["request_id"]: dict(r) for r in rows if r["request_id"] in set(request_ids)}
        if len(found) == len(set(request_ids)):
            break
        time.sleep(1)
    return found


def test_sweep_killed_resumed_and_billed(gateway: str, tmp_path: Path) -> None:
    llmgw("tenants", "create", "data-science")
    created = json.loads(llmgw("keys", "create", "--tenant", "data-science", "--json").stdout)
    key = created["key"]
    path = sweep_file(tmp_path)

    first = eval_run(gateway, key, str(path))
    assert first.stdout is not None
    line = first.stdout.readline()
    assert line.startswith("run id: "), line
    run_id = line.removeprefix("run id: ").strip()
    parts = tmp_path / "runs" / run_id / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.parquet"))) < 2:
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    partial, _ = load_run(str(tmp_path / "runs"), run_id)
    expected = CASES * PROMPTS * MODELS * REPEATS
    assert 0 < len(partial) < expected

    second = eval_run(gateway, key, str(path), "--run-id", run_id)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, out + err
    rows, manifest = load_run(str(tmp_path / "runs" / run_id))
    assert len(rows) == expected
    assert rows[["case_id", "prompt", "model", "repeat"]].drop_duplicates().shape[0] == expected
    assert rows["error"].isna().all(), rows["error"].dropna().tolist()
    assert set(rows["served_model"]) == {"sim-fast", "sim-smart"}
    assert manifest["totals"]["rows"] == expected
    assert manifest["sweep_hash"] and manifest["started_at"] and manifest["ended_at"]
    assert manifest["resumed_at"]
    for name in ("exact_match", "mentions", "token_f1"):
        assert rows[f"score.{name}"].between(0, 1).all()
    assert set(rows["score.exact_match"]) <= {0.0, 1.0}

    # Every row's cost is what the gateway billed that call, under the sweep's key.
    usage = usage_by_request(rows["request_id"].tolist())
    assert len(usage) == expected
    for row in rows.itertuples():
        billed = usage[row.request_id]
        assert billed["key_id"] == created["id"]
        assert row.cost_usd == pytest.approx(billed["cost_usd"], rel=1e-9, abs=1e-15)
        assert row.cost_usd > 0
        assert (row.prompt_tokens, row.completion_tokens) == (
            billed["prompt_tokens"],
            billed["completion_tokens"],
        )

    # Running the same id again has nothing left to do, and changes nothing.
    again = eval_run(gateway, key, str(path), "--run-id", run_id)
    again.communicate(timeout=300)
    same, _ = load_run(str(tmp_path / "runs"), run_id)
    assert same.equals(rows)


def test_bad_sweep_fails_before_any_call(gateway: str, tmp_path: Path) -> None:
    key = json.loads(llmgw("keys", "create", "--tenant", "data-science", "--json").stdout)["key"]
    cases = [
        ({"models": ["sim-fast", "sim-nope"]}, "models[1]", "sim-nope"),
        (
            {"dataset": {"path": "chat", "input": "question", "reference": "reference"}},
            "dataset.input",
            "question",
        ),
        ({"scorers": ["exact_match", "bleu"]}, "scorers[1].type", "unknown scorer 'bleu'"),
    ]
    for overrides, field, words in cases:
        path = sweep_file(tmp_path, **overrides)
        proc = eval_run(gateway, key, str(path))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, out + err
        assert field in err and words in err, err
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/parts"))
