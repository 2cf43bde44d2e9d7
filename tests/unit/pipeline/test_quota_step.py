"""The quota step in the in-process gateway: budgets and rates refused with OpenAI's 429s,
reservations settled with the real cost, returned when a call fails."""

from __future__ import annotations

import httpx
import pytest

from gateway.auth import Principal, hash_key
from gateway.config import Price, parse_config
from gateway.pipeline.context import RequestContext
from gateway.pipeline.steps.quota import Reserve, worst_case
from gateway.quota.ledger import LedgerKey
from gateway.quota.windows import window_at
from gateway.routing import RouteDecision, RouteRequest
from gateway.routing.decision import Candidate
from gateway.server.api import create_api
from gateway.server.local import LocalGateway, local_gateway
from gateway.tenancy.access import Quota
from gateway.wire import ChatCompletionRequest

ADMIN_KEY = "sk-llmgw-quota-admin-0123456789"
KEY = "sk-llmgw-quota-tenant-0123456789"
OUTPUT = 8
CONFIG = {
    "providers": [
        {"name": "sim", "type": "sim", "sim": {"output_tokens": OUTPUT}},
        {"name": "flaky", "type": "sim", "sim": {"failure_rate": 1.0, "failure_statuses": [503]}},
    ],
    "models": [
        {
            "name": "sim-fast",
            "provider": "sim",
            "price": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0},
        },
        {"name": "broken", "provider": "flaky", "price": {"input_per_mtok": 1000.0}},
    ],
    "routing": {"retries": {"max_attempts": 1, "base_delay_s": 0.0}},
}
BODY = {
    "model": "sim-fast",
    "max_tokens": OUTPUT,
    "messages": [{"role": "user", "content": "Say hello"}],
}


def tenant(*quotas: Quota) -> dict[str, Principal]:
    return {hash_key(KEY): Principal(key_id="k1", tenant="acme", quotas=quotas)}


async def client_for(gateway: LocalGateway) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {KEY}"},
    )


async def one_call_cost() -> float:
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant())
    async with await client_for(gateway) as http:
        assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
    return gateway.recorder.usages[-1].cost_usd


@pytest.fixture
async def cost() -> float:
    return await one_call_cost()


def spent(gateway: LocalGateway, quota: Quota) -> float:
    book = gateway.runtime.services.quotas
    window = window_at(quota.period, book.clock()).id
    return book.ledger.ledger.out(LedgerKey(quota.subject, quota.metric, window))


async def test_a_budget_for_five_calls_serves_five(cost: float) -> None:
    budget = Quota("tenant:acme", "usd", "day", 5 * cost)
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant(budget))
    async with await client_for(gateway) as http:
        statuses = [
            (await http.post("/v1/chat/completions", json=BODY)).status_code for _ in range(5)
        ]
        refused = await http.post("/v1/chat/completions", json=BODY)
    assert statuses == [200] * 5
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    assert "tenant 'acme'" in error["message"] and "per day" in error["message"]
    await gateway.runtime.services.quotas.aclose()
    assert spent(gateway, budget) == pytest.approx(5 * cost)


async def test_a_rate_limit_refuses_with_retry_after() -> None:
    rpm = Quota("key:k1", "requests", "minute", 3)
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant(rpm))
    async with await client_for(gateway) as http:
        for _ in range(3):
            assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
        refused = await http.post("/v1/chat/completions", json=BODY)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "key 'k1': 3 requests per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_the_worst_case_is_reserved_and_the_real_cost_settled(cost: float) -> None:
    budget = Quota("tenant:acme", "usd", "day", 1000 * cost)
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant(budget))
    # No max_tokens: the worst case is the model's output limit (4096 tokens), far above
    # the 8 the call uses; only the real cost stays spent.
    body = {k: v for k, v in BODY.items() if k != "max_tokens"}
    async with await client_for(gateway) as http:
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
        stream = await http.post("/v1/chat/completions", json={**BODY, "stream": True})
        assert stream.status_code == 200
    await gateway.runtime.services.quotas.aclose()
    assert spent(gateway, budget) == pytest.approx(2 * cost)


async def test_a_failed_call_returns_its_reservation(cost: float) -> None:
    budget = Quota("tenant:acme", "usd", "day", 100 * cost)
    rpm = Quota("tenant:acme", "requests", "minute", 100)
    gateway = local_gateway(
        parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant(budget, rpm)
    )
    async with await client_for(gateway) as http:
        failed = await http.post("/v1/chat/completions", json={**BODY, "model": "broken"})
    assert failed.status_code >= 500
    await gateway.runtime.services.quotas.aclose()
    assert spent(gateway, budget) == 0 and spent(gateway, rpm) == 0


async def test_a_soft_budget_serves_and_flags(cost: float) -> None:
    soft = Quota("tenant:acme", "usd", "month", 1.5 * cost, hard=False)
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant(soft))
    async with await client_for(gateway) as http:
        statuses = [
            (await http.post("/v1/chat/completions", json=BODY)).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 200]
    await gateway.runtime.services.quotas.aclose()
    assert spent(gateway, soft) == pytest.approx(3 * cost)


async def test_worst_case_is_the_priciest_candidate_and_soft_limits_become_flags() -> None:
    config = parse_config(CONFIG)
    cheap, pricey = (
        config.models[0],
        config.models[0].model_copy(
            update={"price": Price(input_per_mtok=3000.0, output_per_mtok=5000.0)}
        ),
    )
    soft = Quota("tenant:acme", "usd", "month", 0.01, hard=False)
    ctx = RequestContext(endpoint="chat", path="/v1/chat/completions", headers={})
    ctx.principal = Principal(key_id="k1", tenant="acme", quotas=(soft,))
    ctx.chat = ChatCompletionRequest.model_validate(
        {"model": "auto", "n": 2, "messages": [{"role": "user", "content": "hi"}]}
    )
    ctx.route_request = RouteRequest(model="auto", prompt_tokens=10, max_output_tokens=20)
    ctx.decision = RouteDecision("cost", [Candidate(cheap, 0, ""), Candidate(pricey, 0, "")])
    assert worst_case(ctx) == {
        "requests": 1.0,
        "tokens": 50.0,  # n=2 choices of up to 20 tokens each
        "usd": pytest.approx(pricey.price.cost(10, 40)),
    }
    gateway = local_gateway(config, hash_key(ADMIN_KEY))
    step = Reserve(gateway.runtime.services)
    await step.handle(ctx)
    assert ctx.flags == ["budget_exceeded:tenant:acme:month"]
    await step.finish(ctx)  # no call was made: all of it goes back
    assert gateway.runtime.services.quotas.balance(soft) == pytest.approx(pricey.price.cost(10, 40))


async def test_a_request_larger_than_its_limit_is_told_to_lower_max_tokens() -> None:
    tpm = Quota("tenant:acme", "tokens", "minute", 1000)
    gateway = local_gateway(parse_config(CONFIG), hash_key(ADMIN_KEY), principals=tenant(tpm))
    body = {k: v for k, v in BODY.items() if k != "max_tokens"}  # worst case: 4096 out
    async with await client_for(gateway) as http:
        refused = await http.post("/v1/chat/completions", json=body)
        served = await http.post("/v1/chat/completions", json=BODY)
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["param"] == "max_tokens"
    assert "tenant 'acme': 1,000 tokens per minute" in error["message"]
    assert served.status_code == 200
