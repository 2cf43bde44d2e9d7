"""The built-in model table: every row sourced and dated; a config's own price wins."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, ModelConfig, Price, parse_config
from gateway.providers.facts import load_model_facts, parse_model_facts


def test_every_row_has_a_source_a_date_and_makes_a_valid_model() -> None:
    table = load_model_facts()
    for kind in ("openai", "anthropic", "bedrock"):
        rows = table.rows(kind)
        assert rows, kind
        for row in rows:
            assert row.source.startswith("https://") and len(row.as_of) == 10
            assert row.price.input_per_mtok > 0
            model = row.model_config(kind)  # validates capabilities and limits
            assert model.upstream == row.model and model.price == row.price


def test_a_models_explicit_price_wins_over_the_table() -> None:
    table = load_model_facts()
    listed = ModelConfig(name="luna", provider="p", upstream="gpt-6-luna")
    own = ModelConfig(
        name="luna", provider="p", upstream="gpt-6-luna", price={"input_per_mtok": 9.0}
    )
    unknown = ModelConfig(name="x", provider="p", upstream="not-in-the-table")
    assert table.price_for(listed, "openai") == Price(
        input_per_mtok=0.10, output_per_mtok=0.50, cached_input_per_mtok=0.01
    )
    assert table.price_for(own, "openai").input_per_mtok == 9.0
    assert table.price_for(unknown, "openai") == Price()


def test_lookups_follow_azure_to_openai_and_ignore_bedrock_region_prefixes() -> None:
    table = load_model_facts()
    assert table.lookup("azure_openai", "gpt-6-sol") is table.lookup("openai", "gpt-6-sol")
    base = table.lookup("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert base is not None
    assert table.lookup("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0") is base
    arn = "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert table.lookup("bedrock", arn) is base


def test_apply_prices_only_the_models_without_a_price() -> None:
    config = parse_config(
        {
            "providers": [{"name": "oa", "type": "openai"}],
            "models": [
                {"name": "sol", "provider": "oa", "upstream": "gpt-6-sol"},
                {"name": "mine", "provider": "oa", "upstream": "gpt-6-luna", "price": {}},
            ],
        }
    )
    priced = load_model_facts().apply(config)
    sol, mine = priced.models
    assert (sol.price.input_per_mtok, sol.price.output_per_mtok) == (2.0, 10.0)
    assert mine.price == Price()  # explicitly free stays free
    assert sol.price.cost(1_000_000, 0, cached_tokens=500_000) == pytest.approx(1.1)


def test_a_row_without_a_source_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"openai\.m: expected `source`"):
        parse_model_facts({"openai": {"m": {"input": 1, "output": 2}}}, "models.yaml")
