"""A sweep as a Ray Data job: the cross product of cases, prompts, models and repeats becomes
rows; a `SweepWorker` actor calls the gateway and scores them; the driver writes each finished
batch to `parts/` (so a killed run resumes where it stopped), then compacts the run."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evals.cache import ResponseCache, cache_key, cache_path
from evals.datasets import fields_of, load_cases
from evals.pairwise import judge_pairs
from evals.precision import models_to_stop
from evals.preflight import gateway_models
from evals.progress import Progress
from evals.results import KEY, RunFolder, schema_for, to_table
from evals.scorers import build
from evals.scorers.model import PairwiseJudge
from evals.sweep import Sweep, SweepError, check_fields
from evals.worker import CONTROL_NAMESPACE, SweepWorker, row_scorers

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How to run a sweep: where the gateway is, with which key, which run to (re)start."""

    gateway: str
    key: str
    run_id: str | None = None
    retry_failed: bool = False
    precision: float | None = None
    output: str | None = None
    progress: bool = False


def new_run_id(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{name[:24]}-{stamp}-{uuid.uuid4().hex[:6]}".replace(" ", "_")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _digest(*parts: object, size: int = 20) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=size // 2).hexdigest()


# ---------------------------------------------------------------------------- rows


def plan(sweep: Sweep, cases: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """Every row of the sweep, in order: repeats outermost, then cases, prompts and models, so
    that every batch holds every model (what early stopping compares)."""
    d = sweep.dataset
    run_tag = _digest(run_id, size=12)
    rows = []
    for repeat, case, prompt, model in itertools.product(
        range(sweep.repeats), cases, sweep.prompts, sweep.models
    ):
        system, user = prompt.render(case)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}
        ]
        case_id = str(case[d.id])
        reference = case.get(d.reference) if d.reference else None
        category = case.get(d.category) if d.category else None
        rows.append(
            {
                "run_id": run_id,
                "case_id": case_id,
                "category": None if category is None else str(category),
                "prompt": prompt.name,
                "model": model,
                "repeat": repeat,
                "input": user,
                "reference": None if reference is None else str(reference),
                "messages": json.dumps(messages),
                "case_json": json.dumps(case, default=str),
                "request_base": f"ev-{run_tag}-{_digest(case_id, prompt.name, model, repeat)}",
                "attempts_before": 0,
                "cached_response": None,
            }
        )
    return rows


def pending_rows(
    planned: list[dict[str, Any]], written: pd.DataFrame, retry_failed: bool
) -> list[dict[str, Any]]:
    """The rows still to run: those never written, and with `retry_failed` those that failed
    (their attempts so far carried over, so each new attempt has a request id of its own)."""
    if written.empty:
        return planned
    keys = zip(*(written[k] for k in KEY), strict=True)
    # A run made elsewhere in the documented layout may carry no `attempts` column.
    attempts = written["attempts"] if "attempts" in written else [0] * len(written)
    done = {key: (err, att) for key, err, att in zip(keys, written["error"], attempts, strict=True)}
    pending = []
    for row in planned:
        seen = done.get((row["case_id"], row["prompt"], row["model"], row["repeat"]))
        if seen is None:
            pending.append(row)
        elif retry_failed and isinstance(seen[0], str):
            before = 0 if pd.isna(seen[1]) else int(seen[1])
            pending.append(row | {"attempts_before": before})
    return pending


# ---------------------------------------------------------------------------- running


