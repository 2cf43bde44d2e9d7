"""The config file: what loads, and errors that name the file, the field and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config


def test_builtin_default_serves_sim_models() -> None:
    config = load_config()
    assert {p.type for p in config.providers} == {"sim"}
    assert {"sim-fast", "sim-smart"} <= {m.name for m in config.models}
    assert config.routing.strategy == "hybrid"


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("providers: [{name: a, type: nope}]", "providers[0].type: expected 'sim', 'openai'"),
        ("providers: [{name: a, type: sim, colour: red}]", "providers[0].colour: unknown field"),
        ("models: [{provider: a}]", "models[0].name: required field is missing"),
        (
            "providers: [{name: a, type: sim}]\nmodels: [{name: m, provider: b}]",
            "models[0].provider: expected one of the providers' names ['a'], got 'b'",
        ),
        (
            "providers: [{name: a, type: sim}]\n"
            "models: [{name: m, provider: a, price: {input_per_mtok: -1}}]",
            "models[0].price.input_per_mtok: expected greater than or equal to 0",
        ),
        (
            "providers: [{name: a, type: sim}]\n"
            "models: [{name: m, provider: a}, {name: n, provider: a, aliases: [m]}]",
            "models[1].aliases[0]: expected a name no other model or alias has",
        ),
        (
            "providers: [{name: a, type: sim}]\nmodels: [{name: m, provider: a, fallbacks: [x]}]",
            "models[0].fallbacks[0]: expected another model's name, got 'x'",
        ),
        (
            "providers: [{name: a, type: openai, api_key_env: sk-live-123}]",
            "providers[0].api_key_env: expected the name of an environment variable",
        ),
        ("routing: {strategy: fastest}", "routing.strategy: expected 'capability'"),
        ("deployments: {Ingres: {num_replicas: 2}}", "deployments.Ingres: expected one of Ingress"),
        ("deployments: {Ingress: {num_replicas: 0}}", "deployments.Ingress.num_replicas: expected"),
        ("actors: {resources: {ingress_node: -1}}", "actors.resources.ingress_node: expected"),
        ("- just\n- a list", "expected a mapping at the top level"),
        ("providers: [", "not valid YAML"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, text)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert "absent.yaml: cannot read the config file" in str(info.value)


def test_price_cost_counts_cached_tokens_at_their_rate() -> None:
    config = parse_config(
        {
            "providers": [{"name": "a", "type": "sim"}],
            "models": [
                {
                    "name": "m",
                    "provider": "a",
                    "price": {
                        "input_per_mtok": 2.0,
                        "output_per_mtok": 8.0,
                        "cached_input_per_mtok": 0.5,
                    },
                }
            ],
        }
    )
    price = config.models[0].price
    assert price.cost(1_000_000, 0) == pytest.approx(2.0)
    assert price.cost(1_000_000, 1_000_000, cached_tokens=500_000) == pytest.approx(
        1.0 + 0.25 + 8.0
    )
