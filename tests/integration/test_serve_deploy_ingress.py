"""`serve deploy serve_config.yaml` in the ingress HTTP mode, as its comments tell ops to: the
shipped file with `proxy_location: Disabled` and its commented `listen` and Ingress `policy`
lines uncommented, on a Ray cluster of its own with the environment the file asks for there.
The ingress replica answers the official SDK on the port itself, Serve runs no proxy, and
`serve status` calls the app healthy.

Serve's proxy setting is the cluster's, fixed when Serve first starts, so this module starts a
cluster of its own (its own ports and temp dir) and never touches the test session's Ray.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from deployments.local_ray import INGRESS_ENV
from tests.integration.test_serve_deploy import (
    HELLO,
    KEY,
    ROOT,
    Cluster,
    _healthy,
    _status,
    _wait,
    one_node_cluster,
)
from tests.openapi import validate


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # The nodes' environment serve_config.yaml asks for in this mode (no HAProxy).
    env = INGRESS_ENV | {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    with one_node_cluster("llmgw-si-", env) as cluster:
        yield cluster


def ingress_mode_config(cluster: Cluster) -> Path:
    """serve_config.yaml with the three changes its comments name for the ingress mode, made
    in its own text (so the commented lines themselves are what is tested), then pointed at a
    sim config and this cluster's port."""
    text = (ROOT / "serve_config.yaml").read_text()
    text, proxies = re.subn(r"(?m)^proxy_location: EveryNode$", "proxy_location: Disabled", text)
    text, uncommented = re.subn(r"(?m)^(\s*)# ((?:listen|policy): .*?)(\s+#.*)?$", r"\1\2", text)
    assert (proxies, uncommented) == (1, 2), "serve_config.yaml's ingress-mode lines moved"
    config: dict[str, Any] = yaml.safe_load(text)
    (app,) = config["applications"]
    assert app["args"]["listen"] == "0.0.0.0:8000"
    (ingress,) = [d for d in app["deployments"] if d["name"] == "Ingress"]
    assert ingress["autoscaling_config"]["policy"]["policy_function"]
    gateway = cluster.temp / "gateway.yaml"
    gateway.write_text(
        yaml.safe_dump(
            {
                "providers": [{"name": "sim", "type": "sim", "sim": {"output_tokens": 4}}],
                "models": [{"name": "sim-fast", "provider": "sim"}],
                "store": {"url": f"sqlite:///{cluster.temp / 'llmgw.db'}"},
            }
        )
    )
    app["args"].update(config=str(gateway), listen=f"127.0.0.1:{cluster.http_port}")
    path = cluster.temp / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_serve_deploy_in_the_ingress_http_mode(cluster: Cluster) -> None:
    done = cluster.cli("deploy", str(ingress_mode_config(cluster)), "-a", cluster.dashboard)
    assert done.returncode == 0, done.stderr[-2000:]

    def app() -> dict[str, Any]:
        return cluster.local.serve_details().get("applications", {}).get("llmgw") or {}

    _wait(lambda: _healthy(app(), 0), 300)
    assert _healthy(_status(cluster), 0)
    details = cluster.local.serve_details()
    # With RAY_SERVE_THROUGHPUT_OPTIMIZED=1 and direct ingress left on, Serve makes this
    # HeadOnly and its own server takes the port (checked by hand): hence the file's comment.
    assert details["proxy_location"] == "Disabled"
    assert not details.get("proxies"), details.get("proxies")

    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{cluster.http_port}/v1", api_key=KEY, max_retries=0
    )
    reply = client.chat.completions.with_raw_response.create(model="sim-fast", messages=HELLO)
    assert reply.http_response.headers["x-llmgw-model"] == "sim-fast"
    validate(reply.http_response.json(), "CreateChatCompletionResponse")
    stream = client.chat.completions.create(
        model="sim-fast", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"http://127.0.0.1:{cluster.http_port}/v1", api_key="sk-wrong", max_retries=0
        ).models.list()
