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


@pytest.fixture(scope="module")
def sweep_key(gateway: str) -> dict:
    """A data scientist's key: a tenant of its own, inference and usage:read scopes."""
    llmgw("tenants", "create", "data-science")
    return json.loads(llmgw("keys", "create", "--tenant", "data-science", "--json").stdout)


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


def test_sweep_killed_resumed_and_billed(gateway: str, sweep_key: dict, tmp_path: Path) -> None:
    created, key = sweep_key, sweep_key["key"]
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


def test_bad_sweep_fails_before_any_call(gateway: str, sweep_key: dict, tmp_path: Path) -> None:
    key = sweep_key["key"]
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


EXAMPLES = Path(__file__).parents[2] / "evals" / "examples"


def example(tmp_path: Path, name: str, **overrides: object) -> Path:
    sweep = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    sweep["limits"] = sweep.get("limits", {}) | {"max_cases": 4}
    sweep |= {"output": str(tmp_path / "runs")} | overrides
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def finish(gateway: str, key: str, *args: str) -> str:
    proc = eval_run(gateway, key, *args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    return out.splitlines()[0].removeprefix("run id: ").strip()


def test_the_example_sweeps_run_against_the_sim_models(
    gateway: str, sweep_key: dict, tmp_path: Path
) -> None:
    from evals import load_pairwise
    from evals.scorers import macro_f1

    key = sweep_key["key"]
    runs = str(tmp_path / "runs")

    run = finish(gateway, key, str(example(tmp_path, "summarization")))
    rows, manifest = load_run(runs, run)
    assert len(rows) == 4 * 2 * 3 and rows["error"].isna().all()
    assert rows["score.quality"].between(0, 1).all() and rows["reason.quality"].notna().all()
    assert rows["score.rouge_l"].between(0, 1).all()
    assert rows.loc[rows["model"] == "auto:summarization", "served_model"].notna().all()
    assert manifest["scorers"]["quality"]["kind"] == "score"
    assert manifest["scorers"]["quality"]["version"] == "faithful-summary@1"
    assert manifest["totals"]["scoring_cost_usd"] > 0

    run = finish(gateway, key, str(example(tmp_path, "classification")))
    rows, manifest = load_run(runs, run)
    assert len(rows) == 4 * 3 and manifest["scorers"]["label"]["kind"] == "label"
    assert 0 <= macro_f1(rows, "label") <= 1

    run = finish(gateway, key, str(example(tmp_path, "extraction")))
    rows, _ = load_run(runs, run)
    assert (rows["score.json_valid"] == 1.0).all()

    cache = str(tmp_path / "cache.sqlite")
    chat = example(tmp_path, "chat", cache=cache)
    run = finish(gateway, key, str(chat))
    rows, manifest = load_run(runs, run)
    pairs = load_pairwise(runs, run)
    assert pairs is not None and len(pairs) == 4 * 2  # cases x repeats, one pair of models
    assert set(pairs["winner"]) <= {"a", "b", "tie"}
    assert manifest["pairwise"]["preference"]["kind"] == "pairwise"
    assert not rows["cached"].any()
    # A new run of the same sweep is answered from the cache: no calls, no cost.
    again = finish(gateway, key, str(chat))
    cached, _ = load_run(runs, again)
    assert cached["cached"].all() and cached["cost_usd"].sum() == 0
    assert cached["output"].tolist() == rows["output"].tolist()


def test_precision_stops_a_models_rows_early(gateway: str, sweep_key: dict, tmp_path: Path) -> None:
    key = sweep_key["key"]
    # The sim never answers exactly, so each model's pass rate is 0: Wilson's half-width
    # falls under 0.2 after 10 cases.
    path = sweep_file(
        tmp_path,
        limits={"max_cases": 50},
        repeats=1,
        batch_size=8,
        requests_per_second=None,
        concurrency=4,
    )
    run = finish(gateway, key, str(path), "--precision", "0.2")
    rows, manifest = load_run(str(tmp_path / "runs"), run)
    assert set(manifest["stopped_early"]) == {"sim-fast", "sim-smart"}
    assert 20 <= len(rows) < 100
