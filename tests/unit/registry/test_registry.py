"""The model registry: changes validated, versioned, persisted, seeded from the config file."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from gateway.config import GatewayConfig, ModelConfig, ProviderConfig, load_config, parse_config
from gateway.errors import (
    ConflictError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    ServiceUnavailableError,
)
from gateway.registry.registry import Registry
from gateway.registry.seed import config_digest
from gateway.registry.snapshot import ProviderHealth
from gateway.registry.stats import CallSample
from gateway.store import Store


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config() -> GatewayConfig:
    return load_config()  # four sim models: sim-fast (alias fast), sim-smart (smart), ...


@pytest.fixture
def registry(store: Store, config: GatewayConfig) -> Registry:
    return Registry.open(store, config)


def reopen(store: Store, config: GatewayConfig | None) -> Registry:
    return Registry.open(Store(store.url), config)


def new_model(name: str, **fields: object) -> ModelConfig:
    return ModelConfig(name=name, provider="sim", **fields)


# ---------------------------------------------------------------- seeding and restarts


def test_an_empty_store_is_seeded_from_the_config(registry: Registry, store: Store) -> None:
    assert registry.version == 1
    assert list(registry.models) == ["sim-fast", "sim-smart", "sim-classifier", "sim-next"]
    state = store.load_registry()
    assert state.version == 1
    assert {m.name for m in state.models} == set(registry.models)
    assert state.config_hash == config_digest(load_config())


def test_every_change_survives_a_restart(registry: Registry, store: Store, config) -> None:
    registry.register_model(new_model("extra", aliases=["x"]))
    registry.update_model("sim-fast", {"price": {"output_per_mtok": 0.5}})
    registry.deprecate("sim-next")
    registry.remove("sim-classifier")

    again = reopen(store, config)  # same config file: the store wins
    assert again.version == registry.version == 5
    assert again.models == registry.models
    assert again.models["sim-fast"].price.output_per_mtok == 0.5
    assert again.models["sim-fast"].price.input_per_mtok == 0.10
    assert again.models["sim-next"].status == "deprecated"
    assert "sim-classifier" not in again.models
    assert again.snapshot().resolve("x").name == "extra"


def test_a_changed_config_wins_for_the_entries_it_changed(registry: Registry, store: Store) -> None:
    registry.register_model(new_model("api-added", aliases=["fast2"]))
    registry.update_model("sim-smart", {"quality": 0.1})
    registry.update_model("sim-fast", {"quality": 0.2})

    data = load_config().model_dump(mode="json")
    data["models"][0]["price"]["input_per_mtok"] = 0.2  # sim-fast's price changes
    data["models"][0]["aliases"] = ["fast", "fast2"]  # ...and it takes api-added's alias
    changed = parse_config(data)
    again = reopen(store, changed)

    assert again.version == registry.version + 1
    assert again.models["sim-fast"].price.input_per_mtok == 0.2
    assert again.models["sim-fast"].quality == 0.4  # the file changed it: the file's value
    # The file left sim-smart as it was: the admin's change stands, and says so.
    assert again.models["sim-smart"].quality == 0.1
    assert again.origins[("model", "sim-smart")].override_by == "admin"
    assert "api-added" in again.models  # models added through the API stay
    assert again.models["api-added"].aliases == []
    assert again.snapshot().resolve("fast2").name == "sim-fast"
    assert again.models == reopen(store, changed).models  # and now the store wins again


def test_a_config_alias_never_takes_a_stored_models_name(registry: Registry, store) -> None:
    registry.register_model(new_model("turbo"))
    data = load_config().model_dump(mode="json")
    data["models"][0]["aliases"] = ["fast", "turbo"]
    again = reopen(store, parse_config(data))
    assert again.models["sim-fast"].aliases == ["fast"]
    assert again.snapshot().resolve("turbo").name == "turbo"


def test_apply_config_applies_a_changed_file_once(registry: Registry, store: Store) -> None:
    assert registry.apply_config(load_config()) == 1  # the file it was seeded from
    data = load_config().model_dump(mode="json")
    data["models"][1]["quality"] = 0.3
    changed = parse_config(data)
    assert registry.apply_config(changed) == 2
    assert registry.apply_config(changed) == 2
    assert registry.models["sim-smart"].quality == 0.3
    assert reopen(store, changed).version == 2


def test_no_config_means_the_store_as_is(registry: Registry, store: Store) -> None:
    registry.register_model(new_model("extra"))
    again = reopen(store, None)
    assert again.version == registry.version
    assert again.models == registry.models


def test_a_thousand_models(registry: Registry, store: Store, config) -> None:
    for i in range(1000):
        registry.register_model(
            new_model(f"model-{i:04d}", aliases=[f"m{i}"], fallbacks=["sim-fast"])
        )
    snap = registry.snapshot()
    assert snap.version == 1001
    assert len(snap.models) == 1004
    assert snap.resolve("m999").name == "model-0999"
    assert snap.resolve("sim/model-0500").name == "model-0500"

    again = reopen(store, config)
    assert again.version == 1001
    assert again.snapshot().models == snap.models
    assert again.snapshot().resolve("m0").name == "model-0000"


# ---------------------------------------------------------------- models


def test_register_returns_the_new_version(registry: Registry) -> None:
    assert registry.register_model(new_model("a")) == 2
    assert registry.register_model({"name": "b", "provider": "sim"}) == 3
    assert registry.register_model(new_model("a")) == 3  # the same model again: a no-op
    assert registry.models["b"].use_cases == ["chat"]


def test_register_refuses_what_does_not_fit(registry: Registry) -> None:
    with pytest.raises(ConflictError) as taken:
        registry.register_model(new_model("sim-fast", quality=0.1))
    assert taken.value.status_code == 409
    assert "already registered" in taken.value.message

    cases = {
        "alias 'fast' is already the name or an alias of model 'sim-fast'": new_model(
            "f2", aliases=["fast"]
        ),
        "the name is already an alias of model 'sim-smart'": new_model("smart"),
        "unknown provider 'nope'": ModelConfig(name="n", provider="nope"),
        "fallback 'ghost' is not a registered model": new_model("g", fallbacks=["ghost"]),
        "cannot fall back to itself": new_model("self", fallbacks=["self"]),
        "alias 'twice' is repeated": new_model("t", aliases=["twice", "twice"]),
    }
    for message, model in cases.items():
        with pytest.raises(InvalidRequestError, match=message) as refused:
            registry.register_model(model)
        assert refused.value.status_code == 400
    with pytest.raises(InvalidRequestError, match=r"context_window: .*greater than or equal to 1"):
        registry.register_model({"name": "bad", "provider": "sim", "context_window": 0})
    assert registry.version == 1


def test_update_merges_and_validates_through_model_config(registry: Registry) -> None:
    version = registry.update_model(
        "sim-fast",
        {
            "price": {"input_per_mtok": 0.3},
            "capabilities": ["chat"],
            "use_cases": ["chat"],
            "context_window": 16_000,
            "aliases": ["fast", "quick"],
            "fallbacks": ["smart"],
        },
    )
    model = registry.models["sim-fast"]
    assert version == 2
    assert model.price.input_per_mtok == 0.3
    assert model.price.output_per_mtok == 0.40  # merged, not replaced
    assert (model.capabilities, model.context_window, model.fallbacks) == (
        ["chat"],
        16_000,
        ["smart"],
    )
    assert registry.snapshot().resolve("quick") is model
    assert registry.update_model("sim-fast", {"quality": model.quality}) == 2  # nothing changed

    refusals = {
        "price.input_per_mtok": {"price": {"input_per_mtok": -1}},
        "status": {"status": "retired"},
        "use_cases.0": {"use_cases": ["poetry"]},
        "no_such_field": {"no_such_field": 1},
        "quality": {"quality": 2},
    }
    for field, changes in refusals.items():
        with pytest.raises(InvalidRequestError, match=field) as refused:
            registry.update_model("sim-fast", changes)
        assert refused.value.param == field
    with pytest.raises(InvalidRequestError, match="name cannot be changed"):
        registry.update_model("sim-fast", {"name": "other"})
    with pytest.raises(InvalidRequestError, match="already the name or an alias"):
        registry.update_model("sim-fast", {"aliases": ["smart"]})
    with pytest.raises(ModelNotFoundError, match="'fast' is an alias of 'sim-fast'"):
        registry.update_model("fast", {"quality": 0.1})
    assert registry.version == 2


def test_deprecate_and_remove(registry: Registry) -> None:
    assert registry.deprecate("sim-next") == 2
    assert registry.snapshot().models["sim-next"].status == "deprecated"
    assert registry.remove("sim-next") == 3
    assert registry.snapshot().resolve("sim-next") is None
    with pytest.raises(ModelNotFoundError):
        registry.remove("sim-next")


def test_a_model_others_fall_back_to_stays(registry: Registry) -> None:
    registry.register_model(new_model("careful", fallbacks=["smart"]))
    with pytest.raises(ConflictError, match="fallback of 'careful'"):
        registry.remove("sim-smart")
    with pytest.raises(ConflictError, match="fallback of 'careful'"):
        registry.update_model("sim-smart", {"aliases": []})
    registry.update_model("careful", {"fallbacks": []})
    registry.remove("sim-smart")
    assert "sim-smart" not in registry.models


# ---------------------------------------------------------------- providers


def test_providers(registry: Registry, store: Store, config) -> None:
    openai = ProviderConfig(name="openai", type="openai", api_key_env="OPENAI_API_KEY")
    assert registry.register_provider(openai) == 2
    assert registry.register_provider(openai) == 2
    with pytest.raises(ConflictError):
        registry.register_provider(openai.model_copy(update={"base_url": "http://x"}))
    assert registry.update_provider("openai", {"base_url": "http://127.0.0.1:9/v1"}) == 3
    with pytest.raises(InvalidRequestError, match="api_key_env"):
        registry.update_provider("openai", {"api_key_env": "sk-live-123!"})
    registry.register_model(ModelConfig(name="gpt", provider="openai"))

    with pytest.raises(ConflictError, match="used by 1 model"):
        registry.remove_provider("openai")
    registry.remove("gpt")
    registry.remove_provider("openai")
    with pytest.raises(NotFoundError):
        registry.remove_provider("openai")
    assert list(reopen(store, config).providers) == ["sim"]


# ---------------------------------------------------------------- snapshots


def test_snapshots_are_cached_per_version_and_never_change(registry: Registry) -> None:
    first = registry.snapshot()
    assert registry.snapshot() is first
    registry.register_model(new_model("extra"))
    second = registry.snapshot()
    assert second.version == first.version + 1
    assert "extra" in second.models and "extra" not in first.models


def test_a_change_the_store_refuses_is_not_applied(registry: Registry, store, monkeypatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(store, "save_registry_change", fail)
    with pytest.raises(ServiceUnavailableError, match="could not save"):
        registry.register_model(new_model("lost"))
    assert registry.version == 1
    assert "lost" not in registry.models


def test_in_memory_registry() -> None:
    registry = Registry(providers=[ProviderConfig(name="sim", type="sim")])
    assert registry.register_model(new_model("a")) == 1
    assert registry.snapshot().resolve("a") is not None


# ---------------------------------------------------------------- live statistics


def test_stats_reach_snapshots_at_most_once_a_second(store: Store, config) -> None:
    clock = Clock()
    registry = Registry.open(store, config, clock=clock)
    start = registry.stats_version
    call = CallSample("sim-fast", "sim", True, 40.0, 10.0, at=clock.now)

    assert registry.record([call]) is True
    stats = registry.snapshot().stats_for("sim-fast")
    assert (stats.requests, stats.latency_p50_ms, stats.ttft_p99_ms) == (1, 40.0, 10.0)
    first = registry.stats_version
    assert first > start

    clock.now += 0.5
    assert registry.record([call]) is False  # throttled: published within the last second
    assert registry.snapshot().stats_for("sim-fast").requests == 1
    clock.now += 0.6
    assert registry.refresh_stats() is True
    assert registry.snapshot().stats_for("sim-fast").requests == 2
    assert registry.stats_version > first
    assert registry.snapshot().version == registry.version  # models untouched

    clock.now += 301  # the calls age out with no new traffic
    assert registry.refresh_stats() is True
    assert registry.snapshot().stats == {}
    assert registry.refresh_stats() is False


def test_stats_version_keeps_rising_across_restarts(store: Store, config) -> None:
    clock = Clock()
    registry = Registry.open(store, config, clock=clock)
    for _ in range(5):
        clock.now += 1
        registry.record([CallSample("sim-fast", "sim", True, 1.0, at=clock.now)])
    clock.now += 1
    assert Registry.open(store, config, clock=clock).stats_version > registry.stats_version


def test_stats_version_rises_across_a_restart_in_the_same_second(store: Store, config) -> None:
    # Health and stats published several times within one second, then the actor restarted
    # a few milliseconds later: the new one still starts above the old one's last version.
    clock = Clock()
    registry = Registry.open(store, config, clock=clock)
    for state in ("healthy", "unhealthy", "healthy"):
        registry.set_health({"sim": ProviderHealth(state, clock.now, 1.0)})
    registry.record([CallSample("sim-fast", "sim", True, 1.0, at=clock.now)])
    clock.now += 0.005
    assert Registry.open(store, config, clock=clock).stats_version > registry.stats_version


def test_stats_of_a_removed_model_go(registry: Registry) -> None:
    registry.record([CallSample("sim-next", "sim", False, 5.0)])
    assert registry.snapshot().stats_for("sim-next").errors == 1
    registry.remove("sim-next")
    assert "sim-next" not in registry.snapshot().stats
