"""cluster/'s Serve configs place each deployment on nodes that exist in the same file, and
keep serve_config.yaml's per-replica settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from gateway.config import DEPLOYMENT_NAMES

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"


def _kuberay() -> tuple[dict[str, Any], list[dict[str, float]]]:
    """The RayService's Serve config, and the custom resources each pod group advertises."""
    service = yaml.safe_load((CLUSTER / "kuberay-rayservice.yaml").read_text())
    groups = [service["spec"]["rayClusterConfig"]["headGroupSpec"]]
    groups += service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    # KubeRay passes rayStartParams.resources to `ray start --resources` as a quoted JSON.
    advertised = [
        json.loads(json.loads(group["rayStartParams"].get("resources", '"{}"'))) for group in groups
    ]
    return yaml.safe_load(service["spec"]["serveConfigV2"]), advertised


def _launcher() -> tuple[dict[str, Any], list[dict[str, float]]]:
    """cluster/serve-multinode.yaml, and the resources the launcher's nodes start with."""
    launcher = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    advertised = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = " ".join(launcher[key])
        found = re.findall(r"--resources='([^']*)'", starts)
        assert len(found) == 1, f"cluster/ray-cluster.yaml: {key} needs one --resources"
        advertised.append(json.loads(found[0]))
    return yaml.safe_load((CLUSTER / "serve-multinode.yaml").read_text()), advertised


CONFIGS = {"kuberay-rayservice.yaml": _kuberay, "serve-multinode.yaml": _launcher}


def _deployments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (app,) = config["applications"]
    return {d["name"]: d for d in app["deployments"]}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_deployment_lands_on_a_node_group_that_exists(name: str) -> None:
    config, advertised = CONFIGS[name]()
    schema = ServeDeploySchema.model_validate(config)
    assert schema.applications[0].import_path == "deployments.app:build_app"
    placed: dict[str, str] = {}
    for deployment in _deployments(config).values():
        resources = deployment.get("ray_actor_options", {}).get("resources", {})
        assert len(resources) == 1, f"{name}: {deployment['name']} asks for no custom resource"
        ((resource, amount),) = resources.items()
        assert any(resource in node for node in advertised), (
            f"{name}: {deployment['name']} asks for '{resource}', which no node advertises"
        )
        assert 0 < amount <= min(n[resource] for n in advertised if resource in n) / 10
        placed[deployment["name"]] = resource
    # The point of the placement: pools do not share nodes with the ingress.
    assert "Ingress" in placed
    pools = {resource for deployment, resource in placed.items() if deployment.endswith("Pool")}
    assert pools and placed["Ingress"] not in pools, placed


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_deployments_are_the_apps_and_keep_serve_config_settings(name: str) -> None:
    shipped = _deployments(yaml.safe_load((ROOT / "serve_config.yaml").read_text()))
    config, _ = CONFIGS[name]()
    for deployment in _deployments(config).values():
        assert deployment["name"] in DEPLOYMENT_NAMES, f"{name}: {deployment['name']}"
        base = shipped.get(deployment["name"])
        if base is None:
            continue  # a pool serve_config.yaml leaves out (its config uses no such provider)
        assert deployment.get("max_ongoing_requests") == base.get("max_ongoing_requests"), name
        if name == "serve-multinode.yaml":
            # Machines of serve_config.yaml's shape: the same CPU per replica.
            cpus = deployment["ray_actor_options"].get("num_cpus")
            assert cpus == base.get("ray_actor_options", {}).get("num_cpus"), name
