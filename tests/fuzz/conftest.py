"""The in-process gateway the fuzz suites drive: the default pipeline over `sim` models."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.auth import hash_key
from gateway.config import parse_config
from gateway.server.api import create_api as create_api
from gateway.server.local import local_gateway
from gateway.store import Store

KEY = "sk-llmgw-fuzz-admin-key-0123456789abcdef"
AUTH = {"authorization": f"Bearer {KEY}"}
MODELS = ["sim-fast", "sim-smart", "sim-embed", "auto", "fast", "nope"]

CONFIG: dict[str, Any] = {
    "providers": [{"name": "sim", "type": "sim", "sim": {"seed": 1, "output_tokens": 6}}],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "aliases": ["fast"],
            "use_cases": ["chat", "summarization", "classification", "extraction"],
            "capabilities": ["chat", "streaming", "tools", "json_mode"],
            "context_window": 8192,
            "max_output_tokens": 2048,
        },
        {
            "name": "sim-smart",
            "provider": "sim",
            "use_cases": ["chat", "research"],
            "capabilities": ["chat", "streaming", "tools", "json_mode", "vision"],
            "context_window": 128000,
            "max_output_tokens": 8192,
            "fallbacks": ["sim-fast"],
        },
        {
            "name": "sim-embed",
            "provider": "sim",
            "use_cases": ["chat"],
            "capabilities": ["embeddings"],
        },
    ],
    "routing": {"retries": {"max_attempts": 1}},
    # /openapi.json stays reachable in-process for Schemathesis.
    "server": {"docs": True, "max_body_bytes": 256 * 1024},
}


def fuzz_app() -> Any:
    """A fresh in-process gateway over a store in its own file (usage and audit included)."""
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='llmgw-fuzz-')) / 'llmgw.db'}"
    store = Store(url)
    store.migrate()
    config = parse_config({**CONFIG, "store": {"url": url}})
    return create_api(local_gateway(config, hash_key(KEY), store=store).runtime)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(fuzz_app(), raise_server_exceptions=True) as test_client:
        yield test_client
