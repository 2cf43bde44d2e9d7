"""The files ops deploy with are valid Serve configs naming deployments the app has, and
`serve build` of the app lists exactly the deployments serve_config.yaml sets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from deployments.app import used_deployments
from deployments.live_settings import SETTINGS, check_serve_config
from gateway.config import DEPLOYMENT_NAMES, parse_config

ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = yaml.safe_load((ROOT / "serve_config.yaml").read_text())


def _serve_configs() -> list[tuple[str, dict]]:
    rayservice = yaml.safe_load((ROOT / "cluster/kuberay-rayservice.yaml").read_text())
    return [
        ("serve_config.yaml", SERVE_CONFIG),
        ("cluster/kuberay-rayservice.yaml", yaml.safe_load(rayservice["spec"]["serveConfigV2"])),
    ]


@pytest.mark.parametrize(("name", "config"), _serve_configs(), ids=lambda v: str(v)[:40])
def test_serve_config_is_valid_and_names_real_deployments(name: str, config: dict) -> None:
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "deployments.app:build_app", name
    for deployment in app.deployments:
        assert deployment.name in DEPLOYMENT_NAMES, f"{name}: {deployment.name}"
    assert check_serve_config(config) == [], name


@pytest.mark.parametrize(
    ("name", "config"),
    [*_serve_configs(), ("cluster/serve-multinode.yaml", None)],
    ids=lambda v: str(v)[:40],
)
def test_every_pool_scales_on_its_side_channel_calls_too(name: str, config: dict | None) -> None:
    # `autoscaling_config` here replaces the builder's whole: the policy must be named here.
    if config is None:
        config = yaml.safe_load((ROOT / name).read_text())
    (app,) = config["applications"]
    pools = [d for d in app["deployments"] if d["name"].endswith("Pool")]
    assert len(pools) == 6, name
    for pool in pools:
        policy = pool["autoscaling_config"]["policy"]["policy_function"]
        assert policy == "deployments.side_channel:autoscaling_policy", (name, pool["name"])


def test_the_default_serve_config_builds_the_app() -> None:
    from deployments.app import build_app

    app = build_app(SERVE_CONFIG["applications"][0]["args"])
    assert app is not None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """`serve build` of the default app, as an operator runs it, by deployment name."""
    out = tmp_path_factory.mktemp("build") / "built.yaml"
    # No provider credentials and no Ollama: the default config's sim models alone.
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.endswith(("_API_KEY", "_ENDPOINT")) or k.startswith("AWS_"))
    }
    env |= {"LLMGW_ADMIN_KEY": "sk-llmgw-build-0123456789abcdef012345"}
    env |= {"OLLAMA_HOST": "127.0.0.1:9"}
    serve = Path(sys.executable).with_name("serve")
    done = subprocess.run(
        [str(serve), "build", "deployments.app:app", "-o", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    config = yaml.safe_load(out.read_text())
    ServeDeploySchema.model_validate(config)
    return {d["name"]: d for d in config["applications"][0]["deployments"]}


def test_serve_build_lists_the_deployments_serve_config_sets(built: dict[str, dict]) -> None:
    shipped = {d["name"]: d for d in SERVE_CONFIG["applications"][0]["deployments"]}
    assert set(shipped) == set(built) == set(DEPLOYMENT_NAMES)
    for name, deployment in shipped.items():
        # The shipped file names every live setting, so an operator sees what can change.
        assert set(deployment["user_config"]) == set(built[name]["user_config"]), name
        assert set(deployment["user_config"]) == set(SETTINGS[name].model_fields), name


def test_unused_deployments_are_built_with_no_replicas(built: dict[str, dict]) -> None:
    # The default config uses the sim provider only, through the ingress (no Router).
    for name, deployment in built.items():
        if name in {"Ingress", "SimPool"}:
            assert "autoscaling_config" not in deployment, name
        else:
            scaling = deployment["autoscaling_config"]
            assert scaling["min_replicas"] == scaling["initial_replicas"] == 0, name


def _config(**extra: object) -> object:
    providers = [
        {"name": "sim", "type": "sim"},
        {"name": "oai", "type": "openai", "base_url": "http://127.0.0.1:9/v1"},
    ]
    models = [{"name": "m", "provider": "sim"}, {"name": "o", "provider": "oai"}]
    return parse_config({"providers": providers, "models": models, **extra})


def test_used_deployments_follow_providers_placement_and_inline() -> None:
    assert used_deployments(_config()) == {"Ingress", "SimPool", "OpenAIPool"}
    routed = _config(routing={"placement": "router"}, server={"inline_providers": ["sim"]})
    assert used_deployments(routed) == {"Ingress", "Router", "OpenAIPool"}


def test_a_bad_user_config_is_named_before_deploying(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    deployments["Ingress"]["user_config"]["log_level"] = "LOUD"
    deployments["OllamaPool"]["user_config"]["max_concurrent_calls"] = 0
    deployments["OllamaPool"]["user_config"]["bogus"] = 1
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "deployments.live_settings", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "deployments.Ingress.user_config.log_level" in done.stderr
    assert "deployments.OllamaPool.user_config.max_concurrent_calls" in done.stderr
    assert "deployments.OllamaPool.user_config.bogus" in done.stderr


def test_the_configs_deployments_section_sets_a_starting_user_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`llmgw up` has no serve_config.yaml: its live settings come from `deployments:`."""
    from ray.serve._private.build_app import build_app as build_deployments

    from deployments.app import build_app
    from gateway.config import ConfigError

    def built(user_config: dict) -> dict[str, dict]:
        path = tmp_path / "gateway.yaml"
        config = {
            "providers": [{"name": "sim", "type": "sim"}],
            "models": [{"name": "sim-fast", "provider": "sim"}],
            "deployments": {"SimPool": {"user_config": user_config}},
        }
        path.write_text(yaml.safe_dump(config))
        built = build_deployments(build_app({"config": str(path)}), name="llmgw")
        return {d.name: d for d in built.deployments}

    monkeypatch.setenv("LLMGW_ADMIN_KEY", "sk-llmgw-build-0123456789abcdef012345")
    deployments = built({"max_concurrent_calls": 3, "log_level": "DEBUG"})
    assert deployments["SimPool"].user_config["max_concurrent_calls"] == 3
    assert deployments["SimPool"].user_config["log_level"] == "DEBUG"
    assert deployments["OpenAIPool"].user_config["max_concurrent_calls"] is None
    with pytest.raises(
        ConfigError, match=r"deployments\.SimPool\.user_config\.max_concurrent_calls"
    ):
        built({"max_concurrent_calls": 0})
    with pytest.raises(ConfigError, match=r"deployments\.SimPool\.user_config\.no_such"):
        built({"no_such": 1})
