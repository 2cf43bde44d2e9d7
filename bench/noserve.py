"""llmgw's own request path with no Serve data plane: the floor the hot-path targets measure
Serve's share against (issue 11). Not a deployable mode.

The same FastAPI app, pipeline, routing, invoker and openai adapter a Serve replica runs
(`gateway.server.local`: registry in memory, usage and audit records kept in lists, no store
writes), under one plain uvicorn process. Everything a Serve gateway adds on the hot path is
missing here: HAProxy, Serve's replica request handling, the handle hop to a pool, the pool's
request handling, the usage writer.

    .venv/bin/python bench/noserve.py --upstream http://127.0.0.1:PORT/v1 --port 8001
    (the bench runs it as the gateway `llmgw-noserve`: bench/run.py --only llmgw-noserve,...)

With `--no-sdk` the openai adapter skips the SDK's request path (bench/nosdk.py: an experiment
for a decision, not a mode); the bench runs that as `llmgw-noserve-nosdk`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from gateway.auth import hash_key
from gateway.config import GatewayConfig
from gateway.server.api import create_api
from gateway.server.local import local_gateway

MODEL = "bench-model"


def app(upstream: str, admin_key: str):
    """The gateway's HTTP app over one openai-type provider at `upstream`."""
    provider = {"name": "mock", "type": "openai", "base_url": upstream}
    config = GatewayConfig.model_validate(
        {
            "providers": [provider | {"api_key_env": "BENCH_MOCK_KEY"}],
            "models": [{"name": MODEL, "provider": "mock", "upstream": MODEL}],
        }
    )
    return create_api(local_gateway(config, hash_key(admin_key)).runtime, request_ids=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="the mock's base URL, ending in /v1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-sdk", action="store_true", help="the experiment in bench/nosdk.py")
    a = ap.parse_args()
    if a.no_sdk:
        import nosdk

        nosdk.install()
    os.environ.setdefault("BENCH_MOCK_KEY", "sk-bench")
    uvicorn.run(
        app(a.upstream, os.environ["LLMGW_ADMIN_KEY"]),
        host="127.0.0.1",
        port=a.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
