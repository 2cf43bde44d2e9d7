"""`GET /admin/usage` and `GET /admin/audit` over a store: filters, grouping, and who may see
what (admin: everything; `usage:read`: its own tenant's usage only; no audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import Request

from gateway.auth import Principal, hash_key
from gateway.config import parse_config
from gateway.pipeline.context import Endpoint, RequestContext
from gateway.server.admin_usage import add_usage_routes
from gateway.server.api import _context, create_api, error_response
from gateway.server.local import LocalGateway, local_gateway
from gateway.store import AuditEvent, Store, UsageRecord

ADMIN_KEY = "sk-llmgw-test-admin-key-0123456789"
READER_KEY = "sk-llmgw-acme-usage-reader-0123456789"
CALLER_KEY = "sk-llmgw-acme-inference-only-0123456789"
BASE = "http://gateway.test"
DAY1 = datetime(2026, 12, 1, 10, tzinfo=UTC)
DAY2 = datetime(2026, 12, 2, 10, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'llmgw.db'}")
    store.migrate()

    def record(
        rid: str, tenant: str, key: str, model: str, at: datetime, **kw: object
    ) -> UsageRecord:
        return UsageRecord(
            request_id=rid, tenant=tenant, key_id=key, model=model, provider="sim", at=at, **kw
        )

    store.write_usage(
        [
            record(
                "1",
                "acme",
                "key_r",
                "fast",
                DAY1,
                prompt_tokens=10,
                completion_tokens=2,
                cost_usd=0.5,
            ),
            record("2", "acme", "key_c", "smart", DAY2, prompt_tokens=5, cost_usd=1.0),
            record("3", "globex", "key_g", "fast", DAY2, prompt_tokens=7, cost_usd=2.0),
        ]
    )
    store.write_audit(
        [
            AuditEvent(request_id="1", tenant="acme", action="chat", at=DAY1),
            AuditEvent(request_id="3", tenant="globex", action="chat", at=DAY2),
        ]
    )
    return store


@pytest.fixture
def gateway(store: Store) -> LocalGateway:
    config = parse_config({"store": {"url": store.url.render_as_string(hide_password=False)}})
    principals = {
        hash_key(READER_KEY): Principal(
            key_id="key_r", tenant="acme", scopes=frozenset({"usage:read", "inference"})
        ),
        hash_key(CALLER_KEY): Principal(
            key_id="key_c", tenant="acme", scopes=frozenset({"inference"})
        ),
    }
    return local_gateway(config, hash_key(ADMIN_KEY), principals=principals)


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    runtime = gateway.runtime
    api = create_api(runtime)
    if not any(getattr(r, "path", None) == "/admin/usage" for r in api.routes):

        async def gate(request: Request, endpoint: Endpoint) -> RequestContext:
            ctx = _context(request, endpoint)
            await runtime.pipeline.run(ctx)
            return ctx

        add_usage_routes(api, runtime, gate, error_response)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def get(
    http: httpx.AsyncClient, path: str, as_key: str = ADMIN_KEY, **params: object
) -> httpx.Response:
    return await http.get(path, params=params, headers={"authorization": f"Bearer {as_key}"})


async def test_admin_sees_every_tenant_grouped_and_filtered(http: httpx.AsyncClient) -> None:
    response = await get(http, "/admin/usage")
    assert response.status_code == 200
    rows = response.json()["data"]
    assert [(r["tenant"], r["model"], r["requests"]) for r in rows] == [
        ("acme", "fast", 1),
        ("acme", "smart", 1),
        ("globex", "fast", 1),
    ]
    assert rows[0] | {"avg_latency_ms": None} == {
        "tenant": "acme",
        "model": "fast",
        "requests": 1,
        "errors": 0,
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "cached_tokens": 0,
        "total_tokens": 12,
        "cost_usd": 0.5,
        "avg_latency_ms": None,
    }
    by_day = (await get(http, "/admin/usage", by="day")).json()["data"]
    assert [(r["day"], r["requests"]) for r in by_day] == [("2026-12-01", 1), ("2026-12-02", 2)]
    by_key = (await get(http, "/admin/usage", by="tenant,key", tenant="acme")).json()["data"]
    assert [(r["tenant"], r["key_id"]) for r in by_key] == [("acme", "key_c"), ("acme", "key_r")]
    since = (await get(http, "/admin/usage", by="provider", since="2026-12-02")).json()["data"]
    assert [(r["provider"], r["requests"], r["cost_usd"]) for r in since] == [("sim", 2, 3.0)]
    until = (await get(http, "/admin/usage", by="model", until="2026-12-02T00:00Z")).json()
    assert [r["model"] for r in until["data"]] == ["fast"]
    assert until["filters"]["until"] == "2026-12-02T00:00:00+00:00"
    only = (await get(http, "/admin/usage", key="key_g", model="fast")).json()["data"]
    assert [r["tenant"] for r in only] == ["globex"]


async def test_bad_filters_are_400_naming_the_parameter(http: httpx.AsyncClient) -> None:
    for params, param in (
        ({"by": "colour"}, "by"),
        ({"since": "yesterday"}, "since"),
        ({"format": "xml"}, "format"),
    ):
        response = await get(http, "/admin/usage", **params)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param


async def test_a_usage_reader_sees_only_its_own_tenant(http: httpx.AsyncClient) -> None:
    mine = await get(http, "/admin/usage", READER_KEY)
    assert mine.status_code == 200
    assert {r["tenant"] for r in mine.json()["data"]} == {"acme"}
    also_mine = await get(http, "/admin/usage", READER_KEY, tenant="acme", by="key")
    assert [r["key_id"] for r in also_mine.json()["data"]] == ["key_c", "key_r"]
    theirs = await get(http, "/admin/usage", READER_KEY, tenant="globex")
    assert theirs.status_code == 403
    assert (await get(http, "/admin/audit", READER_KEY)).status_code == 403
    # A key without usage:read reads nothing.
    assert (await get(http, "/admin/usage", CALLER_KEY)).status_code == 403
    assert (await get(http, "/admin/usage", "sk-llmgw-nobody")).status_code == 401


async def test_the_audit_trail_for_admins(http: httpx.AsyncClient) -> None:
    everything = (await get(http, "/admin/audit")).json()["data"]
    # The newest first; the reads above are audited too, after the fixture's events.
    assert [e["request_id"] for e in everything if e["action"] == "chat"] == ["3", "1"]
    acme = (await get(http, "/admin/audit", tenant="acme", limit=5)).json()["data"]
    assert [e["request_id"] for e in acme] == ["1"]
    assert acme[0]["at"] == "2026-12-01T10:00:00+00:00"
    later = (await get(http, "/admin/audit", since="2026-12-02")).json()["data"]
    assert [e["request_id"] for e in later] == ["3"]
    assert (await get(http, "/admin/audit", limit=0)).status_code == 400
