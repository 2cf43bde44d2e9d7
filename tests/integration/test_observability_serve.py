"""Traces and logs from the gateway deployed on Ray Serve, as an operator sees them: spans reach
a real OTLP/HTTP receiver from the ingress replicas, continuing the client's traceparent, and the
ingress replicas write one JSON access-log line per request with its id and without the prompt
or the key. (tests/unit/observability covers the same in process, in more detail.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.otlp import PARENT_ID, TRACE_ID, TRACEPARENT, Receiver, receiver

__all__ = ["receiver"]  # a fixture the tests here use

PROMPT = "the launch code is purple-elephant-nine"
ADMIN_KEY = "sk-llmgw-serve-observability-key-0123456789"


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[[dict[str, Any]], Any],
    receiver: Receiver,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Any:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", ADMIN_KEY)
    return serve_gateway(
        {
            "providers": [{"name": "sim", "type": "sim", "sim": {"output_tokens": 5}}],
            "models": [{"name": "sim-fast", "provider": "sim"}],
            "observability": {
                "tracing": {"endpoint": receiver.url, "service_name": "llmgw-serve-test"},
                "json_logs": True,
            },
        }
    )


@pytest.fixture(scope="module")
def client(gateway: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def _spans_of(receiver: Receiver, request_id: str, timeout_s: float = 20.0) -> list[dict]:
    """The spans carrying `request_id`, once the request's root span has arrived (the
    replicas export in batches about every second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        spans = [
            s for s in receiver.spans() if s["attributes"].get("llmgw.request_id") == request_id
        ]
        if any(s["kind"] == 2 for s in spans):  # SERVER: the request's own span
            return spans
        time.sleep(0.25)
    raise AssertionError(f"no request span for {request_id} within {timeout_s} s")


def test_a_request_on_serve_is_one_trace_with_genai_attributes(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    headers = {"traceparent": TRACEPARENT, "x-request-id": "serve-trace-1"}
    for stream in (False, True):
        rid = f"serve-trace-{int(stream)}"
        headers["x-request-id"] = rid
        messages = [{"role": "user", "content": PROMPT}]
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model="sim-fast",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
            )
            assert chunks[-1].usage is not None
        else:
            client.chat.completions.create(
                model="sim-fast", messages=messages, extra_headers=headers
            )
        spans = _spans_of(receiver, rid)
        assert all(s["trace_id"] == TRACE_ID for s in spans)
        assert {s["service"] for s in spans} == {"llmgw-serve-test"}
        [root] = [s for s in spans if s["parent"] == PARENT_ID]
        assert root["name"] == "chat sim-fast" and root["kind"] == 2
        attributes = root["attributes"]
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "sim-fast"
        assert attributes["gen_ai.provider.name"] == "sim"
        assert attributes["gen_ai.usage.output_tokens"] == 5
        steps = {s["name"]: s for s in spans if s["parent"] == root["span_id"]}
        assert "invoke" in steps
        attempts = [s for s in spans if s["parent"] == steps["invoke"]["span_id"]]
        assert [(a["name"], a["kind"]) for a in attempts] == [("chat sim-fast", 3)]  # CLIENT
    raw = b"".join(receiver.payloads)
    assert PROMPT.encode() not in raw


def _session_logs() -> Path:
    import ray

    return Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"


def test_ingress_replicas_log_json_lines_with_the_request_id_and_no_body(
    client: openai.OpenAI,
) -> None:
    rid = f"serve-log-{time.monotonic_ns()}"
    client.chat.completions.create(
        model="sim-fast",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": rid},
    )
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        time.sleep(0.25)
        for path in _session_logs().glob("worker-*.err"):
            lines += [line for line in path.read_text(errors="replace").splitlines() if rid in line]
    assert lines, f"no replica log line names {rid}"
    entries = [json.loads(line) for line in lines]
    [access] = [e for e in entries if e.get("status") == 200]
    assert access["request_id"] == rid and access["model"] == "sim-fast"
    assert access["provider"] == "sim" and access["duration_ms"] > 0
    for line in lines:
        assert PROMPT not in line and ADMIN_KEY not in line
