"""Azure OpenAI through `openai.AsyncAzureOpenAI`: OpenAI's protocol on a deployment URL.

The model's `upstream` is the deployment name (`/openai/deployments/{upstream}/...`), every
request carries `api-version`, and the credential is the `api-key` header or, with
`azure_ad: true`, an Entra ID token from `azure-identity`. Requests, responses, streams and
errors are OpenAI's, so everything else is the OpenAI adapter's; Azure's `content_filter`
400s become `ContentFilterError` there.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import openai

from gateway.config import ConfigError, ProviderConfig
from gateway.providers.openai import OpenAIProvider
from gateway.providers.transport import pooled_client

# The latest dated GA version of the deployment-based inference API.
DEFAULT_API_VERSION = "2024-10-21"
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


class AzureOpenAIProvider(OpenAIProvider):
    """OpenAI models deployed on an Azure OpenAI resource."""

    type = "azure_openai"
    default_key_env: ClassVar[str] = "AZURE_OPENAI_API_KEY"

    def __init__(self, config: ProviderConfig) -> None:
        self.endpoint = (
            config.endpoint or config.base_url or os.environ.get("AZURE_OPENAI_ENDPOINT")
        )
        if not self.endpoint:
            raise ConfigError(
                f"provider '{config.name}' endpoint: expected https://<resource>.openai.azure.com"
                " in the config or AZURE_OPENAI_ENDPOINT in the environment"
            )
        super().__init__(config)
        if config.azure_ad:
            self._key = "entra-id"  # a token per request, never a missing key

    def _body(self, params: dict[str, Any]) -> dict[str, Any]:
        # The Azure client reads `model` from a dict body to build the deployment's URL.
        return {"body": params}

    def _make_client(self) -> openai.AsyncAzureOpenAI:
        credential: dict[str, object]
        if self.config.azure_ad:
            credential = {"azure_ad_token_provider": self.token_provider()}
        else:
            credential = {"api_key": self._key or "unset"}
        return openai.AsyncAzureOpenAI(
            azure_endpoint=self.endpoint,
            api_version=self.config.api_version
            or os.environ.get("OPENAI_API_VERSION")
            or DEFAULT_API_VERSION,
            max_retries=0,
            http_client=pooled_client(self.config),
            **credential,
        )

    def token_provider(self) -> Callable[[], Awaitable[str]]:
        """Entra ID tokens from the default chain (env, workload or managed identity, CLI)."""
        from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

        self._credential = DefaultAzureCredential()
        return get_bearer_token_provider(self._credential, ENTRA_SCOPE)

    async def aclose(self) -> None:
        await super().aclose()
        credential = getattr(self, "_credential", None)
        if credential is not None:
            await credential.close()
