"""Tenants and keys through the HTTP API in one process, driven as admins and clients do:
the admin creates tenants and keys over `/admin`, clients call with the `openai` SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from gateway.auth import hash_key
from gateway.config import parse_config
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from tests.openapi import validate

ADMIN_KEY = "sk-llmgw-test-admin-key-0123456789abcdef"
BASE = "http://gateway.test"
HELLO = [{"role": "user", "content": "Say hello"}]

CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"output_tokens": 8}},
        {"name": "other", "type": "sim"},
    ],
    "models": [
        {"name": "sim-fast", "provider": "sim", "use_cases": ["chat", "summarization"]},
        {"name": "sim-smart", "provider": "sim", "use_cases": ["chat", "research"]},
        {"name": "elsewhere", "provider": "other", "use_cases": ["chat"]},
    ],
}


@pytest.fixture
def gateway() -> LocalGateway:
    return local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY))


@pytest.fixture
async def http(gateway: LocalGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}


async def make_tenant(http: httpx.AsyncClient, name: str, **spec: object) -> dict:
    response = await http.post(
        "/admin/tenants", json={"name": name, **spec}, headers=admin_headers()
    )
    assert response.status_code == 201, response.text
    return response.json()["tenant"]


async def make_key(http: httpx.AsyncClient, tenant: str, **body: object) -> dict:
    response = await http.post(
        "/admin/keys", json={"tenant": tenant, **body}, headers=admin_headers()
    )
    assert response.status_code == 201, response.text
    return response.json()


def sdk(http: httpx.AsyncClient, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=f"{BASE}/v1", http_client=http, max_retries=0)


async def test_a_tenant_key_calls_models_it_may_use_and_sees_only_those(
    http: httpx.AsyncClient,
) -> None:
    await make_tenant(http, "acme", allowed_models=["sim-fast", "sim-smart"])
    key = await make_key(http, "acme")
    assert key["key"].startswith("sk-llmgw-") and key["prefix"] == key["key"][: len(key["prefix"])]
    client = sdk(http, key["key"])

    reply = await client.chat.completions.create(model="sim-fast", messages=HELLO)
    assert reply.choices[0].message.content
    listed = sorted(m.id for m in (await client.models.list()).data)
    assert listed == ["sim-fast", "sim-smart"]

    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="elsewhere", messages=HELLO)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("elsewhere")


async def test_a_tenant_limited_to_a_provider_and_use_cases(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "narrow", allowed_providers=["other"], allowed_use_cases=["chat"])
    client = sdk(http, (await make_key(http, "narrow"))["key"])
    assert [m.id for m in (await client.models.list()).data] == ["elsewhere"]
    reply = await client.chat.completions.create(model="auto", messages=HELLO)
    assert reply.model == "elsewhere"
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.chat.completions.create(
            model="auto", messages=HELLO, extra_body={"use_case": "summarization"}
        )
    validate({"error": info.value.body}, "ErrorResponse")


async def test_an_inference_key_gets_403_on_every_admin_route(
    gateway: LocalGateway, http: httpx.AsyncClient
) -> None:
    await make_tenant(http, "acme")
    for scopes in (["inference"], ["inference", "usage:read"]):
        key = (await make_key(http, "acme", scopes=scopes))["key"]
        app = create_api(gateway.runtime)
        routes = [
            (method, route.path)
            for route in app.routes
            if route.path.startswith("/admin") and route.path != "/admin/usage"
            for method in sorted(getattr(route, "methods", ()))
        ]
        assert len(routes) >= 15
        for method, path in routes:
            url = path.replace("{name:path}", "sim-fast").replace("{name}", "acme")
            url = url.replace("{key_id}", "key_x")
            response = await http.request(
                method, url, headers={"authorization": f"Bearer {key}"}, json={}
            )
            assert response.status_code == 403, (method, url, response.text)
            validate(response.json(), "ErrorResponse")


async def test_revoked_expired_and_suspended_keys_are_refused(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "acme")
    await make_tenant(http, "other")
    doomed = await make_key(http, "acme")
    short = await make_key(http, "acme", expires_in_s=0.2)
    bystander = await make_key(http, "other")
    for key in (doomed, short, bystander):
        await sdk(http, key["key"]).chat.completions.create(model="sim-fast", messages=HELLO)

    revoked = await http.post(f"/admin/keys/{doomed['id']}/revoke", headers=admin_headers())
    assert revoked.json()["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        await sdk(http, doomed["key"]).chat.completions.create(model="sim-fast", messages=HELLO)

    await asyncio.sleep(0.25)
    with pytest.raises(openai.AuthenticationError) as info:
        await sdk(http, short["key"]).chat.completions.create(model="sim-fast", messages=HELLO)
    assert info.value.body["code"] == "expired_api_key"

    await http.post("/admin/tenants/other/suspend", headers=admin_headers())
    with pytest.raises(openai.PermissionDeniedError) as info:
        await sdk(http, bystander["key"]).models.list()
    assert info.value.body["code"] == "tenant_suspended"
    await http.post("/admin/tenants/other/resume", headers=admin_headers())
    await sdk(http, bystander["key"]).models.list()


async def test_wildcard_and_usage_read_scopes(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "acme")
    star = (await make_key(http, "acme", scopes=["inference", "usage:read"]))["key"]
    reader = (await make_key(http, "acme", scopes=["usage:read"]))["key"]
    admin = (await make_key(http, "acme", scopes=["admin"]))["key"]
    await sdk(http, star).models.list()
    with pytest.raises(openai.PermissionDeniedError):
        await sdk(http, reader).chat.completions.create(model="sim-fast", messages=HELLO)
    # admin is granted only by name, and then it is admin.
    listed = await http.get("/admin/tenants", headers={"authorization": f"Bearer {admin}"})
    assert listed.status_code == 200 and [t["name"] for t in listed.json()["data"]] == ["acme"]


async def test_keys_are_shown_once_and_listed_without_secrets(
    gateway: LocalGateway, http: httpx.AsyncClient
) -> None:
    await make_tenant(http, "acme")
    created = await make_key(http, "acme", name="ci", scopes=["inference"])
    listing = (await http.get("/admin/keys?tenant=acme", headers=admin_headers())).json()["data"]
    shown = await http.get(f"/admin/keys/{created['id']}", headers=admin_headers())
    for text in (str(listing), shown.text):
        assert created["key"] not in text and hash_key(created["key"]) not in text
    assert listing[0]["id"] == created["id"] and listing[0]["status"] == "active"
    # The audit trail records who created it, and never the key.
    audits = [a for a in gateway.recorder.audits if a.path == "/admin/keys" and a.status == 201]
    assert audits and created["key"] not in str(audits)


async def test_bad_tenant_and_key_requests_are_clean_4xx(http: httpx.AsyncClient) -> None:
    cases = [
        ("POST", "/admin/tenants", {"name": "bad name!"}, 400),
        ("POST", "/admin/tenants", {"name": "x", "limits": {"rpm": -1}}, 400),
        ("POST", "/admin/tenants", {"name": "x", "surprise": 1}, 400),
        ("POST", "/admin/tenants", {"name": "x", "limits": {"budgets": [{"usd": 1}] * 2}}, 400),
        ("POST", "/admin/keys", {"tenant": "nobody"}, 404),
        ("POST", "/admin/keys", {"tenant": "acme", "scopes": ["root"]}, 400),
        ("POST", "/admin/keys/key_nope/revoke", None, 404),
        ("PATCH", "/admin/tenants/nobody", {"status": "active"}, 404),
        ("PATCH", "/admin/tenants/acme", {"status": "sleeping"}, 400),
        ("PATCH", "/admin/tenants/acme", {"name": "renamed"}, 400),
    ]
    await make_tenant(http, "acme")
    for method, path, body, status in cases:
        response = await http.request(method, path, json=body, headers=admin_headers())
        assert response.status_code == status, (method, path, body, response.text)
        validate(response.json(), "ErrorResponse")
    again = await http.post("/admin/tenants", json={"name": "acme"}, headers=admin_headers())
    assert again.status_code == 409
