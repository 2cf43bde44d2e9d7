"""Local servers that speak each provider's wire protocol, for adapter and contract tests."""

from __future__ import annotations

from tests.protocol_servers.anthropic_server import AnthropicServer
from tests.protocol_servers.azure_server import AzureOpenAIServer
from tests.protocol_servers.base import Failure, ProtocolServer, Received, Reply, ToolUse
from tests.protocol_servers.bedrock_server import BedrockServer
from tests.protocol_servers.ollama_server import OllamaServer
from tests.protocol_servers.openai_server import OpenAIServer

# provider type -> server class
SERVERS: dict[str, type[ProtocolServer]] = {
    "openai": OpenAIServer,
    "anthropic": AnthropicServer,
    "ollama": OllamaServer,
    "azure_openai": AzureOpenAIServer,
    "bedrock": BedrockServer,
}

__all__ = [
    "SERVERS",
    "AnthropicServer",
    "AzureOpenAIServer",
    "BedrockServer",
    "Failure",
    "OllamaServer",
    "OpenAIServer",
    "ProtocolServer",
    "Received",
    "Reply",
    "ToolUse",
]
