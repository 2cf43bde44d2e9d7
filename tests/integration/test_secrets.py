"""Secrets: provider credentials, the admin key and a tenant's key never reach anything the
gateway writes or answers.

Distinctive fake secrets are planted in the environment the session's Ray starts with; every
provider type is driven through succeeding calls, streams, its own credential refusals and an
upstream that echoes the credentials back in its error text; then the gateway's home, its
store (usage and audit, bodies kept for an opted-in tenant), Ray's session directory (every
replica's and actor's log), the admin API's answers and every answer a client got are
searched for each secret and for its last 8 characters.

Metrics are read from the node's Prometheus endpoint, where Ray exports every replica's.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.store.store import Store
from tests.integration.conftest import Deployed
from tests.openapi import validate
from tests.protocol_servers import (
    AnthropicServer,
    AzureOpenAIServer,
    BedrockServer,
    Failure,
    OllamaServer,
    OpenAIServer,
    ProtocolServer,
    Reply,
)

pytestmark = pytest.mark.ray

HELLO = [{"role": "user", "content": "Hello"}]
KINDS = ["openai", "anthropic", "azure_openai", "bedrock", "ollama"]

# Tails of letters no hex id, uuid or base64 of Ray's can be mistaken for.
_rng = random.SystemRandom()


def _tail(n: int = 14) -> str:
    return "".join(_rng.choice("GHJKMNPQRSTVWXYZ") for _ in range(n))


# Set at collection, before the session's Ray starts: its workers (the pools) inherit them.
PLANTED = {
    "LLMGW_SECRETS_OPENAI_KEY": f"sk-planted-OPENAI-{_tail()}",
    "LLMGW_SECRETS_OPENAI_WRONG_KEY": f"sk-planted-OPENAI-WRONG-{_tail()}",
    "LLMGW_SECRETS_ANTHROPIC_KEY": f"sk-ant-planted-ANTHROPIC-{_tail()}",
    "LLMGW_SECRETS_ANTHROPIC_WRONG_KEY": f"sk-ant-planted-WRONG-{_tail()}",
    # Azure keys are 32 characters with no recognisable prefix.
    "LLMGW_SECRETS_AZURE_KEY": f"a2{_tail(30)}",
    "LLMGW_SECRETS_AZURE_WRONG_KEY": f"b3{_tail(30)}",
    "LLMGW_SECRETS_ADMIN_KEY": f"sk-llmgw-planted-ADMIN-{_tail()}",
}
for _name, _value in PLANTED.items():
    os.environ.setdefault(_name, _value)
# boto3 reads the standard chain; another module may have planted these first: whatever the
# session's Ray holds is what is searched for.
_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIA" + _tail(16),
    "AWS_SECRET_ACCESS_KEY": "planted/AWS+" + _tail(28),
}
for _name, _value in _AWS.items():
    os.environ.setdefault(_name, _value)


def secrets() -> dict[str, str]:
    names = [*PLANTED, "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"]
    return {name: os.environ[name] for name in names}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ProtocolServer]]:
    env = os.environ
    started: dict[str, ProtocolServer] = {
        "openai": OpenAIServer(env["LLMGW_SECRETS_OPENAI_KEY"]),
        "anthropic": AnthropicServer(env["LLMGW_SECRETS_ANTHROPIC_KEY"]),
        "azure_openai": AzureOpenAIServer(env["LLMGW_SECRETS_AZURE_KEY"]),
        "bedrock": BedrockServer(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
        "ollama": OllamaServer(),
    }
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


def gateway_config(servers: dict[str, ProtocolServer]) -> dict[str, Any]:
    def keyed(kind: str, env: str, **fields: Any) -> dict[str, Any]:
        return {"name": kind, "type": kind.removesuffix("-wrong"), "api_key_env": env, **fields}

    openai_url = f"{servers['openai'].url}/v1"
    azure = {"endpoint": servers["azure_openai"].url, "api_version": "2024-10-21"}
    anthropic_url = servers["anthropic"].url
    providers = [
        keyed("openai", "LLMGW_SECRETS_OPENAI_KEY", base_url=openai_url),
        keyed("anthropic", "LLMGW_SECRETS_ANTHROPIC_KEY", base_url=anthropic_url),
        keyed("azure_openai", "LLMGW_SECRETS_AZURE_KEY", **azure),
        {"name": "bedrock", "type": "bedrock", "region": "us-east-1"}
        | {"endpoint_url": servers["bedrock"].url},
        {"name": "ollama", "type": "ollama", "base_url": servers["ollama"].url},
        # The same servers, with keys they refuse: the providers' own credential errors.
        {**keyed("openai", "LLMGW_SECRETS_OPENAI_WRONG_KEY", base_url=openai_url)}
        | {"name": "openai-wrong"},
        {**keyed("anthropic", "LLMGW_SECRETS_ANTHROPIC_WRONG_KEY", base_url=anthropic_url)}
        | {"name": "anthropic-wrong"},
        {**keyed("azure_openai", "LLMGW_SECRETS_AZURE_WRONG_KEY", **azure)}
        | {"name": "azure_openai-wrong"},
    ]
    upstream = {
        "openai": "gpt-test",
        "anthropic": "claude-test",
        "azure_openai": "gpt-test-deployment",
        "bedrock": "anthropic.claude-test-v1:0",
        "ollama": "llama3.2",
    }
    models = [
        {"name": f"{kind}-chat", "provider": kind, "upstream": upstream[kind]} for kind in KINDS
    ]
    models += [
        {"name": f"{kind}-wrong", "provider": f"{kind}-wrong", "upstream": upstream[kind]}
        for kind in ("openai", "anthropic", "azure_openai")
    ]
    return {
        "providers": providers,
        "models": models,
        "routing": {"retries": {"max_attempts": 1}, "fallback": False},
        "auth": {"admin_key_env": "LLMGW_SECRETS_ADMIN_KEY"},
    }


@pytest.fixture(scope="module")
def gateway(serve_gateway: Callable[..., Deployed], servers: dict[str, ProtocolServer]) -> Deployed:
    return serve_gateway(gateway_config(servers))


def admin(gateway: Deployed, method: str, path: str, **kw: Any) -> httpx.Response:
    key = os.environ["LLMGW_SECRETS_ADMIN_KEY"]
    return httpx.request(
        method, f"{gateway.url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=30, **kw
    )


def echo(kind: str) -> Failure:
    """An upstream error whose text repeats every credential it could have seen."""
    words = " ".join(f"{name}={value} Bearer {value}" for name, value in secrets().items())
    # Bedrock's and Ollama's servers render a failure kind they do not know as a 400 with
    # this message; the others render their 500 with it.
    return Failure("server" if kind in ("openai", "anthropic", "azure_openai") else "echo", words)


def test_no_secret_in_anything_the_gateway_wrote(
    gateway: Deployed, servers: dict[str, ProtocolServer], llmgw_home: Path
) -> None:
    seen: list[tuple[str, str]] = []  # (where, text) of everything a client or admin got

    # A tenant that keeps bodies in the audit trail, and its key, used for every call.
    tenant = admin(gateway, "POST", "/admin/tenants", json={"name": "acme", "keep_bodies": True})
    assert tenant.status_code == 201, tenant.text
    created = admin(gateway, "POST", "/admin/keys", json={"tenant": "acme"})
    assert created.status_code == 201, created.text
    tenant_key = created.json()["key"]
    key_id = created.json()["id"]
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=tenant_key, max_retries=0)

    def record(where: str, response: httpx.Response) -> None:
        seen.append((where, f"{dict(response.headers)}\n{response.text}"))

    for kind in KINDS:
        server = servers[kind]
        server.reset()
        server.script(Reply(text="fine"), Reply(text="streamed fine"))
        raw = client.chat.completions.with_raw_response.create(model=f"{kind}-chat", messages=HELLO)
        record(f"{kind} chat", raw.http_response)
        assert raw.parse().choices[0].message.content == "fine"
        chunks = list(
            client.chat.completions.create(model=f"{kind}-chat", messages=HELLO, stream=True)
        )
        seen.append((f"{kind} stream", "\n".join(c.model_dump_json() for c in chunks)))

        # The provider refuses the gateway's credentials, then repeats them in its error.
        server.script(
            Reply(failure=Failure("auth", "scripted auth refusal")),
            Reply(failure=echo(kind)),
            Reply(text="cut", failure=echo(kind), failure_in_stream=True),
        )
        for stream in (False, False, True):
            with pytest.raises(openai.APIError) as info:
                response = client.chat.completions.create(
                    model=f"{kind}-chat", messages=HELLO, stream=stream
                )
                list(response) if stream else None
            error = info.value
            if isinstance(error, openai.APIStatusError):
                validate(error.response.json(), "ErrorResponse")
                record(f"{kind} failure", error.response)
            else:
                seen.append((f"{kind} stream failure", json.dumps(error.body)))

    for model in ("openai-wrong", "anthropic-wrong", "azure_openai-wrong"):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=model, messages=HELLO)
        # 502 upstream_auth_failed; or 503 once a failed health probe holds its circuit open.
        assert info.value.status_code in (502, 503)
        validate(info.value.response.json(), "ErrorResponse")
        record(f"{model} failure", info.value.response)

    # Every admin answer an operator can read.
    paths = [
        "/admin/status",
        "/admin/models",
        *(f"/admin/models/{kind}-chat" for kind in KINDS),
        "/admin/tenants",
        "/admin/tenants/acme",
        "/admin/keys",
        f"/admin/keys/{key_id}",
        "/admin/usage",
        "/admin/usage?by=provider",
        "/admin/audit",
        "/v1/models",
        "/health/ready",
    ]
    for path in paths:
        response = admin(gateway, "GET", path)
        assert response.status_code == 200, (path, response.text)
        record(path, response)

    # Metrics, where Ray exports them (every replica's, one Prometheus endpoint per node).
    import ray

    node = ray._private.worker._global_node
    try:
        scraped = httpx.get(f"http://127.0.0.1:{node.metrics_export_port}/metrics", timeout=30)
        seen.append(("metrics", scraped.text))
    except httpx.HTTPError as exc:  # no metrics agent on this node: nothing exported to search
        seen.append(("metrics (unreachable)", repr(exc)))

    # What the store keeps: every usage and audit row (after the writer's flush).
    store = Store(gateway.store_url)
    try:
        for _ in range(60):
            usage = store.list_usage(limit=None)
            audit = store.list_audit(limit=100_000)
            kept = [row for row in audit if "request_body" in row.detail]
            if len(usage) >= len(KINDS) * 5 + 3 and kept:
                break
            time.sleep(0.25)
    finally:
        store.close()
    assert len(usage) >= len(KINDS) * 5 + 3, usage
    changes = [row.detail.get("action") for row in audit if row.action == "admin"]
    assert "key.create" in changes, changes  # admin changes were audited
    assert kept  # the tenant's bodies are in the audit trail
    seen.append(("store usage", "\n".join(repr(row) for row in usage)))
    seen.append(("store audit", "\n".join(repr(row) for row in audit)))

    planted = secrets() | {"tenant key": tenant_key}
    needles = {f"{name} (full)": value for name, value in planted.items()}
    # Last 8 characters of the values planted here only: another module's AWS values (ending
    # "CONTRACT") could meet their tail in an innocent log line.
    needles |= {
        f"{name} (last 8)": value[-8:]
        for name, value in planted.items()
        if name not in _AWS or value == _AWS[name]
    }

    found: list[str] = []
    for where, text in seen:
        found += [f"{needle} in {where}" for needle, value in needles.items() if value in text]

    # Every file the gateway or Ray wrote: the gateway's homes (the session's LLMGW_HOME and
    # this deployment's, with its SQLite store) and Ray's session directory (every log).
    session = Path(node.get_session_dir_path())
    roots = [llmgw_home, Path(gateway.store_url.removeprefix("sqlite:///")).parent, session]
    encoded = {needle: value.encode() for needle, value in needles.items()}
    files = 0
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            files += 1
            found += [f"{needle} in {path}" for needle, value in encoded.items() if value in data]
    assert files > 10 and usage and audit
    assert not found, "\n".join(found)
