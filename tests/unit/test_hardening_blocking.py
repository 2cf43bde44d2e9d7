"""Nothing that blocks runs on an event loop: token estimates of any depth, Serve's status."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from deployments import admin_backend as deployments_admin
from gateway.tokens import count_json_tokens, count_prompt_tokens
from gateway.wire import ChatCompletionRequest, FunctionDef, Tool, UserMessage


def test_token_estimates_walk_any_depth_without_recursion() -> None:
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"properties": {"a": deep}}
    request = ChatCompletionRequest.model_construct(
        model="m",
        messages=[UserMessage(role="user", content="hi")],
        tools=[
            Tool.model_construct(
                type="function", function=FunctionDef.model_construct(name="f", parameters=deep)
            )
        ],
    )
    assert count_prompt_tokens(request) > 10_000
    assert count_json_tokens({"type": "string", "enum": ["a", "b"]}) > 0


async def test_serve_status_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def status() -> Any:
        seen.append(threading.get_ident())
        return SimpleNamespace(applications={})

    monkeypatch.setattr(deployments_admin.serve, "status", status)
    monkeypatch.setattr(deployments_admin, "metrics_endpoints", lambda: [])
    feed = SimpleNamespace(current=SimpleNamespace(health={}))
    backend = deployments_admin.ActorAdmin(registry=None, feed=feed, providers=[])
    assert await backend.status() == {
        "applications": {},
        "providers": [],
        "metrics": [],
        "health": {},
    }
    assert seen and seen[0] != loop_thread
