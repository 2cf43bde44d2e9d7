"""The config file stays the truth for what it declares, across restarts on the same store:
what an operator sees when they restart the gateway with another file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import GatewayConfig, load_config
from gateway.errors import ModelNotFoundError
from gateway.registry.registry import Registry
from gateway.routing import RouteRequest, plan
from gateway.store import Store

A = {
    "providers": [{"name": "sim", "type": "sim"}, {"name": "old-sim", "type": "sim"}],
    "models": [
        {"name": "shared", "provider": "sim", "use_cases": ["chat"], "quality": 0.5},
        {"name": "sim-classifier", "provider": "sim", "use_cases": ["classification"]},
        {"name": "legacy", "provider": "old-sim", "fallbacks": ["shared"]},
    ],
}
B = {
    "providers": [{"name": "sim", "type": "sim"}],
    "models": [
        {"name": "shared", "provider": "sim", "use_cases": ["chat"], "quality": 0.5},
        {"name": "newcomer", "provider": "sim", "use_cases": ["chat", "summarization"]},
    ],
}


def write(tmp_path: Path, name: str, data: dict) -> GatewayConfig:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def start(store: Store, config: GatewayConfig) -> Registry:
    """What a gateway start does: open the store, reconcile with the file."""
    return Registry.open(Store(store.url), config)


def test_a_restart_with_another_file_serves_exactly_it_plus_admin_models(
    store: Store, tmp_path: Path
) -> None:
    a, b = write(tmp_path, "a.yaml", A), write(tmp_path, "b.yaml", B)
    first = start(store, a)
    first.register_model({"name": "mine", "provider": "sim", "use_cases": ["classification"]})

    dry = first.plan_config(b)
    assert (sorted(dry.added), sorted(dry.removed)) == (
        ["newcomer"],
        ["legacy", "provider:old-sim", "sim-classifier"],
    )

    second = start(store, b)
    assert set(second.models) == {"shared", "newcomer", "mine"}
    assert set(second.providers) == {"sim"}
    # `auto` for classification goes to the admin's model, never to the one B dropped.
    decision = plan(
        RouteRequest(model="auto", use_case="classification", needs=frozenset({"chat"})),
        second.snapshot(),
        b.routing,
        None,
    )
    assert [c.model.name for c in decision.candidates] == ["mine"]
    origins = second.snapshot().origins
    assert origins["newcomer"]["kind"] == "config" and origins["newcomer"]["path"].endswith(
        "b.yaml"
    )
    assert origins["mine"]["kind"] == "admin" and origins["mine"]["who"] == "admin"
    assert second.snapshot().config_source["path"].endswith("b.yaml")
    # Starting again with B changes nothing: one reconciliation, one version.
    assert start(store, b).version == second.version


def test_on_removed_deprecate_keeps_the_model_deprecated(store: Store, tmp_path: Path) -> None:
    start(store, write(tmp_path, "a.yaml", A))
    b = write(tmp_path, "b.yaml", {**B, "registry": {"on_removed": "deprecate"}})
    second = start(store, b)
    assert second.models["sim-classifier"].status == "deprecated"
    assert second.origins[("model", "sim-classifier")].removed_from_config
    assert "old-sim" in second.providers  # `legacy` still uses it
    # `auto` answers a clear error rather than re-route silently; the name still serves.
    with pytest.raises(ModelNotFoundError):
        plan(
            RouteRequest(model="auto", use_case="classification", needs=frozenset({"chat"})),
            second.snapshot(),
            b.routing,
            None,
        )
    named = plan(RouteRequest(model="sim-classifier"), second.snapshot(), b.routing, None)
    assert [c.model.name for c in named.candidates] == ["sim-classifier"]


def test_an_admin_change_stands_until_the_file_changes_that_entry(
    store: Store, tmp_path: Path
) -> None:
    a = write(tmp_path, "a.yaml", A)
    first = start(store, a)
    first.update_model("shared", {"quality": 0.9}, who="key_ops")
    # Another file, same entry for `shared`: the admin's change is kept, and marked.
    b = write(tmp_path, "b.yaml", B)
    second = start(store, b)
    assert second.models["shared"].quality == 0.9
    assert second.origins[("model", "shared")].override_by == "key_ops"
    # The file changes `shared`: the file wins, and the override mark goes.
    changed = {**B, "models": [{**B["models"][0], "quality": 0.3}, B["models"][1]]}
    third = start(store, write(tmp_path, "c.yaml", changed))
    assert third.models["shared"].quality == 0.3
    assert third.origins[("model", "shared")].override_by is None


def test_the_dry_plan_is_empty_for_the_file_already_applied(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", A)
    registry = start(store, a)
    assert registry.plan_config(a).empty
