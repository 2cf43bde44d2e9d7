"""The pairwise phase of a sweep: once every row is written, each pairwise judge compares each
pair of models on every (case, prompt, repeat) both answered, and `pairwise.parquet` keeps the
verdicts (a resumed run judges only the pairs not yet judged)."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from evals.client import GatewayClient
from evals.results import PAIRWISE_COLUMNS, RunFolder, to_table
from evals.scorers.model import PairwiseJudge
from evals.sweep import Sweep

if TYPE_CHECKING:
    from evals.runner import RunOptions


def judge_pairs(
    sweep: Sweep,
    options: RunOptions,
    folder: RunFolder,
    rows: pd.DataFrame,
    providers: dict[str, str],
    scorers: list[Any],
) -> float:
    """Run every pairwise judge among `scorers` over `rows`; returns what the verdicts cost."""
    judges = [s for s in scorers if isinstance(s, PairwiseJudge)]
    if not judges or rows.empty:
        return 0.0
    return asyncio.run(_judge_pairs(sweep, options, folder, rows, providers, judges))


async def _judge_pairs(
    sweep: Sweep,
    options: RunOptions,
    folder: RunFolder,
    rows: pd.DataFrame,
    providers: dict[str, str],
    judges: list[PairwiseJudge],
) -> float:
    existing = (
        folder.read_table("pairwise.parquet").to_pandas()
        if folder.exists("pairwise.parquet")
        else pd.DataFrame(columns=list(PAIRWISE_COLUMNS))
    )
    done = set(
        zip(
            *(existing[c] for c in ("scorer", "case_id", "prompt", "repeat", "model_a", "model_b")),
            strict=True,
        )
    )
    ok = rows[rows["error"].isna()]
    outputs = {
        (r.case_id, r.prompt, r.repeat, r.model): (r.input, r.output)
        for r in ok.itertuples(index=False)
    }
    client = GatewayClient(
        options.gateway,
        options.key,
        concurrency=sweep.concurrency,
        requests_per_second=sweep.requests_per_second,
        retries=sweep.retries,
        timeout_s=sweep.timeout_s,
        providers=providers,
    )
    jobs = []
    for judge in judges:
        models = judge.models or sweep.models
        for a, b in itertools.combinations(models, 2):
            for case_id, prompt, repeat, model in outputs:
                if model != a or (case_id, prompt, repeat, b) not in outputs:
                    continue
                if (judge.name, case_id, prompt, repeat, a, b) in done:
                    continue
                question, out_a = outputs[(case_id, prompt, repeat, a)]
                out_b = outputs[(case_id, prompt, repeat, b)][1]
                jobs.append((judge, case_id, prompt, repeat, a, b, question, out_a, out_b))

    async def one(job: tuple[Any, ...]) -> dict[str, Any]:
        judge, case_id, prompt, repeat, a, b, question, out_a, out_b = job
        try:
            winner, reason, cost = await judge.compare(question, out_a, out_b, client)
        except Exception as exc:  # a failed verdict is recorded, never fatal
            winner, reason, cost = None, f"{type(exc).__name__}: {exc}", 0.0
        return {
            "run_id": folder.run_id,
            "scorer": judge.name,
            "case_id": case_id,
            "prompt": prompt,
            "repeat": repeat,
            "model_a": a,
            "model_b": b,
            "winner": winner,
            "reason": reason,
            "cost_usd": cost,
        }

    try:
        verdicts = await asyncio.gather(*(one(job) for job in jobs))
    finally:
        await client.aclose()
    table = pd.concat([existing, pd.DataFrame(verdicts)], ignore_index=True)
    folder.write_table("pairwise.parquet", to_table(table, pa.schema(PAIRWISE_COLUMNS)))
    return float(sum(v["cost_usd"] for v in verdicts))
