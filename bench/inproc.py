"""CPU a request costs the gateway's own request path, without Ray: the same FastAPI app,
pipeline, invoker and openai adapter a replica runs (`gateway.server.local`), driven through
ASGI in this process against the mock upstream in another.

Process CPU time (`time.process_time`) per request is steady whatever else the machine does,
so small changes to the request path show here when wall-clock benchmarks drown them.

    .venv/bin/python bench/inproc.py                    # CPU µs per request, 3 rounds
    .venv/bin/python bench/inproc.py --profile 30       # and cProfile's top 30 (cumulative)
    .venv/bin/python bench/inproc.py --stream           # streamed requests (20 chunks)
    .venv/bin/python bench/inproc.py --no-sdk           # the openai SDK bypassed (bench/nosdk.py)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from noserve import app  # noqa: E402
from run import Mock  # noqa: E402

KEY = "sk-inproc-admin"


def app_for(mock_base: str):
    os.environ["BENCH_MOCK_KEY"] = "sk-bench"
    return app(mock_base, KEY)


async def call(app, body: bytes) -> int:
    """One POST /v1/chat/completions through the ASGI app; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    done = asyncio.Event()

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    return status


async def rounds(app, body: bytes, n: int, conc: int, count: int, profile: int) -> None:
    for _ in range(50):  # warm-up: pools, lazy imports
        assert await call(app, body) == 200
    sem = asyncio.Semaphore(conc)

    async def one():
        async with sem:
            status = await call(app, body)
            if status != 200:
                raise RuntimeError(f"status {status}")

    results = []
    for r in range(count):
        prof = cProfile.Profile() if profile and r == count - 1 else None
        if prof:
            prof.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if prof:
            prof.disable()
        results.append(1e6 * cpu / n)
        print(f"round {r + 1}: {1e6 * cpu / n:.0f} µs CPU a request, {n / wall:.0f} req/s")
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(profile)
    print(f"median: {statistics.median(results):.0f} µs CPU a request over {count} rounds")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, help="cProfile's top N, last round")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--no-sdk", action="store_true", help="the experiment in bench/nosdk.py")
    a = ap.parse_args()
    if a.no_sdk:
        import nosdk

        nosdk.install()
    mock = Mock()
    mock.start()
    try:
        mock.config(latency_ms=0, ttft_ms=0, rate=0)
        app = app_for(mock.base)
        request = {
            "model": "bench-model",
            "messages": [{"role": "user", "content": "Say hello in a few words."}],
            "max_tokens": 16,
        }
        if a.stream:
            request["stream"] = True
        body = orjson.dumps(request)
        import uvloop

        uvloop.run(rounds(app, body, a.requests, a.concurrency, a.rounds, a.profile))
    finally:
        mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
