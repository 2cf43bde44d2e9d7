"""A provider pool whose replicas cannot start: a call to it answers within seconds, by the
fallback or with OpenAI's 503, instead of waiting out the request's deadline.

The OpenAI pool scales from zero (a rarely used provider's pool, as `deployments.OpenAIPool.
autoscaling_config` allows) and its constructor raises, as a pool would whose adapter cannot
be built on its node: the first call makes Serve start a replica, which fails as many times
as Serve retries (the pool turns UNHEALTHY, no replica), while the call waits in the handle's
queue. (A used pool failing from the start goes DEPLOY_FAILED and fails `serve.run`, so
`llmgw up` reports it; its calls are refused the same way.) No gateway config makes only a
pool's constructor fail today (adapters are built on a pool's first call, and their errors
answer that call), so the failure is the one thing put in: a pool class refusing openai.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from ray import cloudpickle, serve

from deployments.pool import ProviderPool
from tests.integration.conftest import Deployed
from tests.openapi import validate
from tests.protocol_servers import OpenAIServer

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-pool-failed-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
# Once Serve has given up on the pool, a call waiting for it is answered within this.
FAST_S = 5.0
# The first call waits for Serve to scale the pool from zero and fail three starts (~8 s, then
# a new worker process each, ~25-35 s in all on two busy cores): a wait Serve's own, bounded
# here generously. A call Serve left queued would wait out the model's 300 s; the client
# gives up at TIMEOUT_S.
VERDICT_S = 60.0
TIMEOUT_S = 120.0
# Pool replicas (and the registry's health probes) inherit the environment the session's Ray
# started with: set at collection.
os.environ.setdefault("LLMGW_POOL_FAILED_OPENAI_KEY", "sk-pool-failed-openai")


class _PoolWithoutOpenAI(ProviderPool.func_or_class):  # type: ignore[name-defined,misc]
    """A provider pool whose openai replicas fail in their constructor."""

    def __init__(self, provider_type: str, fetch: Any = None, **options: Any) -> None:
        if provider_type == "openai":
            raise RuntimeError("the openai adapter cannot be built on this node")
        super().__init__(provider_type, fetch, **options)


# Serve's replicas import code with the sys.path of the job that started Serve's controller:
# when that was a `llmgw up` of an earlier test (the e2e tests run first), `tests` is not on
# it, so this module's pool class travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PoolWithoutOpenAI = serve.deployment(
    _PoolWithoutOpenAI, ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000
)


def config(upstream: str) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "sim", "type": "sim", "sim": {"seed": 5, "output_tokens": 4}},
            {
                "name": "broken",
                "type": "openai",
                "base_url": f"{upstream}/v1",  # up: its health probes pass
                "api_key_env": "LLMGW_POOL_FAILED_OPENAI_KEY",
            },
        ],
        "models": [
            {"name": "backup", "provider": "sim"},
            {"name": "gpt-fb", "provider": "broken", "upstream": "gpt-x", "fallbacks": ["backup"]},
            {"name": "gpt-alone", "provider": "broken", "upstream": "gpt-x"},
        ],
        "deployments": {
            "OpenAIPool": {
                "autoscaling_config": {"min_replicas": 0, "initial_replicas": 0, "max_replicas": 1}
            }
        },
    }


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(os.environ["LLMGW_POOL_FAILED_OPENAI_KEY"]) as started:
        yield started


@pytest.fixture(scope="module")
def client(
    serve_gateway: Callable[..., Deployed],
    monkeypatch_module: pytest.MonkeyPatch,
    server: OpenAIServer,
) -> openai.OpenAI:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    monkeypatch_module.setattr("deployments.app.ProviderPool", PoolWithoutOpenAI)
    deployed = serve_gateway(config(server.url))
    return openai.OpenAI(
        base_url=f"{deployed.url}/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT_S
    )


def _openai_pool_status() -> str:
    return serve.status().applications["llmgw"].deployments["OpenAIPool"].status.value


class GivenUp:
    """When Serve first reports the OpenAI pool unable to start a replica (polled meanwhile)."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while self.at is None and not self._stop.wait(0.5):
            if _openai_pool_status() in ("UNHEALTHY", "DEPLOY_FAILED"):
                self.at = time.monotonic()

    def __enter__(self) -> GivenUp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.at is None and _openai_pool_status() in ("UNHEALTHY", "DEPLOY_FAILED"):
            self.at = time.monotonic()  # it did, since the last poll


def test_a_call_waiting_for_a_pool_that_cannot_start_falls_back(client: openai.OpenAI) -> None:
    assert _openai_pool_status() == "HEALTHY"  # at zero replicas: nothing has failed yet
    with GivenUp() as given_up:
        started = time.monotonic()
        answer = client.chat.completions.create(model="gpt-fb", messages=HELLO)
        answered = time.monotonic()
    assert answer.model == "backup" and answer.choices[0].message.content
    # The call waited while the pool was starting (UPSCALING: not refused) and was answered
    # by the fallback as soon as Serve had given up on the pool.
    assert given_up.at is not None, "answered before Serve gave up on the pool"
    print(
        f"answered {answered - started:.1f} s after the call, "
        f"{answered - given_up.at:.1f} s after Serve reported the pool failed"
    )
    assert answered - given_up.at < FAST_S
    assert answered - started < VERDICT_S


def test_without_a_fallback_the_call_is_a_503_naming_the_pool(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-alone", messages=HELLO)
    took = time.monotonic() - started
    print(f"503 from a pool that cannot start: {took:.1f} s")
    assert info.value.status_code == 503
    body = info.value.response.json()
    validate(body, "ErrorResponse")
    error = body["error"]
    assert error["code"] == "pool_no_replica"
    assert "OpenAIPool" in error["message"] and "'openai'" in error["message"]
    assert "no replica available" in error["message"]
    assert took < FAST_S


def test_a_stream_falls_back_past_the_pool(client: openai.OpenAI) -> None:
    started = time.monotonic()
    chunks = list(client.chat.completions.create(model="gpt-fb", messages=HELLO, stream=True))
    took = time.monotonic() - started
    print(f"stream fallback past a pool that cannot start: {took:.1f} s")
    assert {chunk.model for chunk in chunks} == {"backup"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert took < FAST_S
