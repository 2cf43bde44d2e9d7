"""Tenants and keys as an operator and two teams use them: the CLI as a subprocess creates
tenants and keys, the teams call with the `openai` SDK through two ingress replicas."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import llmgw

pytestmark = pytest.mark.ray

CONFIG = Path(__file__).with_name("tenancy.yaml")
ADMIN_KEY = "sk-llmgw-e2e-tenancy-admin-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def gateway(
    ray_cluster: None, serve_port: int, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", ADMIN_KEY)
    llmgw("up", "--config", str(CONFIG), "--port", str(serve_port), "--detach")
    yield f"http://127.0.0.1:{serve_port}"
    llmgw("down", "--keep-ray")


def create_key(tenant: str, *scopes: str) -> dict:
    args = ["keys", "create", "--tenant", tenant, "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    return json.loads(llmgw(*args).stdout)


def client(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)


def test_two_tenants_revocation_and_scopes(gateway: str) -> None:
    llmgw("tenants", "create", "team-a", "--rpm", "600")
    llmgw("tenants", "create", "team-b")
    llmgw("tenants", "set", "team-b", "allowed_models=[sim-fast]")
    listing = llmgw("tenants", "list").stdout
    assert "team-a" in listing and "team-b" in listing

    a_key = create_key("team-a")
    b_key = create_key("team-b")
    assert a_key["key"].startswith("sk-llmgw-")
    keys = llmgw("keys", "list", "--tenant", "team-a").stdout
    assert a_key["id"] in keys and a_key["key"] not in keys

    a, b = client(gateway, a_key["key"]), client(gateway, b_key["key"])
    a_prompt = a_completion = 0
    for _ in range(4):  # both replicas know both keys
        usage = a.chat.completions.create(model="sim-smart", messages=HELLO).usage
        a_prompt, a_completion = (
            a_prompt + usage.prompt_tokens,
            a_completion + usage.completion_tokens,
        )
        assert b.chat.completions.create(model="sim-fast", messages=HELLO).usage.total_tokens
    assert [m.id for m in b.models.list().data] == ["sim-fast"]
    with pytest.raises(openai.NotFoundError):
        b.chat.completions.create(model="sim-smart", messages=HELLO)

    # An inference key is no admin: 403 on /admin, whatever the route.
    for method, path in [
        ("GET", "/admin/models"),
        ("GET", "/admin/tenants"),
        ("POST", "/admin/keys"),
        ("DELETE", "/admin/models/sim-fast"),
    ]:
        response = httpx.request(
            method, gateway + path, headers={"authorization": f"Bearer {a_key['key']}"}, json={}
        )
        assert response.status_code == 403, (method, path, response.text)

    # The calls are in `llmgw usage` within seconds, with their tokens and cost.
    expected_cost = a_prompt * 5.0 / 1e6 + a_completion * 15.0 / 1e6
    deadline = time.monotonic() + 10
    while True:
        rows = json.loads(llmgw("usage", "--tenant", "team-a", "--format", "json").stdout)
        if (rows and rows[0]["requests"] >= 4) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [(r["tenant"], r["model"], r["requests"]) for r in rows] == [("team-a", "sim-smart", 4)]
    assert rows[0]["prompt_tokens"] == a_prompt and rows[0]["completion_tokens"] == a_completion
    assert rows[0]["cost_usd"] == pytest.approx(expected_cost, rel=1e-6)

    # A usage:read key of team-b reads team-b's usage only.
    reader = create_key("team-b", "usage:read")["key"]
    mine = httpx.get(
        f"{gateway}/admin/usage", headers={"authorization": f"Bearer {reader}"}
    ).json()["data"]
    assert mine and {r["tenant"] for r in mine} == {"team-b"}
    theirs = httpx.get(
        f"{gateway}/admin/usage?tenant=team-a", headers={"authorization": f"Bearer {reader}"}
    )
    assert theirs.status_code == 403

    revoked_at = time.monotonic()
    llmgw("keys", "revoke", a_key["id"])
    # Refused by every replica within a second: 20 calls, spread over both, all 401.
    time.sleep(max(0.0, 1.0 - (time.monotonic() - revoked_at)))
    for _ in range(20):
        with pytest.raises(openai.AuthenticationError):
            a.models.list()
    # The other tenant's key keeps working throughout.
    for _ in range(4):
        b.chat.completions.create(model="sim-fast", messages=HELLO)

    shown = llmgw("keys", "list", "--tenant", "team-a").stdout
    assert "revoked" in shown


def test_suspending_a_tenant_refuses_its_keys_everywhere(gateway: str) -> None:
    llmgw("tenants", "create", "team-c")
    key = create_key("team-c")["key"]
    c = client(gateway, key)
    c.models.list()
    llmgw("tenants", "suspend", "team-c")
    time.sleep(1.0)
    for _ in range(10):
        with pytest.raises(openai.PermissionDeniedError):
            c.models.list()
    llmgw("tenants", "resume", "team-c")
    time.sleep(1.0)
    for _ in range(10):
        c.models.list()
