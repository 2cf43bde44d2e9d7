"""Meter and Audit: a full usage record for every model call, and an audit trail that keeps
bodies only for tenants that opted in, never a secret."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from gateway.auth import Principal, hash_key
from gateway.config import parse_config
from gateway.pipeline.context import RequestContext
from gateway.pipeline.steps.metering import Audit
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from gateway.usage.redact import REDACTED, body_for_audit, redact

ADMIN_KEY = "sk-llmgw-test-admin-key-0123456789"
PLAIN_KEY = "sk-llmgw-plain-tenant-key-0123456789"
KEEPER_KEY = "sk-llmgw-keeper-tenant-key-0123456789"
BASE = "http://gateway.test"

CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"seed": 3, "output_tokens": 12}},
        {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0, "failure_statuses": [503]}},
    ],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "use_cases": ["chat", "summarization"],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "name": "broken",
            "provider": "flaky",
            "use_cases": ["extraction"],
            "fallbacks": ["sim-fast"],
        },
    ],
    "routing": {"retries": {"max_attempts": 2, "base_delay_s": 0.0}},
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def gateway() -> LocalGateway:
    principals = {
        hash_key(PLAIN_KEY): Principal(key_id="key_plain", tenant="plain"),
        hash_key(KEEPER_KEY): Principal(key_id="key_keeper", tenant="keeper", keep_bodies=True),
    }
    return local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=principals)


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def chat(http: httpx.AsyncClient, key: str, body: dict, **headers: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **headers}
    return await http.post("/v1/chat/completions", json=body, headers=headers)


async def test_a_fallback_call_is_metered_with_every_field(
    http: httpx.AsyncClient, gateway: LocalGateway
) -> None:
    response = await chat(
        http,
        PLAIN_KEY,
        {"model": "broken", "messages": HELLO},
        **{"x-request-id": "client-id-1"},
    )
    assert response.status_code == 200
    (usage,) = gateway.recorder.usages
    assert usage.request_id == "client-id-1" == response.headers["x-request-id"]
    assert (usage.tenant, usage.key_id, usage.model, usage.provider) == (
        "plain",
        "key_plain",
        "sim-fast",
        "sim",
    )
    # A named model's chain is its own strategy: "named".
    assert (usage.endpoint, usage.strategy, usage.status) == ("chat", "named", 200)
    assert (usage.attempts, usage.fallbacks) == (3, 1)  # broken twice, then sim-fast
    body = response.json()
    assert usage.prompt_tokens == body["usage"]["prompt_tokens"] > 0
    assert usage.completion_tokens == body["usage"]["completion_tokens"] > 0
    assert usage.cost_usd == pytest.approx(
        (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    )
    assert usage.latency_ms > 0 and usage.provider_ms is not None and usage.overhead_ms is not None
    assert usage.provider_ms + usage.overhead_ms == pytest.approx(usage.latency_ms, abs=1.0)
    assert usage.at.tzinfo is not None


async def test_a_use_case_call_records_its_use_case(
    http: httpx.AsyncClient, gateway: LocalGateway
) -> None:
    body = {"model": "auto", "messages": HELLO, "use_case": "summarization"}
    assert (await chat(http, PLAIN_KEY, body)).status_code == 200
    (usage,) = gateway.recorder.usages
    assert (usage.use_case, usage.model) == ("summarization", "sim-fast")
    assert usage.strategy  # the strategy the decision used


async def test_refused_calls_are_metered_and_audited_too(
    http: httpx.AsyncClient, gateway: LocalGateway
) -> None:
    assert (
        await chat(http, "sk-llmgw-wrong", {"model": "x", "messages": HELLO})
    ).status_code == 401
    missing = await chat(http, PLAIN_KEY, {"model": "nope", "messages": HELLO})
    assert missing.status_code == 404
    unknown, refused = gateway.recorder.usages
    assert (unknown.status, unknown.tenant, unknown.error_code) == (401, None, "invalid_api_key")
    assert (refused.status, refused.tenant, refused.model) == (404, "plain", None)
    assert [a.status for a in gateway.recorder.audits] == [401, 404]


async def test_bodies_are_audited_only_for_tenants_that_opted_in_and_redacted(
    http: httpx.AsyncClient, gateway: LocalGateway
) -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    body = {
        "model": "sim-fast",
        "messages": [{"role": "user", "content": f"my key is {secret}, keep it safe"}],
        "metadata": {"api_key": "hunter2", "team": "search"},
    }
    assert (await chat(http, PLAIN_KEY, body)).status_code == 200
    assert (await chat(http, KEEPER_KEY, body)).status_code == 200
    plain, keeper = gateway.recorder.audits
    assert "request_body" not in plain.detail and "response_body" not in plain.detail
    kept = keeper.detail["request_body"]
    assert kept["messages"][0]["content"] == f"my key is {REDACTED}, keep it safe"
    assert kept["metadata"] == {"api_key": REDACTED, "team": "search"}
    assert keeper.detail["response_body"]["object"] == "chat.completion"
    trail = orjson.dumps([a.detail for a in gateway.recorder.audits]).decode()
    for material in (secret, "hunter2", KEEPER_KEY, PLAIN_KEY, hash_key(KEEPER_KEY)):
        assert material not in trail


async def test_an_admin_actions_before_and_after_are_audited_without_secrets(
    gateway: LocalGateway,
) -> None:
    ctx = RequestContext(endpoint="admin", path="/admin/keys", headers={})
    ctx.principal = Principal(key_id="admin", tenant="admin")
    ctx.status = 201
    ctx.audit_detail = {
        "before": None,
        "after": {"id": "key_1", "tenant": "acme", "key": "sk-llmgw-abcdefghijklmnop0123"},
    }
    await Audit(gateway.runtime.services).finish(ctx)
    (event,) = gateway.recorder.audits
    assert (event.action, event.path, event.status, event.key_id) == (
        "admin",
        "/admin/keys",
        201,
        "admin",
    )
    assert event.detail["before"] is None
    assert event.detail["after"] == {"id": "key_1", "tenant": "acme", "key": REDACTED}


BEARER = "abcdefgh12345678"


def test_redaction_masks_credentials_anywhere() -> None:
    value = {
        "Authorization": "Bearer abc.def.ghi",
        "nested": [
            {"password": "p", "note": "use Bearer abcdefgh12345678 or AKIAABCDEFGHIJKLMNOP"}
        ],
        "max_tokens": 10,
        "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    }
    assert redact(value) == {
        "Authorization": REDACTED,
        "nested": [{"password": REDACTED, "note": f"use {REDACTED} or {REDACTED}"}],
        "max_tokens": 10,
        "pem": REDACTED,
    }
    huge = orjson.dumps({"messages": [{"content": "x" * 100_000}]})
    kept = body_for_audit(huge)
    assert kept["truncated"] is True and len(kept["head"]) == 64_000
    assert body_for_audit(b"not json sk-llmgw-abcdefghijklmnopqrstu") == f"not json {REDACTED}"


async def test_the_upstreams_own_words_reach_the_audit_trail_not_the_client(
    gateway: LocalGateway,
) -> None:
    from gateway.errors import UpstreamError

    ctx = RequestContext(endpoint="chat", path="/v1/chat/completions", headers={})
    ctx.principal = Principal(key_id="key_plain", tenant="plain")
    error = UpstreamError("upstream provider 'openai' answered 500 (server_error)")
    error.upstream_detail = "internal failure on shard 7"
    ctx.error, ctx.status = error, 502
    await Audit(gateway.runtime.services).finish(ctx)
    (event,) = gateway.recorder.audits
    assert event.detail["upstream_detail"] == "internal failure on shard 7"
    assert "shard 7" not in error.json().decode()
