"""The Azure OpenAI adapter: deployment URLs, api-version, api-key or Entra ID tokens."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, ProviderConfig
from gateway.errors import ContentFilterError
from gateway.providers.azure_openai import AzureOpenAIProvider
from tests.protocol_servers import Failure, Reply
from tests.unit.providers.conftest import Upstream


async def test_requests_go_to_the_deployment_with_api_version_and_api_key(
    azure_upstream: Upstream,
) -> None:
    await azure_upstream.provider.complete(azure_upstream.request("Hi"), azure_upstream.model)
    received = azure_upstream.server.last
    assert received.path == "/openai/deployments/gpt-test-deployment/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == "azure-test-key"
    assert "authorization" not in received.headers


async def test_entra_id_tokens_replace_the_key(
    azure_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def token() -> str:
        return "entra-test-token"

    monkeypatch.setattr(AzureOpenAIProvider, "token_provider", lambda self: token)
    config = azure_upstream.provider.config.model_copy(
        update={"azure_ad": True, "api_key_env": None}
    )
    provider = AzureOpenAIProvider(config)
    try:
        response = await provider.complete(azure_upstream.request("Hi"), azure_upstream.model)
    finally:
        await provider.aclose()
    assert response.choices[0].message.content
    headers = azure_upstream.server.last.headers
    assert headers["authorization"] == "Bearer entra-test-token"
    assert "api-key" not in headers


async def test_content_filter_400_is_a_content_filter_error(azure_upstream: Upstream) -> None:
    azure_upstream.server.script(Reply(failure=Failure("content_filter")))
    with pytest.raises(ContentFilterError) as caught:
        await azure_upstream.provider.complete(azure_upstream.request("Hi"), azure_upstream.model)
    assert caught.value.status_code == 400 and caught.value.code == "content_filter"
    assert "content management policy" in caught.value.upstream_detail


async def test_a_filtered_answer_finishes_with_content_filter(azure_upstream: Upstream) -> None:
    azure_upstream.server.script(Reply(text="", finish="content_filter"))
    chunks = await azure_upstream.collect(azure_upstream.request("Hi"))
    assert chunks[-2].choices[0].finish_reason == "content_filter"


async def test_the_endpoint_comes_from_the_environment_or_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="endpoint"):
        AzureOpenAIProvider(ProviderConfig(name="az", type="azure_openai"))
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    provider = AzureOpenAIProvider(ProviderConfig(name="az", type="azure_openai"))
    assert provider.endpoint == "https://example.openai.azure.com"
    await provider.aclose()


async def test_embeddings_go_to_the_embedding_deployment(azure_upstream: Upstream) -> None:
    from gateway.wire import EmbeddingRequest

    model = azure_upstream.embed_model
    await azure_upstream.provider.embed(EmbeddingRequest(model=model.name, input="hi"), model)
    assert azure_upstream.server.last.path == "/openai/deployments/embedding-deployment/embeddings"
