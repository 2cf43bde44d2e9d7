"""Provider health (issue 13): every provider type answers a cheap probe through its real SDK,
one GET that spends no tokens, and a probe of a dead or refusing upstream raises our error."""

from __future__ import annotations

import pytest

from gateway.config import ProviderConfig
from gateway.errors import ServiceUnavailableError, UpstreamError
from gateway.providers import build_provider
from gateway.providers.bedrock import BedrockProvider
from tests.unit.providers.conftest import Upstream

# What each probe asks for: a model list (Bedrock's from its control plane).
PROBE_PATHS = {
    "openai": "/v1/models",
    "azure_openai": "/openai/models",
    "anthropic": "/v1/models",
    "ollama": "/api/tags",
    "bedrock": "/foundation-models",
}


async def test_each_provider_type_has_a_probe_that_asks_one_cheap_get(upstream: Upstream) -> None:
    assert await upstream.provider.probe() is True
    (received,) = upstream.server.received
    assert received.method == "GET" and received.path == PROBE_PATHS[upstream.kind]


async def test_bedrocks_probe_is_signed_and_lists_text_models(bedrock_upstream: Upstream) -> None:
    assert await bedrock_upstream.provider.probe() is True
    received = bedrock_upstream.server.last
    assert received.query == {"byOutputModality": "TEXT"}
    assert "/us-east-1/bedrock/aws4_request" in received.headers["authorization"]


async def test_bedrocks_probe_fails_on_credentials_the_upstream_refuses(
    bedrock_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    provider = BedrockProvider(bedrock_upstream.provider.config)
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.probe()
    finally:
        await provider.aclose()
    assert caught.value.code == "upstream_auth_failed"


async def test_bedrocks_probe_passes_when_only_listing_is_denied(
    bedrock_upstream: Upstream,
) -> None:
    """Credentials good, the endpoint up, ListFoundationModels not granted: still healthy."""
    bedrock_upstream.server.deny_listing = True
    try:
        assert await bedrock_upstream.provider.probe() is True
    finally:
        bedrock_upstream.server.deny_listing = False


async def test_a_probe_of_an_unreachable_upstream_is_a_503(upstream: Upstream) -> None:
    port = upstream.server.port
    config = upstream.provider.config
    moved = {
        k: (v.replace(f":{port}", ":9") if isinstance(v, str) else v)
        for k, v in config.model_dump().items()
    }
    provider = build_provider(type(config).model_validate(moved))
    try:
        with pytest.raises(ServiceUnavailableError):
            await provider.probe()
    finally:
        await provider.aclose()


async def test_the_sim_has_nothing_to_probe() -> None:
    assert await build_provider(ProviderConfig(name="sim", type="sim")).probe() is False
