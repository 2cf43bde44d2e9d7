"""Discovery: each provider whose credentials are present, with its models, and why not."""

from __future__ import annotations

from gateway.config import parse_config
from gateway.providers.discovery import default_config, discover, with_installed_models
from tests.protocol_servers import OllamaServer

NOTHING = {"OLLAMA_HOST": "127.0.0.1:9"}  # a port where nothing answers


def statuses(found) -> dict[str, tuple[bool, str]]:
    return {s.provider: (s.on, s.why) for s in found.report}


def test_nothing_in_the_environment_turns_nothing_on() -> None:
    found = discover(dict(NOTHING))
    assert found.providers == [] and found.models == []
    report = statuses(found)
    assert set(report) == {"openai", "anthropic", "azure_openai", "bedrock", "ollama"}
    assert not any(on for on, _ in report.values())
    assert report["openai"][1] == "OPENAI_API_KEY is not set"
    assert report["azure_openai"][1] == "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY are not set"
    assert "no Ollama answers at http://127.0.0.1:9" in report["ollama"][1]


def test_keys_turn_providers_on_with_their_models_from_the_price_table() -> None:
    found = discover(
        {
            **NOTHING,
            "OPENAI_API_KEY": "sk-x",
            "ANTHROPIC_API_KEY": "sk-ant-x",
            "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
            "AZURE_OPENAI_API_KEY": "k",
            "AWS_ACCESS_KEY_ID": "AKID",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "eu-west-1",
        }
    )
    report = statuses(found)
    assert [p.name for p in found.providers] == ["openai", "anthropic", "azure_openai", "bedrock"]
    assert all(report[p.name][0] for p in found.providers)
    models = {m.name: m for m in found.models}
    assert models["gpt-6-sol"].provider == "openai"
    assert models["gpt-6-sol"].price.input_per_mtok == 2.0
    # the same model at a second provider is named by its provider
    assert models["azure_openai/gpt-6-sol"].upstream == "gpt-6-sol"
    assert models["claude-sonnet-5-5"].context_window == 1_000_000
    assert models["amazon.titan-embed-text-v2:0"].capabilities == ["embeddings"]
    bedrock = next(p for p in found.providers if p.name == "bedrock")
    assert bedrock.region == "eu-west-1"
    assert found.providers[2].endpoint == "https://res.openai.azure.com"


def test_aws_credentials_without_a_region_leave_bedrock_off_saying_so() -> None:
    found = discover({**NOTHING, "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"})
    on, why = statuses(found)["bedrock"]
    assert not on and "no region" in why and "AWS_REGION" in why


async def test_an_ollama_at_ollama_host_is_added_with_its_installed_models() -> None:
    with OllamaServer() as server:
        found = discover({"OLLAMA_HOST": f"127.0.0.1:{server.port}"})
    on, why = statuses(found)["ollama"]
    assert on and "3 installed models" in why
    assert found.providers[0].base_url == f"http://127.0.0.1:{server.port}"
    names = {m.name for m in found.models}
    assert {"llama3.2", "llava:7b", "nomic-embed-text"} == names


def test_the_default_config_is_the_built_in_one_plus_what_was_found() -> None:
    config, report = default_config({**NOTHING, "ANTHROPIC_API_KEY": "sk-ant-x"})
    assert [p.name for p in config.providers] == ["sim", "anthropic"]
    assert "sim-fast" in {m.name for m in config.models}
    assert "claude-sonnet-5-5" in {m.name for m in config.models}
    assert dict((s.provider, s.on) for s in report)["anthropic"] is True


def test_a_configured_ollama_gets_its_installed_models_registered() -> None:
    with OllamaServer() as server:
        config = parse_config(
            {
                "providers": [
                    {"name": "sim", "type": "sim"},
                    {
                        "name": "local",
                        "type": "ollama",
                        "base_url": f"http://127.0.0.1:{server.port}",
                    },
                ],
                "models": [{"name": "llama", "provider": "local", "upstream": "llama3.2:latest"}],
            }
        )
        config, report = with_installed_models(config, "gw.yaml")
    models = {m.name: m for m in config.models}
    # llama3.2 is configured already (as "llama"); the other two are added with their window
    assert set(models) == {"llama", "llava:7b", "nomic-embed-text"}
    assert models["llava:7b"].provider == "local" and models["llava:7b"].context_window > 0
    assert "embeddings" in models["nomic-embed-text"].capabilities
    why = {s.provider: s.why for s in report}
    assert why["sim"] == "in gw.yaml" and "3 installed models, 2 added" in why["local"]


def test_an_unreachable_configured_ollama_is_reported_not_fatal() -> None:
    config = parse_config(
        {"providers": [{"name": "local", "type": "ollama", "base_url": "http://127.0.0.1:9"}]}
    )
    config, report = with_installed_models(config, "gw.yaml")
    assert config.models == [] and "listing models failed" in report[0].why
