"""`llmgw up` where things are not as it expects: a Serve already listening elsewhere, a port
another process holds, a Ray it started and could not use. Each through the CLI, as a user
runs it, and each leaves nothing behind."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from deployments.local_ray import port_free
from tests.conftest import serve_with_proxy
from tests.e2e.conftest import LLMGW, llmgw
from tests.e2e.private_ray import KEY, free_port, private_ray, ray_processes, run

pytestmark = pytest.mark.ray
__all__ = ["private_ray"]  # a fixture the tests here use

CONFIG = Path(__file__).with_name("gateway.yaml")


def test_up_refuses_a_port_another_process_holds_before_starting_ray(
    private_ray: dict[str, str],
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("up", "--port", str(port), "--detach", env=private_ray)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Starting a local Ray" not in result.stdout
    assert not ray_processes(private_ray["RAY_TMPDIR"])


def test_a_ray_up_started_and_could_not_use_is_stopped(private_ray: dict[str, str]) -> None:
    # The port is free when `up` checks it and taken (by a listener that never answers) while
    # its new Ray starts: Serve cannot serve there, and `up` must not leave that Ray behind.
    port = free_port()
    args = ("up", "--config", str(CONFIG), "--port", str(port), "--timeout", "20", "--detach")
    up = subprocess.Popen(
        [*LLMGW, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=private_ray
    )
    assert up.stdout is not None
    first = up.stdout.readline()
    assert "Starting a local Ray" in first, first + up.communicate(timeout=60)[1]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        out, err = up.communicate(timeout=300)
    assert up.returncode == 1, out + err
    assert "llmgw is up" not in out
    assert "Stopped the local Ray" in err
    assert not ray_processes(private_ray["RAY_TMPDIR"])
    assert not (Path(private_ray["LLMGW_HOME"]) / "gateway.json").exists()


def test_up_on_a_cluster_whose_serve_listens_elsewhere(
    ray_cluster: None, serve_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("LLMGW_ADMIN_KEY", KEY)
    serve_with_proxy(serve_port)
    real = f"http://127.0.0.1:{serve_port}"
    other = free_port()
    refused = llmgw("up", "--config", str(CONFIG), "--port", str(other), "--detach", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"already listens on {real}" in refused.stderr
    assert f"127.0.0.1:{other}" not in refused.stdout
    # Asked for no address, it deploys where Serve listens and says so: the URL it prints works.
    result = llmgw("up", "--config", str(CONFIG), "--detach")
    try:
        assert f"already listens on {real}" in result.stdout
        assert f"llmgw is up at {real}" in " ".join(result.stdout.split())
        status = llmgw("status")
        assert "llmgw" in status.stdout and "Ingress" in status.stdout
    finally:
        llmgw("down", "--keep-ray")


def test_the_console_script_is_the_deployments_cli() -> None:
    result = llmgw("--help")
    for command in ("up", "down", "status", "models", "tenants", "keys", "usage", "eval"):
        assert f" {command} " in result.stdout, command


def test_up_in_ingress_mode_serves_from_the_ingress_replicas_and_down_stops_all(
    private_ray: dict[str, str],
) -> None:
    import openai

    port = free_port()
    args = ("up", "--config", str(CONFIG), "--port", str(port), "--detach")
    result = run(*args, "--http-mode", "ingress", env=private_ray)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"llmgw is up at http://127.0.0.1:{port}" in " ".join(result.stdout.split())
        # The port is held by an ingress replica (a Ray worker), not by a Serve proxy.
        owner = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
        assert "ServeRepli" in owner.stdout, owner.stdout
        assert "haproxy" not in owner.stdout and "ProxyActor" not in owner.stdout
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        models = [m.id for m in client.models.list()]
        answer = client.chat.completions.create(
            model=models[0], messages=[{"role": "user", "content": "Hello"}]
        )
        assert answer.choices[0].message.content
        status = run("status", env=private_ray)
        assert "Ingress" in status.stdout, status.stdout + status.stderr
    finally:
        down = run("down", env=private_ray)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not ray_processes(private_ray["RAY_TMPDIR"])
    assert port_free("127.0.0.1", port)  # the replicas let the port go


def test_up_in_ingress_mode_refuses_a_cluster_whose_serve_runs_a_proxy(
    ray_cluster: None, serve_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("LLMGW_ADMIN_KEY", KEY)
    serve_with_proxy(serve_port)
    args = ("up", "--config", str(CONFIG), "--http-mode", "ingress", "--detach")
    refused = llmgw(*args, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "runs its own HTTP proxy" in " ".join(refused.stderr.split())


def test_up_refuses_an_unknown_http_mode(tmp_path: Path) -> None:
    result = run("up", "--http-mode", "fastest", env={"LLMGW_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "--http-mode: one of auto, production, default, ingress" in result.stderr
    assert "Starting a local Ray" not in result.stdout
