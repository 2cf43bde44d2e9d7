"""What one Serve handle hop costs by itself: an ingress-like deployment calls a no-op
deployment by handle, unary and streaming, against the same no-op called in its own process,
and over a side channel of the callee's own (a kept-alive TCP connection carrying
length-prefixed pickles, the replica found by its handle): the cost of the hop's transport
with Serve's request path left out.

Timed inside the calling replica (no HTTP, no driver on the clock), at 1 and 16 calls in
flight, with three payloads: the request as JSON bytes and a model reference (the lean
envelope), and the parsed request with both configs (what pools received before the lean
envelope). Serve's flags are read when Ray starts, so each flag set is one run of this script:

    .venv/bin/python bench/hop_cost.py                                      # Serve's defaults
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 .venv/bin/python bench/hop_cost.py     # `llmgw up` prod

`--pyspy DIR` records both replicas with py-spy during the c=16 unary hop phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello in five words, please, and nothing else."},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}


def payloads() -> dict[str, Any]:
    """The three things a hop may carry, built once in the caller."""
    from gateway.config import ModelConfig, ProviderConfig
    from gateway.wire import ChatCompletionRequest

    body = json.dumps(CHAT).encode()
    provider = ProviderConfig(name="openai", type="openai", base_url="http://127.0.0.1:1/v1")
    model = ModelConfig(name="gpt-4o-mini", provider="openai", capabilities=["chat", "streaming"])
    return {
        "none": None,
        "lean": ("chat", "openai", "gpt-4o-mini", 7, body),
        "parsed": (provider, ChatCompletionRequest.model_validate(CHAT), model),
    }


def pickle_cost(rounds: int = 2000) -> dict[str, float]:
    """µs to pickle and unpickle each payload once: the serialisation a hop adds both ways."""
    out = {}
    for name, payload in payloads().items():
        start = time.perf_counter()
        for _ in range(rounds):
            pickle.loads(pickle.dumps(payload))
        out[name] = (time.perf_counter() - start) / rounds * 1e6
        out[f"{name}_bytes"] = len(pickle.dumps(payload))
    return out


def summary(samples_s: list[float], wall_s: float) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3),
        "calls_per_s": round(len(ms) / wall_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per phase")
    parser.add_argument("--rounds", type=int, default=3, help="repeat every phase this often")
    parser.add_argument("--chunks", type=int, default=20, help="items per streamed call")
    parser.add_argument("--pyspy", type=Path, default=None, help="py-spy both replicas here")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="both deployments with Serve's per-request access log off",
    )
    parser.add_argument(
        "--handle",
        choices=["as-created", "grpc", "grpc-pickle"],
        default="as-created",
        help="the caller's handle: as the deploying process made it (by reference unless "
        "RAY_SERVE_THROUGHPUT_OPTIMIZED was set there), Serve's gRPC path, or that with "
        "plain pickle instead of cloudpickle",
    )
    parser.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=None,
        help="print a markdown table of these runs' output (median over rounds) and exit",
    )
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return

    import ray
    from ray import serve

    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.1}, "max_ongoing_requests": 2000}
    if args.no_access_log:
        options["logging_config"] = {"enable_access_log": False}

    @serve.deployment(**options)
    class Noop:
        """Answers at once: whatever the hop costs is all there is."""

        async def call(self, payload: Any) -> bytes:
            return b'{"ok":true}'

        async def stream(self, payload: Any, chunks: int) -> Any:
            for _ in range(chunks):
                yield b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'

        def pid(self) -> int:
            return os.getpid()

        def cpu_s(self) -> float:
            return time.process_time()

        async def listen(self) -> int:
            """Start the socket side channel on this replica's loop; its port."""
            if getattr(self, "_server", None) is None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            return self._server.sockets[0].getsockname()[1]

        async def _serve(self, reader: Any, writer: Any) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    kind, payload, chunks = pickle.loads(await _read_frame(reader))
                    if kind == "call":
                        writer.write(_frame(await self.call(payload)))
                    else:
                        async for item in self.stream(payload, chunks):
                            writer.write(_frame(item))
                        writer.write(_frame(b""))
                    await writer.drain()

    @serve.deployment(**options)
    class Caller:
        """The ingress's side: the same call by handle or in its own process, timed here."""

        def __init__(self, noop: Any, handle: str) -> None:
            if handle != "as-created":
                noop = noop.options(_by_reference=False)
            if handle == "grpc-pickle":
                noop = noop.options(request_serialization="pickle", response_serialization="pickle")
            self.handle = noop
            self.streams = noop.options(stream=True)
            self.local = Noop.func_or_class()
            self.payloads = payloads()

        def pid(self) -> int:
            return os.getpid()

        async def _socket(self) -> tuple[Any, Any]:
            """A kept-alive connection to the callee's side channel (one per call in flight,
            as HTTP/1.1 keep-alive would have it)."""
            if not hasattr(self, "_idle"):
                self._idle: list[tuple[Any, Any]] = []
                self._port = await self.handle.listen.remote()
            if self._idle:
                return self._idle.pop()
            return await asyncio.open_connection("127.0.0.1", self._port)

        async def _one(self, mode: str, payload: Any, chunks: int) -> None:
            if mode in ("socket", "socket-stream"):
                reader, writer = await self._socket()
                kind = "call" if mode == "socket" else "stream"
                writer.write(_frame(pickle.dumps((kind, payload, chunks))))
                if kind == "call":
                    await _read_frame(reader)
                else:
                    while await _read_frame(reader):
                        pass
                self._idle.append((reader, writer))
            elif mode == "local":
                await self.local.call(payload)
            elif mode == "hop":
                await self.handle.call.remote(payload)
            elif mode == "local-stream":
                async for _ in self.local.stream(payload, chunks):
                    pass
            else:
                async for _ in self.streams.stream.remote(payload, chunks):
                    pass

        async def phase(
            self, mode: str, payload_name: str, calls: int, concurrency: int, chunks: int
        ) -> dict[str, float]:
            if mode == "idle":
                # What the two processes burn doing nothing, per second: the floor under
                # the per-call CPU figures.
                callee_cpu = await self.handle.cpu_s.remote()
                cpu = time.process_time()
                await asyncio.sleep(5.0)
                callee = await self.handle.cpu_s.remote() - callee_cpu
                return {
                    "caller_cpu_pct": round((time.process_time() - cpu) / 5.0 * 100, 1),
                    "callee_cpu_pct": round(callee / 5.0 * 100, 1),
                }
            payload = self.payloads[payload_name]
            samples: list[float] = []
            remaining = calls

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    start = time.perf_counter()
                    await self._one(mode, payload, chunks)
                    samples.append(time.perf_counter() - start)

            for _ in range(20):  # warm the path (routing state, connections)
                await self._one(mode, payload, chunks)
            callee_cpu = await self.handle.cpu_s.remote()
            cpu, start = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            row = summary(samples, time.perf_counter() - start)
            # CPU per call in each process (all its threads): what the hop costs whatever
            # else the machine runs, unlike wall-clock latency.
            row["caller_cpu_us"] = round((time.process_time() - cpu) / calls * 1e6, 1)
            callee = await self.handle.cpu_s.remote() - callee_cpu
            row["callee_cpu_us"] = round(callee / calls * 1e6, 1)
            return row

    temp = tempfile.mkdtemp(prefix="llmgw-hop-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp)
    serve.start(http_options={"location": "NoServer"})
    serve.run(Caller.bind(Noop.bind(), args.handle), name="hopcost", route_prefix=None)
    try:
        # Under RAY_SERVE_THROUGHPUT_OPTIMIZED a handle's router runs on the caller's own
        # event loop, so even the driver calls from inside one.
        results = asyncio.run(_drive(args))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        # The driver's handles belonged to that loop, now closed: Serve's shutdown may say so.
        with contextlib.suppress(RuntimeError):
            serve.shutdown()
        ray.shutdown()


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


async def _read_frame(reader: Any) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big")
    return await reader.readexactly(size) if size else b""


PLAN = [
    ("idle", "none", 0),
    ("local", "lean", 1),
    ("hop", "none", 1),
    ("hop", "lean", 1),
    ("hop", "parsed", 1),
    ("socket", "lean", 1),
    ("local", "lean", 16),
    ("hop", "lean", 16),
    ("hop", "parsed", 16),
    ("socket", "lean", 16),
    ("local-stream", "lean", 1),
    ("hop-stream", "lean", 1),
    ("hop-stream", "lean", 16),
    ("socket-stream", "lean", 16),
]


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    from ray import serve

    caller = serve.get_app_handle("hopcost")
    pids = {
        "caller": await caller.pid.remote(),
        "noop": await serve.get_deployment_handle("Noop", "hopcost").pid.remote(),
    }
    flags = {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")}
    flags["access_log"] = "off" if args.no_access_log else "on"
    flags["handle"] = args.handle
    results: dict[str, Any] = {"flags": flags, "pickle_us": pickle_cost(), "phases": []}
    print(json.dumps({"flags": flags, "pickle_us": results["pickle_us"]}), flush=True)
    for round_ in range(args.rounds):
        for mode, payload, concurrency in PLAN:
            spy = None
            if args.pyspy and round_ == 0 and (mode, payload, concurrency) == ("hop", "lean", 16):
                spy = _pyspy(args.pyspy, pids)
            calls = args.calls * (4 if spy else 1)
            row = await caller.phase.remote(mode, payload, calls, concurrency, args.chunks)
            for proc in spy or ():
                await asyncio.to_thread(proc.wait, 60)
            row.update(round=round_, mode=mode, payload=payload, concurrency=concurrency)
            results["phases"].append(row)
            print(json.dumps(row), flush=True)
    return results


def table(logs: list[Path]) -> str:
    """One markdown row per run and phase: medians over the rounds of each run's output."""
    lines = [
        "| run | phase | c | p50 ms | calls/s | caller CPU µs/call | callee CPU µs/call |",
        "|---|---|---|---|---|---|---|",
    ]
    for log in logs:
        rows = [json.loads(line) for line in log.read_text().splitlines() if line[:2] == '{"']
        phases: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for row in rows:
            if "mode" in row and row["mode"] != "idle":
                phases.setdefault((row["mode"], row["payload"], row["concurrency"]), []).append(row)
        for (mode, payload, c), runs in phases.items():

            def med(key: str, runs: list[dict[str, Any]] = runs) -> str:
                return f"{statistics.median(r[key] for r in runs):,.4g}"

            lines.append(
                f"| {log.stem} | {mode} ({payload}) | {c} | {med('p50_ms')} | "
                f"{med('calls_per_s')} | {med('caller_cpu_us')} | {med('callee_cpu_us')} |"
            )
    return "\n".join(lines)


def _pyspy(out: Path, pids: dict[str, int]) -> list[subprocess.Popen]:
    """py-spy on both replicas for 4 s, as speedscope-less flat text (`--format raw`)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                "4",
                "-r",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


if __name__ == "__main__":
    main()
