"""Each provider adapter with its real SDK, wired to a local server speaking its protocol."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.config import ModelConfig, ProviderConfig
from gateway.providers import build_provider
from gateway.providers.base import Provider
from gateway.providers.images import ImageFetcher
from gateway.wire import ChatCompletionChunk, ChatCompletionRequest
from tests.protocol_servers import SERVERS
from tests.protocol_servers.base import ProtocolServer

ALL_CAPABILITIES = ["chat", "streaming", "tools", "vision", "json_mode"]

# A 1x1 PNG: enough for every protocol's image checks.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class Setup:
    """How one provider type is configured against its protocol server."""

    config: Callable[[ProtocolServer], dict[str, Any]]
    chat_model: str
    embed_model: str | None = None
    env: Callable[[ProtocolServer], dict[str, str]] = lambda server: {}


SETUPS: dict[str, Setup] = {
    "openai": Setup(
        config=lambda s: {"base_url": f"{s.url}/v1", "api_key_env": "LLMGW_TEST_OPENAI_KEY"},
        env=lambda s: {"LLMGW_TEST_OPENAI_KEY": s.api_key},
        chat_model="gpt-test",
        embed_model="text-embedding-test",
    ),
    "anthropic": Setup(
        config=lambda s: {"base_url": s.url, "api_key_env": "LLMGW_TEST_ANTHROPIC_KEY"},
        env=lambda s: {"LLMGW_TEST_ANTHROPIC_KEY": s.api_key},
        chat_model="claude-test",
    ),
    "ollama": Setup(
        config=lambda s: {"base_url": s.url},
        chat_model="llama3.2",
        embed_model="nomic-embed-text",
    ),
    "azure_openai": Setup(
        config=lambda s: {
            "endpoint": s.url,
            "api_version": "2024-10-21",
            "api_key_env": "LLMGW_TEST_AZURE_KEY",
        },
        env=lambda s: {"LLMGW_TEST_AZURE_KEY": s.api_key},
        chat_model="gpt-test-deployment",
        embed_model="embedding-deployment",
    ),
    "bedrock": Setup(
        config=lambda s: {"region": s.region, "endpoint_url": s.url},
        env=lambda s: {
            "AWS_ACCESS_KEY_ID": s.access_key,
            "AWS_SECRET_ACCESS_KEY": s.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        chat_model="anthropic.claude-test-v1:0",
        embed_model="amazon.titan-embed-text-v2:0",
    ),
}

KINDS = list(SETUPS)


@dataclass
class Upstream:
    """One provider adapter and the protocol server it talks to, for one test."""

    kind: str
    server: ProtocolServer
    provider: Provider
    model: ModelConfig
    embed_model: ModelConfig | None

    def request(self, *messages: Any, **params: Any) -> ChatCompletionRequest:
        """A request for this upstream's model; strings become user messages."""
        turns = [{"role": "user", "content": m} if isinstance(m, str) else m for m in messages]
        return ChatCompletionRequest(
            model=self.model.name,
            messages=turns or [{"role": "user", "content": "Hello"}],
            **params,
        )

    def with_model(self, **changes: Any) -> ModelConfig:
        return ModelConfig.model_validate({**self.model.model_dump(), **changes})

    async def collect(
        self, request: ChatCompletionRequest, model: ModelConfig | None = None
    ) -> list[ChatCompletionChunk]:
        return [c async for c in self.provider.stream(request, model or self.model)]


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, ProtocolServer]]:
    started = {kind: SERVERS[kind]().start() for kind in KINDS}
    saved = {}
    for kind, server in started.items():
        for name, value in SETUPS[kind].env(server).items():
            saved[name] = os.environ.get(name)
            os.environ[name] = value
    yield started
    for server in started.values():
        server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def make_upstream(kind: str, server: ProtocolServer) -> Upstream:
    server.files["cat.png"] = ("image/png", PNG)
    setup = SETUPS[kind]
    config = ProviderConfig(name=f"test-{kind}", type=kind, **setup.config(server))
    model = ModelConfig(
        name=f"{kind}-chat",
        provider=config.name,
        upstream=setup.chat_model,
        capabilities=ALL_CAPABILITIES,
        max_output_tokens=1024,
    )
    embed = None
    if setup.embed_model:
        embed = ModelConfig(
            name=f"{kind}-embed",
            provider=config.name,
            upstream=setup.embed_model,
            capabilities=["embeddings"],
        )
    provider = build_provider(config)
    if isinstance(getattr(provider, "images", None), ImageFetcher):
        # The protocol servers serve images from loopback, which production refuses.
        provider.images.allow_address = lambda address: True
    return Upstream(kind, server, provider, model, embed)


@pytest.fixture(scope="session")
async def upstreams(servers: dict[str, ProtocolServer]) -> AsyncIterator[dict[str, Upstream]]:
    """One adapter per provider for the whole session, as a replica holds one."""
    built: dict[str, Upstream] = {}
    yield built
    for each in built.values():
        await each.provider.aclose()


def _fresh(
    kind: str, servers: dict[str, ProtocolServer], upstreams: dict[str, Upstream]
) -> Upstream:
    servers[kind].reset()
    if kind not in upstreams:
        upstreams[kind] = make_upstream(kind, servers[kind])
    return upstreams[kind]


@pytest.fixture(params=KINDS)
def upstream(
    request: pytest.FixtureRequest,
    servers: dict[str, ProtocolServer],
    upstreams: dict[str, Upstream],
) -> Upstream:
    """Each provider in turn (shared behaviour), its server's script and record reset."""
    return _fresh(request.param, servers, upstreams)


def upstream_of(kind: str) -> Callable[..., Any]:
    """A fixture for one provider's own tests."""

    @pytest.fixture
    def fixture(servers: dict[str, ProtocolServer], upstreams: dict[str, Upstream]) -> Upstream:
        return _fresh(kind, servers, upstreams)

    return fixture


openai_upstream = upstream_of("openai")
anthropic_upstream = upstream_of("anthropic")
ollama_upstream = upstream_of("ollama")
azure_upstream = upstream_of("azure_openai")
bedrock_upstream = upstream_of("bedrock")


def assistant_turn(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """The assistant message a client rebuilds from a stream, as it sends it back."""
    calls: dict[int, dict[str, Any]] = {}
    thinking: list[dict[str, Any]] = []
    content = ""
    for chunk in chunks:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        thinking += (delta.model_extra or {}).get("thinking_blocks", [])
        for part in delta.tool_calls or []:
            call = calls.setdefault(
                part.index,
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = part.id or call["id"]
            if part.function is not None:
                call["function"]["name"] += part.function.name or ""
                call["function"]["arguments"] += part.function.arguments or ""
    turn: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        turn["tool_calls"] = [calls[i] for i in sorted(calls)]
    if thinking:
        turn["thinking_blocks"] = thinking
    return turn
