"""Limits and budgets with two ingress replicas: leases from the quota actor hold a tenant to
its limit however the load spreads, and an actor killed under load loses no spend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import ray
from ray import serve

from deployments.quota_actor import NAMESPACE, QUOTA_NAME
from gateway.config import Price
from gateway.quota.windows import window_at
from gateway.store import Store
from tests.integration.conftest import Deployed

pytestmark = pytest.mark.ray

ADMIN_KEY = "sk-llmgw-quotas-admin-0123456789abcdef"
OUTPUT = 8
PRICE = {"input_per_mtok": 100.0, "output_per_mtok": 300.0}
CONFIG = {
    "providers": [{"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": OUTPUT}}],
    "models": [{"name": "sim-q", "provider": "sim", "price": PRICE}],
    "routing": {"retries": {"max_attempts": 1}},
    "deployments": {
        "Ingress": {"num_replicas": 2, "num_cpus": 0.05},
        "SimPool": {"num_replicas": 1, "max_ongoing_requests": 500, "num_cpus": 0.05},
    },
}
# max_tokens equal to what sim answers: the worst case reserved is exactly the real cost.
BODY = {
    "model": "sim-q",
    "max_tokens": OUTPUT,
    "messages": [{"role": "user", "content": "Spend a little"}],
}


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed], monkeypatch_module: pytest.MonkeyPatch
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", ADMIN_KEY)
    deployed = serve_gateway(CONFIG)
    ingress = serve.status().applications["llmgw"].deployments["Ingress"]
    assert ingress.replica_states.get("RUNNING") == 2
    return deployed


@pytest.fixture(scope="module")
def call_cost(gateway: Deployed) -> float:
    """One call's cost, from a call by the admin key (which no limit applies to)."""
    reply = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=BODY,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    usage = reply.json()["usage"]
    assert usage["completion_tokens"] == OUTPUT
    return Price(**PRICE).cost(usage["prompt_tokens"], OUTPUT)


def tenant_key(gateway: Deployed, name: str, limits: dict[str, Any]) -> str:
    """A tenant with `limits` and a key of its own, known to every replica."""
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    created = httpx.post(
        f"{gateway.url}/admin/tenants", json={"name": name, "limits": limits}, headers=admin
    )
    assert created.status_code == 201, created.text
    made = httpx.post(
        f"{gateway.url}/admin/keys", json={"tenant": name, "scopes": ["inference"]}, headers=admin
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    # Both replicas must hold the key before the load starts (listing models costs nothing).
    deadline, in_a_row = time.monotonic() + 30, 0
    while in_a_row < 10:
        assert time.monotonic() < deadline, "the new key did not reach every replica"
        listed = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {key}"})
        in_a_row = in_a_row + 1 if listed.status_code == 200 else 0
    return key


async def burst(gateway: Deployed, key: str, count: int) -> list[httpx.Response]:
    """`count` chat calls at once."""
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60, limits=limits) as http:
        headers = {"authorization": f"Bearer {key}"}
        return await asyncio.gather(
            *(http.post("/v1/chat/completions", json=BODY, headers=headers) for _ in range(count))
        )


def ledger_out(gateway: Deployed, subject: str, metric: str, period: str) -> float:
    store = Store(gateway.store_url)
    try:
        window = window_at(period, time.time()).id  # type: ignore[arg-type]
        return store.ledger_out(subject, metric, window)
    finally:
        store.close()


def recorded_spend(gateway: Deployed, tenant: str, calls: int) -> float:
    """The tenant's spend in the usage records, once `calls` records are written."""
    store = Store(gateway.store_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            records = [r for r in store.list_usage(tenant=tenant, limit=1000) if r.status == 200]
            if len(records) >= calls or time.monotonic() > deadline:
                return sum(r.cost_usd for r in records)
            time.sleep(0.2)
    finally:
        store.close()


def wait_for_a_fresh_minute(margin_s: float = 15.0) -> None:
    # A burst straddling a minute boundary would count against two windows.
    left = window_at("minute", time.time()).seconds_left(time.time())
    if left < margin_s:
        time.sleep(left + 0.1)


async def test_a_budget_for_five_calls_holds_over_two_replicas(
    gateway: Deployed, call_cost: float
) -> None:
    budget = 5 * call_cost
    key = tenant_key(gateway, "acme", {"budgets": [{"usd": budget, "period": "day"}]})
    replies = await burst(gateway, key, 50)
    served = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert 3 <= len(served) <= 5
    assert len(served) + len(refused) == 50
    for reply in refused:
        error = reply.json()["error"]
        assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
        assert "tenant 'acme'" in error["message"] and "per day" in error["message"]
    assert recorded_spend(gateway, "acme", len(served)) <= budget + 1e-12
    assert ledger_out(gateway, "tenant:acme", "usd", "day") <= budget + 1e-12


async def test_a_rate_limit_holds_over_two_replicas(gateway: Deployed) -> None:
    key = tenant_key(gateway, "beta", {"rpm": 5})
    wait_for_a_fresh_minute()
    replies = await burst(gateway, key, 50)
    served = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert 3 <= len(served) <= 5
    assert len(served) + len(refused) == 50
    for reply in refused:
        assert reply.json()["error"]["code"] == "rate_limit_exceeded"
        assert "tenant 'beta': 5 requests per minute" in reply.json()["error"]["message"]
        assert 1 <= int(reply.headers["retry-after"]) <= 60
    assert ledger_out(gateway, "tenant:beta", "requests", "minute") <= 5


async def test_killing_the_quota_actor_under_load_loses_no_spend(
    gateway: Deployed, call_cost: float
) -> None:
    budget = 40 * call_cost
    key = tenant_key(gateway, "gamma", {"budgets": [{"usd": budget, "period": "day"}]})

    replies: list[httpx.Response] = []
    kills = (8, 20)  # after this many calls served, while the budget is still being spent

    async def load() -> None:
        while len(replies) < 120:
            replies.extend(await burst(gateway, key, 4))

    async def kill() -> None:
        for after in kills:
            while sum(r.status_code == 200 for r in replies) < after:
                await asyncio.sleep(0.005)
            ray.kill(ray.get_actor(QUOTA_NAME, namespace=NAMESPACE), no_restart=False)

    await asyncio.gather(load(), kill())
    actor = ray.get_actor(QUOTA_NAME, namespace=NAMESPACE)
    assert ray.get(actor.stats.remote(), timeout=30)["restarted"]
    served = sum(r.status_code == 200 for r in replies)
    statuses = {r.status_code for r in replies}
    assert statuses <= {200, 429, 503}, statuses
    assert 0 < served <= 40
    spent = served * call_cost
    # Replicas give back idle leases after a few seconds: the ledger then holds the spend.
    time.sleep(8)
    out = ledger_out(gateway, "tenant:gamma", "usd", "day")
    assert spent - 1e-12 <= out <= budget + 1e-12
    assert recorded_spend(gateway, "gamma", served) == pytest.approx(spent)
