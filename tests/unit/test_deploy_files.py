"""The files ops deploy with are valid Serve configs naming deployments the app has."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from gateway.config import DEPLOYMENT_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _serve_configs() -> list[tuple[str, dict]]:
    rayservice = yaml.safe_load((ROOT / "cluster/kuberay-rayservice.yaml").read_text())
    return [
        ("serve_config.yaml", yaml.safe_load((ROOT / "serve_config.yaml").read_text())),
        ("cluster/kuberay-rayservice.yaml", yaml.safe_load(rayservice["spec"]["serveConfigV2"])),
    ]


@pytest.mark.parametrize(("name", "config"), _serve_configs(), ids=lambda v: str(v)[:40])
def test_serve_config_is_valid_and_names_real_deployments(name: str, config: dict) -> None:
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "deployments.app:build_app", name
    for deployment in app.deployments:
        assert deployment.name in DEPLOYMENT_NAMES, f"{name}: {deployment.name}"


def test_the_default_serve_config_builds_the_app() -> None:
    from deployments.app import build_app

    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    app = build_app(config["applications"][0]["args"])
    assert app is not None
