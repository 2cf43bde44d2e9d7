"""A multi-node Ray cluster on one machine: a head and worker nodes as separate `ray start`
processes, each with its own temp dir, ports and resources, and nothing shared with the test
session's Ray or any other cluster here.

Nodes run `ray start --block` in a session of their own, so each node's processes (GCS,
raylet, agents, workers) are that process's descendants or session members: a node is stopped,
or killed as a machine dies, by signalling exactly those, never by `ray stop` (which stops
every cluster on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# `ray start`, except that it waits up to 150 s (not Ray's fixed 30) for its raylet to register:
# on a machine other test runs keep busy, a node's agent alone can take longer to start.
RAY_START = [
    sys.executable,
    "-c",
    """
import sys, time
import ray._private.services as services

registered = services.get_node

def get_node(*args, **kwargs):
    deadline = time.monotonic() + 150
    while True:
        try:
            return registered(*args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

services.get_node = get_node
from ray.scripts.scripts import main
sys.argv[0] = "ray"
main()
""",
    "start",
]
# Ray's default worker port range; none of the ports chosen here may fall in it.
_WORKER_PORTS = range(10002, 20000)
# Variables of the test session's own Ray and Serve (its address, its HAProxy's files and
# side ports): a node inheriting them would join or collide with that cluster.
_SESSION_PREFIXES = ("RAY_ADDRESS", "RAY_SERVE_HAPROXY_", "RAY_SERVE_FALLBACK_PROXY_")


def free_port() -> int:
    """A port free now, outside Ray's worker port range (the kernel's ephemeral range here)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _WORKER_PORTS:
            return port


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, session id, start time in clock ticks), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    return table


def node_processes(pid: int) -> set[tuple[int, int]]:
    """The processes of the node whose `ray start` is `pid`, each as (pid, start time): its
    session (which keeps a process orphaned by a crashed parent) and every descendant. A pid
    the kernel later reuses for someone else's process does not match its start time."""
    table = _processes()
    found = {(p, started) for p, (_, sid, started) in table.items() if sid == pid}
    found |= {(pid, table[pid][2])} if pid in table else set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, started) in table.items():
            if ppid == parent:
                found.add((child, started))
                todo.append(child)
    return found


def signal_processes(members: set[tuple[int, int]], sig: signal.Signals) -> None:
    """Signal each (pid, start time) still running as that same process."""
    table = _processes()
    for pid, started in members:
        if pid in table and table[pid][2] == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


@dataclass
class Node:
    """One `ray start --block` process and what identifies its node."""

    name: str
    command: list[str]
    resources: dict[str, float]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    sessions: list[int] = field(default_factory=list)  # each `ray start`'s session id

    def launch(self, env: dict[str, str], cwd: Path) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                # A session of its own: how its processes are found even once orphaned.
                start_new_session=True,
            )
        self.sessions.append(self.process.pid)

    def processes(self) -> set[tuple[int, int]]:
        return set().union(*(node_processes(pid) for pid in self.sessions))

    def kill(self) -> set[tuple[int, int]]:
        """SIGKILL the node's whole process tree at once, as when its machine dies."""
        tree = self.processes()
        signal_processes(tree, signal.SIGKILL)
        return tree


