"""The built-in model table fills what a model config leaves out, the config still wins, and
each value says where it came from; a declared capability the provider type cannot serve is a
config error naming the field."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config
from gateway.providers.facts import load_model_facts, parse_model_facts
from gateway.registry.snapshot import RegistrySnapshot
from gateway.server.admin import model_view


def applied(*models: dict) -> list:
    config = parse_config(
        {
            "providers": [
                {"name": "oa", "type": "openai"},
                {"name": "br", "type": "bedrock", "region": "us-east-1"},
                {"name": "ol", "type": "ollama"},
            ],
            "models": list(models),
        }
    )
    return load_model_facts().apply(config).models


def test_a_known_model_without_capabilities_gets_the_tables() -> None:
    (mini,) = applied({"name": "mini", "provider": "oa", "upstream": "gpt-4o-mini"})
    assert "tools" in mini.capabilities and "vision" in mini.capabilities
    assert (mini.context_window, mini.max_output_tokens) == (128000, 16384)
    assert mini.price.input_per_mtok == 0.15
    source = mini.facts["capabilities"]
    assert source.startswith("table:https://") and "as of 2025-08-01" in source


def test_the_config_still_wins_and_says_so() -> None:
    (mini,) = applied(
        {
            "name": "mini",
            "provider": "oa",
            "upstream": "gpt-4o-mini",
            "capabilities": ["chat"],
            "context_window": 1000,
        }
    )
    assert mini.capabilities == ["chat"] and mini.context_window == 1000
    assert mini.max_output_tokens == 16384  # what the config left out still comes from the table
    assert mini.facts["capabilities"] == mini.facts["context_window"] == "config"
    assert mini.facts["max_output_tokens"].startswith("table:")


def test_an_unknown_model_keeps_todays_defaults() -> None:
    (mine,) = applied({"name": "mine", "provider": "oa", "upstream": "my-finetune"})
    assert mine.capabilities == ["chat", "streaming"]
    assert (mine.context_window, mine.max_output_tokens) == (8192, 4096)
    assert set(mine.facts.values()) == {"default"}


def test_lookups_ignore_bedrock_prefixes_and_ollama_tags() -> None:
    sonnet, llama = applied(
        {"name": "s", "provider": "br", "upstream": "us.anthropic.claude-sonnet-4-20250514-v1:0"},
        {"name": "l", "provider": "ol", "upstream": "llama3.1:8b"},
    )
    assert sonnet.max_output_tokens == 64000 and "vision" in sonnet.capabilities
    assert llama.context_window == 131072 and "tools" in llama.capabilities
    assert llama.facts["price"] == "default"  # local models carry no price row


def test_a_table_value_is_not_the_configs_so_a_second_apply_can_replace_it() -> None:
    (mini,) = applied({"name": "mini", "provider": "oa", "upstream": "gpt-4o-mini"})
    assert not {"capabilities", "context_window", "price", "facts"} & mini.model_fields_set


def test_models_show_prints_where_each_value_came_from() -> None:
    (mini,) = applied({"name": "mini", "provider": "oa", "upstream": "gpt-4o-mini", "price": {}})
    view = model_view(mini, RegistrySnapshot(1, {}, {"mini": mini}))
    assert view["facts"]["price"] == "config"
    assert view["facts"]["context_window"].startswith("table:https://")


def test_a_capability_the_provider_type_cannot_serve_fails_config_load() -> None:
    with pytest.raises(
        ConfigError,
        match=r"models\[0\]\.capabilities\[1\]: expected a capability "
        r"provider type 'anthropic' serves .*got 'embeddings'",
    ):
        parse_config(
            {
                "providers": [{"name": "a", "type": "anthropic"}],
                "models": [{"name": "m", "provider": "a", "capabilities": ["chat", "embeddings"]}],
            },
            "gw.yaml",
        )


def test_facts_are_the_gateways_not_the_config_files() -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.facts"):
        parse_config(
            {
                "providers": [{"name": "p", "type": "sim"}],
                "models": [{"name": "m", "provider": "p", "facts": {"price": "config"}}],
            }
        )


def test_a_row_with_a_misspelled_capability_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"openai\.m"):
        parse_model_facts(
            {"openai": {"m": {"capabilities": ["chat", "tool"], "source": "s", "as_of": "d"}}}
        )
