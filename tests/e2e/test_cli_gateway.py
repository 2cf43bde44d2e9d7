"""A user's session: `llmgw up --detach`, the openai SDK against it, the CLI, `llmgw down`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import ray

from tests.e2e.conftest import llmgw
from tests.openapi import validate

pytestmark = pytest.mark.ray

CONFIG = Path(__file__).with_name("gateway.yaml")
KEY = "sk-llmgw-e2e-admin-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def gateway(
    ray_cluster: None, serve_port: int, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    result = llmgw("up", "--config", str(CONFIG), "--port", str(serve_port), "--detach")
    url = f"http://127.0.0.1:{serve_port}"
    assert url in result.stdout
    yield url
    llmgw("down", "--keep-ray")


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0)


def test_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="sim-fast", messages=HELLO)
    validate(raw.http_response.json(), "CreateChatCompletionResponse")
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens == 16
    assert raw.headers["x-llmgw-provider"] == "sim"
    assert float(raw.headers["x-llmgw-overhead-ms"]) >= 0
    assert raw.headers["x-request-id"]


def test_client_request_id_is_echoed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fast", messages=HELLO, extra_headers={"x-request-id": "e2e-42"}
    )
    assert raw.headers["x-request-id"] == "e2e-42"


def test_streaming_with_usage(client: openai.OpenAI, gateway: str) -> None:
    stream = client.chat.completions.create(
        model="sim-fast", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    body = {
        "model": "sim-fast",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST",
        f"{gateway}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    for frame in frames[:-1]:
        validate(httpx.Response(200, content=frame).json(), "CreateChatCompletionStreamResponse")


def test_models_list(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list().data} >= {"sim-fast", "sim-smart", "sim-broken"}


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    body = info.value.response.json()
    validate(body, "ErrorResponse")
    assert body["error"]["code"] == "model_not_found"


def test_no_key_is_401(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/chat/completions", json={"model": "sim-fast", "messages": HELLO}
    )
    assert response.status_code == 401
    validate(response.json(), "ErrorResponse")


def test_malformed_body_is_400(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/chat/completions",
        content=b'{"model": "sim-fast", "messages": "hi"}',
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["param"] == "messages"


def test_failure_is_retried_and_falls_back(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="sim-broken", messages=HELLO)
    assert raw.headers["x-llmgw-model"] == "sim-fast"
    assert raw.parse().choices[0].message.content


def test_cli_status_models_and_route(gateway: str) -> None:
    status = llmgw("status")
    assert "Ingress" in status.stdout and "SimPool" in status.stdout
    assert "Providers" in status.stdout and "gateway.yaml" in status.stdout
    listing = llmgw("models", "list")
    assert "sim-smart" in listing.stdout and "sim-broken" in listing.stdout
    shown = llmgw("models", "show", "fast")
    assert "name: sim-fast" in shown.stdout
    explained = llmgw(
        "route", "explain", "Find sources", "--use-case", "research", "--strategy", "capability"
    )
    lines = [
        line for line in explained.stdout.splitlines() if "sim-smart" in line or "sim-fast" in line
    ]
    assert "sim-smart" in lines[0], explained.stdout


def test_cli_changes_reach_the_gateway(client: openai.OpenAI) -> None:
    llmgw(
        "models",
        "add",
        "name=sim-extra",
        "provider=sim",
        "use_cases=[chat]",
        "price.input_per_mtok=0.01",
    )
    assert _eventually(lambda: client.chat.completions.create(model="sim-extra", messages=HELLO))
    llmgw("models", "set", "sim-extra", "price.output_per_mtok=0.02", "context_window=4096")
    shown = llmgw("models", "show", "sim-extra")
    assert "output_per_mtok: 0.02" in shown.stdout and "context_window: 4096" in shown.stdout
    llmgw("models", "deprecate", "sim-extra")
    assert "deprecated" in llmgw("models", "show", "sim-extra").stdout
    bad = llmgw("models", "set", "sim-extra", "context_window=-1", check=False)
    assert bad.returncode == 1 and "context_window" in bad.stderr and "Traceback" not in bad.stderr


def test_registry_actor_comes_back_after_kill(client: openai.OpenAI) -> None:
    before = {m.id for m in client.models.list().data}
    actor = ray.get_actor("llmgw-registry", namespace="llmgw")
    ray.kill(actor, no_restart=False)
    # The replicas keep serving from their snapshot while the actor restarts from the store.
    assert client.chat.completions.create(model="sim-fast", messages=HELLO).choices
    listing = _eventually(lambda: llmgw("models", "list"))
    assert "sim-extra" in listing.stdout
    assert {m.id for m in client.models.list().data} == before


def test_bad_config_fails_with_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("providers:\n  - name: x\n    type: nope\nmodels: []\n")
    result = llmgw("up", "--config", str(config), check=False)
    assert result.returncode == 2
    assert str(config) in result.stderr and "providers[0].type" in result.stderr
    assert "Traceback" not in result.stderr


def _eventually(action, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