@dataclass
class LocalCluster:
    """Head and workers started by this test; `stop()` ends only them."""

    root: Path
    env: dict[str, str]
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, extra_env: dict[str, str]) -> LocalCluster:
        """A cluster rooted at `root`, its nodes started with `extra_env` over a clean env."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SESSION_PREFIXES)}
        env.update(
            {
                "RAY_USAGE_STATS_ENABLED": "0",
                # Token authentication, with a token of this cluster's own (the default would
                # read and write ~/.ray/auth_token, which every local cluster shares).
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(32),
                # `stop()` ends every process at once: a `ray start --block` given SIGTERM
                # would first drain its node (default up to 30 s, its GCS already stopping)
                # and outlast stop()'s 10 s wait; without the drain it exits in ~4 s.
                "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            }
        )
        env.update(extra_env)
        return cls(root=root, env=env)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(self, num_cpus: int, resources: dict[str, float]) -> Node:
        """The head: GCS, dashboard (Serve's REST API needs it) and a raylet."""
        args = [
            "--head",
            f"--port={self.gcs_port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
        ]
        return self._start("head", args, num_cpus, resources)

    def wait_for_head(self, timeout_s: float = 60) -> None:
        """Until the head's GCS takes connections (workers may join from then on)."""
        deadline = time.monotonic() + timeout_s
        while True:
            head = self.nodes[0]
            if head.process and head.process.poll() is not None:
                raise RuntimeError(f"the head exited: {head.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.gcs_port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def start_worker(self, name: str, num_cpus: int, resources: dict[str, float]) -> Node:
        """A worker node joining the head."""
        return self._start(name, [f"--address={self.address}"], num_cpus, resources)

    def _start(
        self, name: str, args: list[str], num_cpus: int, resources: dict[str, float]
    ) -> Node:
        temp = self.root / name
        temp.mkdir(parents=True, exist_ok=True)
        command = [
            *RAY_START,
            *args,
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp}",
            f"--num-cpus={num_cpus}",
            f"--resources={json.dumps(resources)}",
            "--object-store-memory=100000000",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
            # It streams logs to drivers; there are none here, and the machine is shared.
            "--include-log-monitor=false",
        ]
        node = Node(name, command, resources, self.root / f"{name}.log")
        node.launch(self.env, self.root)
        self.nodes.append(node)
        return node

    def http(self, timeout: float = 10) -> httpx.Client:
        """A client of the dashboard, with the cluster's token."""
        token = self.env["RAY_AUTH_TOKEN"]
        headers = {"authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.dashboard, headers=headers, timeout=timeout)

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The state API's view of the live nodes (id, resources)."""
        with self.http() as http:
            answer = http.get("/api/v0/nodes", params={"limit": 100, "detail": "true"})
        answer.raise_for_status()
        rows = answer.json()["data"]["result"]["result"]
        return [row for row in rows if row["state"] == "ALIVE"]

    def wait_for_nodes(self, timeout_s: float = 180) -> None:
        """Until every started node is alive; records each node's id by its resources."""
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                if node.process and node.process.poll() is not None:
                    raise RuntimeError(f"{node.name} exited: {node.log.read_text()[-2000:]}")
            try:
                alive = self.alive_nodes()
            except httpx.HTTPError:
                alive = []
            for node in self.nodes:
                for row in alive:
                    if all(row["resources_total"].get(k) == v for k, v in node.resources.items()):
                        node.node_id = row["node_id"]
            if all(node.node_id for node in self.nodes):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes not all up: {[(n.name, n.node_id) for n in self.nodes]}")
            time.sleep(0.5)

    def node(self, node_id: str) -> Node:
        return next(node for node in self.nodes if node.node_id == node_id)

    def node_name(self, node_id: str) -> str:
        """The name this cluster gave the node with `node_id` (the id itself if not ours)."""
        return next((node.name for node in self.nodes if node.node_id == node_id), node_id)

    def actors(self) -> list[dict[str, Any]]:
        """The live actors: class, name, node."""
        with self.http() as http:
            answer = http.get(
                "/api/v0/actors",
                params={
                    "limit": 1000,
                    "detail": "true",
                    "filter_keys": "state",
                    "filter_predicates": "=",
                    "filter_values": "ALIVE",
                },
            )
        answer.raise_for_status()
        return answer.json()["data"]["result"]["result"]

    def serve_deploy(self, config: dict[str, Any]) -> None:
        """Deploy a Serve config (serve_config.yaml's shape) through the head's dashboard, the
        REST call `serve deploy` and KubeRay's RayService make."""
        with self.http(timeout=60) as http:
            http.put("/api/serve/applications/", json=config).raise_for_status()

    def serve_details(self) -> dict[str, Any]:
        """Serve's REST view: applications, deployments and each replica's node."""
        with self.http() as http:
            answer = http.get("/api/serve/applications/")
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        """End every node this cluster started: SIGTERM the trees, then SIGKILL what is left."""
        members = set().union(*(node.processes() for node in self.nodes))
        signal_processes(members, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for node in self.nodes:
            if node.process:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # Workers started during the wait are in the trees of the nodes still running.
        for node in self.nodes:
            members |= node.processes()
        signal_processes(members, signal.SIGKILL)
        for node in self.nodes:
            if node.process:
                node.process.wait(timeout=10)
