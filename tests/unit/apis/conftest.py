"""The gateway in one process with a sim model, an OpenAI-type and an Anthropic-type model (the
latter two against local servers speaking those protocols), for the official `anthropic` and
`openai` SDKs to drive `/v1/messages` and `/v1/responses`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest

from gateway.auth import hash_key
from gateway.config import parse_config
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from gateway.store import Store
from gateway.tenancy.access import Principal
from tests.protocol_servers import AnthropicServer, OpenAIServer

KEY = "sk-llmgw-test-admin-key-0123456789"
TENANT_A = "sk-llmgw-tenant-a-key-0123456789"
TENANT_B = "sk-llmgw-tenant-b-key-0123456789"
BASE = "http://gateway.test"
ALL = ["chat", "streaming", "tools", "vision", "json_mode"]
# Each kind of model the APIs must be faithful on: name -> provider type.
MODELS = {"sim-chat": "sim", "gpt-chat": "openai", "claude-chat": "anthropic"}


@dataclass
class Upstreams:
    openai: OpenAIServer
    anthropic: AnthropicServer

    def reset(self) -> None:
        self.openai.reset()
        self.anthropic.reset()


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    servers = Upstreams(OpenAIServer().start(), AnthropicServer().start())
    saved = {k: os.environ.get(k) for k in ("LLMGW_APIS_OPENAI_KEY", "LLMGW_APIS_ANTHROPIC_KEY")}
    os.environ["LLMGW_APIS_OPENAI_KEY"] = servers.openai.api_key
    os.environ["LLMGW_APIS_ANTHROPIC_KEY"] = servers.anthropic.api_key
    yield servers
    servers.openai.stop()
    servers.anthropic.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def gateway_config(upstreams: Upstreams, store_url: str) -> dict:
    return {
        "providers": [
            {"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": 9}},
            {
                "name": "oai",
                "type": "openai",
                "base_url": f"{upstreams.openai.url}/v1",
                "api_key_env": "LLMGW_APIS_OPENAI_KEY",
            },
            {
                "name": "ant",
                "type": "anthropic",
                "base_url": upstreams.anthropic.url,
                "api_key_env": "LLMGW_APIS_ANTHROPIC_KEY",
            },
        ],
        "models": [
            {
                "name": "sim-chat",
                "provider": "sim",
                "use_cases": ["chat"],
                "capabilities": ALL,
            },
            {
                "name": "sim-cut",
                "provider": "sim",
                "use_cases": ["extraction"],
                "capabilities": ALL,
                "sim": {"output_tokens": 10, "cut_stream_after": 3},
            },
            {
                "name": "gpt-chat",
                "provider": "oai",
                "upstream": "gpt-test",
                "capabilities": ALL,
                "use_cases": ["research"],
            },
            {
                "name": "claude-chat",
                "provider": "ant",
                "upstream": "claude-test",
                "capabilities": ALL,
                "use_cases": ["research"],
            },
            {
                "name": "claude-thinking",
                "provider": "ant",
                "upstream": "claude-thinking-test",
                "capabilities": ALL,
                "use_cases": ["research"],
            },
        ],
        "routing": {"retries": {"max_attempts": 1, "base_delay_s": 0.0}},
        "store": {"url": store_url},
    }


@pytest.fixture
def gateway(upstreams: Upstreams, tmp_path: Path) -> Iterator[LocalGateway]:
    upstreams.reset()
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    store = Store(url)
    store.migrate()
    principals = {
        hash_key(TENANT_A): Principal(key_id="key-a", tenant="acme"),
        hash_key(TENANT_B): Principal(key_id="key-b", tenant="globex"),
    }
    yield local_gateway(
        parse_config(gateway_config(upstreams, url)),
        hash_key(KEY),
        principals=principals,
        store=store,
    )
    store.close()


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
async def http2(gateway: LocalGateway) -> AsyncIterator[httpx2.AsyncClient]:
    """The same app for the `anthropic` SDK, which speaks through `httpx2`."""
    transport = httpx2.ASGITransport(app=create_api(gateway.runtime))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def anthropic_client(http2: httpx2.AsyncClient, key: str = TENANT_A) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=BASE, http_client=http2, max_retries=0)


@pytest.fixture
def claude(http2: httpx2.AsyncClient) -> anthropic.AsyncAnthropic:
    """The official `anthropic` SDK, pointed at the gateway with a tenant's key."""
    return anthropic_client(http2)


def openai_client(http: httpx.AsyncClient, key: str = TENANT_A) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=f"{BASE}/v1", http_client=http, max_retries=0)


@pytest.fixture
def oai(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """The official `openai` SDK, pointed at the gateway with a tenant's key."""
    return openai_client(http)
