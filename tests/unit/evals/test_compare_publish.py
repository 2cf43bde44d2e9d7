"""`llmgw eval publish`: each model's interval lands in the registry, versioned, where the
quality strategy then routes by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli import client as cli_client
from gateway.config import ModelConfig, ProviderConfig, RoutingConfig
from gateway.registry.registry import Registry
from gateway.routing import RouteRequest, plan
from tests.unit.evals.compare_fixtures import write_run


class RegistryBehindAdmin:
    """The admin API's model PATCH, straight onto an in-memory Registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def request(self, method: str, path: str, body: Any = None) -> Any:
        assert method == "PATCH" and path.startswith("/admin/models/")
        name = unquote(path.removeprefix("/admin/models/"))
        return {"version": self.registry.update_model(name, body), "model": name}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    registry = Registry(
        providers=[ProviderConfig(name="sim", type="sim")],
        models=[
            ModelConfig(
                name=f"{m}-2026",
                provider="sim",
                use_cases=["chat", "summarization"],
                price={"input_per_mtok": price, "output_per_mtok": price},
            )
            for m, price in (("small", 0.1), ("mid", 1.0), ("big", 10.0))
        ],
    )
    admin = RegistryBehindAdmin(registry)
    monkeypatch.setattr(cli_client.AdminClient, "from_state", classmethod(lambda cls, url: admin))
    return registry


def test_publish_writes_each_models_interval_and_routing_follows_it(
    registry: Registry, tmp_path: Path
) -> None:
    write_run(tmp_path, "run-7", {"small": 0.3, "mid": 0.8, "big": 0.85}, cases=200, repeats=1)
    before = registry.version
    result = CliRunner().invoke(
        app,
        ["eval", "publish", "run-7", "--runs-dir", str(tmp_path), "--use-case", "summarization"],
    )
    assert result.exit_code == 0, result.output
    assert registry.version == before + 3  # one versioned change per model
    published = registry.models["mid-2026"].published_quality["summarization"]
    assert published.scorer == "exact" and published.run_id == "run-7" and published.n == 200
    assert published.ci_low < published.mean < published.ci_high
    assert "mid-2026: summarization exact" in result.output

    # The cheapest model whose lower bound clears 0.6 is mid, not the cheaper small.
    decision = plan(
        RouteRequest(model="auto", use_case="summarization", strategy="quality", min_quality=0.6),
        registry.snapshot(),
        RoutingConfig(),
        explain=True,
    )
    assert decision.names()[0] == "mid-2026"
    assert "run run-7" in decision.candidates[0].reason
    # Other use cases are untouched; publishing another merges beside it.
    assert "chat" not in registry.models["mid-2026"].published_quality


def test_publish_needs_a_use_case_it_cannot_infer(registry: Registry, tmp_path: Path) -> None:
    write_run(tmp_path, "run-8", {"small": 0.3}, cases=10, repeats=1, pairwise=False)
    result = CliRunner().invoke(app, ["eval", "publish", "run-8", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1 and "--use-case" in result.output
