"""Provider adapters, one module per provider type, loaded only when a config names the type."""

from __future__ import annotations

from importlib import import_module

from gateway.config import ProviderConfig
from gateway.providers.base import Provider

# type -> "module:Class"; importing lazily keeps an unused SDK out of every replica.
PROVIDER_CLASSES: dict[str, str] = {
    "sim": "gateway.providers.sim:SimProvider",
    "openai": "gateway.providers.openai:OpenAIProvider",
    "azure_openai": "gateway.providers.azure_openai:AzureOpenAIProvider",
    "anthropic": "gateway.providers.anthropic:AnthropicProvider",
    "bedrock": "gateway.providers.bedrock:BedrockProvider",
    "ollama": "gateway.providers.ollama:OllamaProvider",
}


def provider_class(provider_type: str) -> type[Provider]:
    """The adapter class for a provider type."""
    module, _, name = PROVIDER_CLASSES[provider_type].partition(":")
    return getattr(import_module(module), name)


def build_provider(config: ProviderConfig) -> Provider:
    """An adapter instance (with its pooled client) for one configured provider."""
    return provider_class(config.type)(config)
