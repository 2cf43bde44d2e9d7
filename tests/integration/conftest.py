"""Integration: the gateway app deployed on the session's Ray Serve, one app per module."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import serve_with_proxy


@dataclass
class Deployed:
    url: str
    store_url: str


def hang_up_after_first_token(url: str, key: str, model: str, request_id: str) -> None:
    """Open a stream on the gateway at `url` and leave once its first token arrives."""
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "Hello"}], "stream": True},
        headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
    ) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                return


def usage_status(store_url: str, request_id: str, within_s: float) -> int | None:
    """The status the gateway recorded for a request, once its record is written."""
    engine = create_engine(store_url)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            status = conn.execute(
                text("select status from usage where request_id = :id"), {"id": request_id}
            ).scalar()
        if status is not None:
            return int(status)
        time.sleep(0.3)
    return None


@pytest.fixture(scope="module")
def serve_gateway(
    ray_cluster: None, serve_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[dict[str, Any]], Deployed]]:
    """Deploy `build_app` with a config (and a store of its own); the app and its actors are
    torn down at the end of the module."""
    from ray import serve

    from deployments.app import APP_NAME, build_app, teardown

    deployed: list[str] = []

    def deploy(config: dict[str, Any], listen: str | None = None) -> Deployed:
        """`listen`: the ingress replicas serve HTTP there themselves (`--http-mode ingress`)
        beside Serve's proxy, which the session's cluster keeps on `serve_port`."""
        home = tmp_path_factory.mktemp("gateway")
        store_url = f"sqlite:///{home / 'llmgw.db'}"
        config = {**config, "store": {"url": store_url}}
        path = Path(home / "gateway.yaml")
        path.write_text(yaml.safe_dump(config))
        # Torn down even if the deploy fails: a half-deployed app's actors (its registry
        # with its config) would otherwise serve the next module's app.
        deployed.append(str(home))
        serve_with_proxy(serve_port)
        serve.run(
            build_app({"config": str(path), "listen": listen}), name=APP_NAME, route_prefix="/"
        )
        return Deployed(f"http://{listen or f'127.0.0.1:{serve_port}'}", store_url)

    yield deploy
    if deployed:
        teardown()
