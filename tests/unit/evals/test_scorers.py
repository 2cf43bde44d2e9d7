"""Each scorer on rows whose right score is known; model scorers against a fake gateway."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from evals.scorers import ScoreInput, build, macro_f1
from evals.scorers.model import Judge, PairwiseJudge
from evals.sweep import Rubric, ScorerSpec, parse_sweep


def row(
    output: str, reference: str | None = None, case: dict[str, Any] | None = None
) -> ScoreInput:
    return ScoreInput(case or {}, "question", reference, output, "m", "p")


def scorer(kind: str, **params: Any) -> Any:
    sweep = parse_sweep(
        {
            "name": "t",
            "dataset": {"path": "chat", "reference": "reference"},
            "prompts": [{"name": "p", "template": "{input}"}],
            "models": ["m"],
            "judge": {"model": "judge-model"},
        }
    )
    return build(ScorerSpec(type=kind, **params), sweep)


async def value(kind: str, out: str, ref: str | None = None, **params: Any) -> float:
    return (await scorer(kind, **params).score(row(out, ref), None)).value


async def test_exact_match_normalises_case_punctuation_and_articles() -> None:
    assert await value("exact_match", "  The Pacific Ocean. ", "pacific ocean") == 1.0
    assert await value("exact_match", "Atlantic", "pacific ocean") == 0.0


async def test_contains_regex_and_numeric() -> None:
    assert await value("contains", "It is Ottawa, I think", "ottawa") == 1.0
    assert await value("contains", "Toronto", value="ottawa") == 0.0
    assert await value("regex", "order #1234", pattern=r"#\d{4}\b") == 1.0
    assert await value("regex", "order 12", pattern=r"#\d{4}\b") == 0.0
    assert await value("numeric", "The answer is 1,234.5 euros", "1234.5") == 1.0
    assert await value("numeric", "about 99", "100", tolerance=0.02, relative=True) == 1.0
    assert await value("numeric", "about 97", "100", tolerance=0.02, relative=True) == 0.0
    assert await value("numeric", "no idea", "3") == 0.0


async def test_json_and_json_schema() -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    assert await value("json_valid", '```json\n{"n": 1}\n```') == 1.0
    assert await value("json_valid", "{n: 1}") == 0.0
    assert await value("json_schema", '{"n": 1}', schema=schema) == 1.0
    result = await scorer("json_schema", schema=schema).score(row('{"n": "one"}'), None)
    assert result.value == 0.0 and "not of type 'integer'" in result.reason


async def test_rouge_l_and_token_f1() -> None:
    assert await value("rouge_l", "the cat sat on the mat", "the cat sat on the mat") == 1.0
    partial = await value("rouge_l", "the cat sat", "the cat sat on the mat")
    assert partial == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # P = 1, R = 3/6
    assert await value("token_f1", "cat sat mat", "the cat sat on the mat") == pytest.approx(
        2 * 1.0 * 0.75 / 1.75  # articles dropped: reference is cat sat on mat
    )
    assert await value("token_f1", "dog", "cat") == 0.0


async def test_label_and_macro_f1() -> None:
    label = scorer("label", labels=["billing", "technical"])
    found = await label.score(row("This is a Billing question.", "billing"), None)
    assert (found.value, found.label) == (1.0, "billing")
    results = pd.DataFrame(
        {
            "reference": ["a", "a", "b", "b"],
            "label.l": ["a", "b", "b", "b"],
            "error": [None] * 4,
        }
    )
    # a: P=1, R=1/2 -> F1 2/3; b: P=2/3, R=1 -> F1 4/5.
    assert macro_f1(results, "l") == pytest.approx((2 / 3 + 4 / 5) / 2)


async def test_custom_scorers_by_import_path() -> None:
    module = "tests.unit.evals.custom_scorers"
    assert await value("custom", "one two", function=f"{module}:short") == 1.0
    assert (
        await value("custom", "one two three", function=f"{module}:short", params={"limit": 2})
        == 0.0
    )
    half = await scorer("custom", function=f"{module}:half").score(row("x"), None)
    assert (half.value, half.reason) == (0.5, "always half")
    with pytest.raises(RuntimeError, match="broken"):
        await scorer("custom", function=f"{module}:broken").score(row("x"), None)


class FakeGateway:
    """Answers judges from a script and embeds by a fixed table."""

    def __init__(self, verdicts: list[dict[str, Any]]) -> None:
        self.verdicts = verdicts
        self.asked: list[str] = []

    async def judge(
        self, model: str, system: str, user: str, schema: dict[str, Any], max_tokens: int
    ) -> tuple[dict[str, Any], float]:
        self.asked.append(user)
        return self.verdicts.pop(0), 0.001

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], float]:
        table = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [-1.0, 0.0]}
        return [table[t] for t in texts], 0.0001


async def test_judge_rescales_the_rubric_and_keeps_the_reason() -> None:
    judge = Judge(model="j", rubric=Rubric(name="r", version="7", scale=(1, 5)))
    fake = FakeGateway([{"score": 4, "reason": "good"}, {"score": 9, "reason": "off scale"}])
    first = await judge.score(row("answer", "ref"), fake)
    assert (first.value, first.reason, first.cost_usd) == (0.75, "good", 0.001)
    assert (await judge.score(row("answer"), fake)).value == 1.0
    assert judge.describe()["version"] == "r@7"
    assert "[Reference answer]\nref" in fake.asked[0]


async def test_pairwise_asks_both_orders_and_a_flip_is_a_tie() -> None:
    judge = PairwiseJudge(model="j")
    consistent = FakeGateway([{"winner": "A", "reason": "x"}, {"winner": "B", "reason": "y"}])
    assert (await judge.compare("q", "one", "two", consistent))[0] == "a"
    assert consistent.asked[0].index("one") < consistent.asked[0].index("two")
    assert consistent.asked[1].index("two") < consistent.asked[1].index("one")
    position_biased = FakeGateway([{"winner": "A", "reason": ""}, {"winner": "A", "reason": ""}])
    assert (await judge.compare("q", "one", "two", position_biased))[0] == "tie"


async def test_embedding_similarity_is_cosine_clipped_at_zero() -> None:
    embedding = scorer("embedding", model="e")
    fake = FakeGateway([])
    assert (await embedding.score(row("a", "a"), fake)).value == pytest.approx(1.0)
    assert (await embedding.score(row("a", "b"), fake)).value == pytest.approx(0.6)
    assert (await embedding.score(row("a", "c"), fake)).value == 0.0


async def test_a_reference_scorer_without_a_reference_raises() -> None:
    with pytest.raises(ValueError, match="needs a reference"):
        await value("exact_match", "x", None)
