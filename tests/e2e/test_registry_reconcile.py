"""An operator restarts the gateway with another config file on the same state: the registry
serves exactly the new file's models plus what admins added, and `models diff` said so first."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.e2e.conftest import llmgw

pytestmark = pytest.mark.ray

ADMIN_KEY = "sk-llmgw-e2e-reconcile-admin-0123456789abcdef"
HELLO = [{"role": "user", "content": "Classify this"}]
SIM = {"name": "sim", "type": "sim", "sim": {"output_tokens": 4}}


def config(tmp: Path, name: str, models: list[dict], replicas: int = 1) -> Path:
    path = tmp / name
    data = {
        "providers": [SIM],
        "models": models,
        "store": {"url": f"sqlite:///{tmp / 'registry.db'}"},
        "deployments": {"Ingress": {"num_replicas": replicas}},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def status(gateway: str) -> dict:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.get(f"{gateway}/admin/status", headers=headers, timeout=30).json()["registry"]


def test_restart_with_another_config(
    ray_cluster: None,
    serve_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMGW_ADMIN_KEY", ADMIN_KEY)
    gateway = f"http://127.0.0.1:{serve_port}"
    a = config(
        tmp_path,
        "a.yaml",
        [
            {"name": "shared", "provider": "sim", "use_cases": ["chat"]},
            {"name": "sim-classifier", "provider": "sim", "use_cases": ["classification"]},
        ],
    )
    b = config(
        tmp_path,
        "b.yaml",
        [
            {"name": "shared", "provider": "sim", "use_cases": ["chat"]},
            {"name": "newcomer", "provider": "sim", "use_cases": ["summarization"]},
        ],
        replicas=2,
    )
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=ADMIN_KEY, max_retries=0)
    llmgw("up", "--config", str(a), "--port", str(serve_port), "--detach")
    try:
        llmgw("models", "add", "name=mine", "provider=sim", "use_cases=[classification]")
        shown = llmgw("models", "show", "mine").stdout
        assert "kind: admin" in shown
        assert status(gateway)["origins"] == {"admin": 1, "config": 2}

        diff = llmgw("models", "diff", "--config", str(b), check=False)
        assert diff.returncode == 2, diff.stdout + diff.stderr
        assert "+ add       newcomer" in diff.stdout
        assert "- remove    sim-classifier" in diff.stdout
        assert "mine" not in diff.stdout
        same = llmgw("models", "diff", "--config", str(a), check=False)
        assert same.returncode == 0 and "no changes" in same.stdout
        version = status(gateway)["version"]
    finally:
        llmgw("down", "--keep-ray")

    llmgw("up", "--config", str(b), "--port", str(serve_port), "--detach")
    try:
        assert sorted(m.id for m in client.models.list().data) == ["mine", "newcomer", "shared"]
        reply = client.chat.completions.create(
            model="auto", messages=HELLO, extra_body={"use_case": "classification"}
        )
        assert reply.model == "mine"
        registry = status(gateway)
        # Two ingress replicas and a new registry actor: one reconciliation, one version.
        assert registry["version"] == version + 1
        assert registry["config"]["path"] == str(b.resolve())
        assert registry["origins"] == {"admin": 1, "config": 2}
        after = llmgw("models", "diff", "--config", str(b), check=False)
        assert after.returncode == 0, after.stdout
        listing = json.loads(
            httpx.get(
                f"{gateway}/admin/models", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            ).text
        )
        origins = {m["name"]: m["origin"]["kind"] for m in listing["data"]}
        assert origins == {"mine": "admin", "newcomer": "config", "shared": "config"}
    finally:
        llmgw("down", "--keep-ray")