def _connect_ray() -> None:
    import ray

    if not ray.is_initialized():
        from deployments.local_ray import cluster_address

        # The cluster RAY_ADDRESS names, else the local one `llmgw up` started, else a new one.
        ray.init(
            address=cluster_address(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _control_actor(name: str) -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class SweepControl:
        """Which models the driver has stopped; workers ask between batches."""

        def __init__(self) -> None:
            self._stopped: set[str] = set()

        def stop(self, model: str) -> None:
            self._stopped.add(model)

        def stopped(self) -> list[str]:
            return sorted(self._stopped)

    return SweepControl.options(name=name, namespace=CONTROL_NAMESPACE).remote()


def run_sweep(
    sweep: Sweep,
    options: RunOptions,
    announce: Callable[[str], None] = lambda run_id: None,
) -> dict[str, Any]:
    """Run (or resume) a sweep; returns the manifest written beside results.parquet."""
    run_id = options.run_id or new_run_id(sweep.name)
    folder = RunFolder(options.output or sweep.output, run_id)
    announce(run_id)

    cases = load_cases(sweep.dataset.path, sweep.dataset.format)
    check_fields(sweep, fields_of(cases))
    if sweep.limits.max_cases is not None:
        cases = cases[: sweep.limits.max_cases]
    ids = [str(c[sweep.dataset.id]) for c in cases]
    if len(set(ids)) != len(ids):
        raise SweepError("case ids must be unique", f"dataset.id ({sweep.dataset.id})")
    providers, registry_version = gateway_models(options.gateway, options.key, sweep)

    previous = folder.read_manifest()
    if previous is not None and previous.get("sweep_hash") != sweep.digest():
        raise SweepError(
            f"run '{run_id}' was made by a different sweep (hash {previous['sweep_hash'][:12]});"
            " resume it with the same sweep file, or start a new run"
        )
    scorers = row_scorers(sweep)
    all_scorers = [build(spec, sweep) for spec in sweep.scorers]
    schema = schema_for(
        [s.name for s in scorers],
        [s.name for s in scorers if s.kind == "label"],
        [s.name for s in scorers if s.type == "judge"],
    )
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "name": sweep.name,
        "sweep": sweep.model_dump(mode="json"),
        "sweep_hash": sweep.digest(),
        "git_revision": git_revision(),
        "registry_version": registry_version,
        "gateway": options.gateway,
        "started_at": previous["started_at"] if previous else _now(),
        "ended_at": None,
        "resumed_at": [*(previous or {}).get("resumed_at", []), *([_now()] if previous else [])],
        "totals": {},
        "scorers": {s.name: s.describe() for s in scorers},
        "pairwise": {s.name: s.describe() for s in all_scorers if isinstance(s, PairwiseJudge)},
        "precision": options.precision,
        "stopped_early": (previous or {}).get("stopped_early", {}),
        "stopped_by_budget": False,
        "location": folder.location,
    }
    folder.write_manifest(manifest)

    planned = plan(sweep, cases, run_id)
    written = folder.rows()
    todo = pending_rows(planned, written, options.retry_failed)
    spent = float(written["cost_usd"].fillna(0).sum()) if len(written) else 0.0
    cache = ResponseCache(cache_path(sweep.cache)) if sweep.cache else None
    if cache is not None and todo:
        _fill_from_cache(cache, todo, sweep)

    if todo:
        stats = _execute(sweep, options, folder, todo, written, providers, spent, cache, manifest)
        manifest["stopped_by_budget"] = stats["budget"]
    if cache is not None:
        cache.close()

    order = [(r["case_id"], r["prompt"], r["model"], r["repeat"]) for r in planned]
    rows = folder.compact(schema, order)
    pairwise_cost = judge_pairs(sweep, options, folder, rows, providers, all_scorers)
    errors = int(rows["error"].notna().sum()) if len(rows) else 0
    manifest["ended_at"] = _now()
    manifest["totals"] = {
        "rows": len(rows),
        "planned_rows": len(planned),
        "errors": errors,
        "cost_usd": float(rows["cost_usd"].fillna(0).sum()) if len(rows) else 0.0,
        "prompt_tokens": int(rows["prompt_tokens"].fillna(0).sum()) if len(rows) else 0,
        "completion_tokens": int(rows["completion_tokens"].fillna(0).sum()) if len(rows) else 0,
        "scoring_cost_usd": float(rows["score_cost_usd"].fillna(0).sum()) + pairwise_cost
        if len(rows)
        else pairwise_cost,
    }
    folder.write_manifest(manifest)
    return manifest


def _fill_from_cache(cache: ResponseCache, todo: list[dict[str, Any]], sweep: Sweep) -> None:
    keys = [
        cache_key(r["model"], json.loads(r["messages"]), sweep.params, r["repeat"]) for r in todo
    ]
    found = cache.get_many(keys)
    for row, key in zip(todo, keys, strict=True):
        if key in found:
            row["cached_response"] = json.dumps(found[key])


def _execute(
    sweep: Sweep,
    options: RunOptions,
    folder: RunFolder,
    todo: list[dict[str, Any]],
    written: pd.DataFrame,
    providers: dict[str, str],
    spent: float,
    cache: ResponseCache | None,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    import ray

    _connect_ray()
    control_name = f"sweep-{folder.run_id}-{uuid.uuid4().hex[:6]}"
    control = _control_actor(control_name) if options.precision else None
    budget = None
    if sweep.limits.max_cost_usd is not None:
        budget = max(0.0, sweep.limits.max_cost_usd - spent) / sweep.workers
    dataset = ray.data.from_items(todo).map_batches(
        SweepWorker,
        fn_constructor_kwargs={
            "sweep": sweep.model_dump(mode="json"),
            "gateway": options.gateway,
            "key": options.key,
            "providers": providers,
            "budget_usd": budget,
            "control": control_name if control is not None else None,
        },
        batch_size=sweep.batch_size,
        batch_format="pandas",
        # Batches overlap on each actor (threads feeding its one event loop), so a batch's
        # slowest call does not idle the others; the client's semaphore bounds calls in flight.
        compute=ray.data.ActorPoolStrategy(
            size=sweep.workers,
            max_tasks_in_flight_per_actor=4,
            max_concurrent_calls_per_actor=4,
            enable_true_multi_threading=True,
        ),
        num_cpus=0.05,
    )
    progress = Progress(len(todo), options.progress)
    precision_scorer = _precision_scorer(sweep) if options.precision else None
    seen = written
    errors = int(written["error"].notna().sum()) if len(written) else 0
    cost = spent
    sequence = len(folder.parts())
    out_of_budget = False
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
            out_of_budget |= bool((batch["skipped"] == "budget").any())
            batch = batch[batch["skipped"].isna()]
            if batch.empty:
                continue
            rows = batch.drop(
                columns=["skipped", "messages", "request_base", "attempts_before", "response"]
                + [c for c in ("cached_response",) if c in batch]
            )
            folder.write_part(to_table(rows.drop(columns=["case_json"]), _schema(rows)), sequence)
            sequence += 1
            if cache is not None:
                _remember(cache, batch, sweep)
            new_errors = int(rows["error"].notna().sum())
            errors += new_errors
            cost += float(rows["cost_usd"].fillna(0).sum())
            progress.advance(len(rows), errors, cost)
            if control is not None and precision_scorer is not None:
                seen = pd.concat([seen, rows], ignore_index=True) if len(seen) else rows
                name, kind = precision_scorer
                assert options.precision is not None
                for model, width in models_to_stop(seen, name, kind, options.precision).items():
                    if model not in manifest["stopped_early"]:
                        manifest["stopped_early"][model] = {"half_width": width, "scorer": name}
                        control.stop.remote(model)
                        folder.write_manifest(manifest)
    finally:
        progress.stop()
        if control is not None:
            ray.kill(control)
    return {"budget": out_of_budget}


def _schema(rows: pd.DataFrame) -> Any:
    scorers = [c[len("score.") :] for c in rows.columns if c.startswith("score.")]
    labels = [c[len("label.") :] for c in rows.columns if c.startswith("label.")]
    reasons = [c[len("reason.") :] for c in rows.columns if c.startswith("reason.")]
    return schema_for(scorers, labels, reasons)


def _precision_scorer(sweep: Sweep) -> tuple[str, str] | None:
    scorers = row_scorers(sweep)
    if sweep.precision_scorer is not None:
        chosen = next(s for s in scorers if s.name == sweep.precision_scorer)
        return chosen.name, chosen.kind
    first = next(iter(scorers), None)
    if first is None:
        raise SweepError("--precision needs a scorer to measure", "scorers")
    return first.name, first.kind


def _remember(cache: ResponseCache, batch: pd.DataFrame, sweep: Sweep) -> None:
    entries = {}
    for row in batch.itertuples(index=False):
        if row.error is None and isinstance(row.response, str) and not row.cached:
            key = cache_key(row.model, json.loads(row.messages), sweep.params, int(row.repeat))
            entries[key] = json.loads(row.response)
    if entries:
        cache.put_many(entries)


def run_file(path: str | Path, options: RunOptions) -> dict[str, Any]:
    """`run_sweep` on a sweep file."""
    from evals.sweep import load_sweep

    return run_sweep(load_sweep(path), options)
