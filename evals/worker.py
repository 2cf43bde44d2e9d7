"""The map step of a sweep: a Ray Data actor that calls the gateway for a batch of rows (with
bounded concurrency), scores each answer, and returns the finished rows."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any, TypeVar

import pandas as pd

from evals.client import CallResult, GatewayClient
from evals.scorers import ScoreInput, Scorer, build
from evals.scorers.model import PairwiseJudge
from evals.sweep import Sweep

T = TypeVar("T")
CONTROL_NAMESPACE = "llmgw-evals"


def row_scorers(sweep: Sweep) -> list[Scorer]:
    """The scorers that give each row a `score.<name>` (the pairwise judge works on pairs)."""
    scorers = [build(spec, sweep) for spec in sweep.scorers]
    return [s for s in scorers if not isinstance(s, PairwiseJudge)]


class Budget:
    """The worker's share of the sweep's cost limit: a call starts only if the most it is
    expected to cost (the dearest call seen so far for its model) still fits. A model's first
    call runs alone, so its cost is known before any other is let through."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.spent = 0.0
        self.reserved = 0.0
        self.dearest: dict[str, float] = {}
        self._first: dict[str, asyncio.Lock] = {}
        self.exhausted = False

    async def run(self, model: str, call: Coroutine[Any, Any, CallResult]) -> CallResult | None:
        if self.limit is None:
            return await call
        lock = self._first.setdefault(model, asyncio.Lock())
        if model not in self.dearest:
            async with lock:
                if model not in self.dearest:
                    return await self._spend(model, call, 0.0)
        return await self._spend(model, call, self.dearest[model])

    async def _spend(
        self, model: str, call: Coroutine[Any, Any, CallResult], estimate: float
    ) -> CallResult | None:
        assert self.limit is not None
        if self.exhausted or self.spent + self.reserved + estimate > self.limit:
            self.exhausted = True
            call.close()
            return None
        self.reserved += estimate
        try:
            result = await call
        finally:
            self.reserved -= estimate
        self.spent += result.cost_usd
        self.dearest[model] = max(self.dearest.get(model, 0.0), result.cost_usd)
        return result


class SweepWorker:
    """Ray Data callable class: one event loop in a thread, one HTTP client, many calls."""

    def __init__(
        self,
        sweep: dict[str, Any],
        gateway: str,
        key: str,
        providers: dict[str, str],
        budget_usd: float | None,
        control: str | None,
    ) -> None:
        self.sweep = Sweep.model_validate(sweep)
        self.scorers = row_scorers(self.sweep)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self.client: GatewayClient = self._run(self._client(gateway, key, providers))
        self.budget = Budget(budget_usd)
        self._control = control

    async def _client(self, gateway: str, key: str, providers: dict[str, str]) -> GatewayClient:
        s = self.sweep
        return GatewayClient(
            gateway,
            key,
            concurrency=s.concurrency,
            requests_per_second=s.requests_per_second,
            retries=s.retries,
            timeout_s=s.timeout_s,
            providers=providers,
        )

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stopped(self) -> set[str]:
        if self._control is None:
            return set()
        import ray

        actor = ray.get_actor(self._control, namespace=CONTROL_NAMESPACE)
        return set(ray.get(actor.stopped.remote()))

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        stopped = self._stopped()
        rows = batch.to_dict(orient="records")
        done = self._run(self._batch(rows, stopped))
        return pd.DataFrame(done)

    async def _batch(self, rows: list[dict[str, Any]], stopped: set[str]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self._row(row, stopped) for row in rows)))

    async def _row(self, row: dict[str, Any], stopped: set[str]) -> dict[str, Any]:
        row = dict(row)
        row["skipped"] = None
        if row["model"] in stopped:
            row["skipped"] = "precision"
            return row
        cached = row.pop("cached_response", None)
        if cached:
            result = CallResult(**json.loads(cached))
            result.cost_usd = 0.0
            row["cached"] = True
        else:
            messages = json.loads(row["messages"])
            call = self.client.chat(
                row["model"],
                messages,
                self.sweep.params,
                row["request_base"],
                first_attempt=int(row.get("attempts_before") or 0),
            )
            outcome = await self.budget.run(row["model"], call)
            if outcome is None:
                row["skipped"] = "budget"
                return row
            result = outcome
            row["cached"] = False
        row.update(
            served_model=result.served_model,
            output=result.output,
            error=result.error,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            ttft_ms=None,
            request_id=result.request_id,
            attempts=result.attempts,
            response=json.dumps(asdict(result)) if result.error is None else None,
        )
        await self._score(row)
        return row

    async def _score(self, row: dict[str, Any]) -> None:
        row["score_cost_usd"] = 0.0
        if row["error"] is not None:
            for scorer in self.scorers:
                row[f"score.{scorer.name}"] = None
                row[f"score_error.{scorer.name}"] = None
            return
        seen = ScoreInput(
            case=json.loads(row["case_json"]),
            input=row["input"],
            reference=row["reference"],
            output=row["output"] or "",
            model=row["model"],
            prompt=row["prompt"],
        )
        for scorer in self.scorers:
            value = error = label = reason = None
            try:
                score = await scorer.score(seen, self.client)
                value = min(1.0, max(0.0, float(score.value)))
                label, reason = score.label, score.reason
                row["score_cost_usd"] += score.cost_usd
            except Exception as exc:  # one row's scorer failure never stops the sweep
                error = f"{type(exc).__name__}: {exc}"[:500]
            row[f"score.{scorer.name}"] = value
            row[f"score_error.{scorer.name}"] = error
            if scorer.kind == "label":
                row[f"label.{scorer.name}"] = label
            if scorer.type == "judge":
                row[f"reason.{scorer.name}"] = reason
