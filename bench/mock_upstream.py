"""A fast mock OpenAI-compatible upstream for the benchmarks.

Raw asyncio protocol with the httptools parser (uvloop when installed): one process,
HTTP/1.1 keep-alive, so it is never the bottleneck.

- ``POST /v1/chat/completions``: JSON, or SSE with ``"stream": true`` (chunked transfer
  encoding, OpenAI's chunk shape, a usage chunk when ``stream_options.include_usage``).
  Output tokens: the request's ``max_tokens`` (or ``max_completion_tokens``), else ``--tokens``.
- ``GET /v1/models``, ``GET /health``.
- ``GET /_mock/config`` shows and ``POST /_mock/config`` (JSON) changes the defaults at run
  time; ``GET /_mock/stats`` counts requests.

Knobs (CLI flag, ``/_mock/config`` key, per-request header):
``--latency-ms``/``latency_ms``/``x-mock-latency-ms`` delay of a JSON answer;
``--ttft-ms``/``ttft_ms``/``x-mock-ttft-ms`` delay before a stream's first token;
``--rate``/``rate``/``x-mock-rate`` streamed tokens per second (0: as fast as possible);
``--tokens``/``tokens``/``x-mock-tokens`` output tokens when the request names none.

    python bench/mock_upstream.py --port 9100 --rate 50 --tokens 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import httptools

CONFIG = {"latency_ms": 0.0, "ttft_ms": 0.0, "rate": 0.0, "tokens": 16}
STATS = {"requests": 0, "streams": 0, "open_streams": 0, "errors": 0}
KNOBS = {
    b"x-mock-latency-ms": "latency_ms",
    b"x-mock-ttft-ms": "ttft_ms",
    b"x-mock-rate": "rate",
    b"x-mock-tokens": "tokens",
}
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}
_cache: dict[tuple, bytes] = {}


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def completion_body(model: str, n: int) -> bytes:
    key = ("c", model, n)
    body = _cache.get(key)
    if body is None:
        body = _json(
            {
                "id": "chatcmpl-mock",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "tok " * n, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n},
                "system_fingerprint": None,
            }
        )
        if len(_cache) < 1000:
            _cache[key] = body
    return body


def chunk(model: str, delta: dict, finish=None, usage=None, choices=True) -> bytes:
    obj = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if choices
        else [],
    }
    if usage is not None:
        obj["usage"] = usage
    data = b"data: " + _json(obj) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


# Streamed tokens cycle through a few words: LiteLLM aborts a stream that repeats one chunk
# ~100 times in a row ("The model is repeating the same chunk"), as a real model would not.
WORDS = ("alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta ")


def stream_parts(model: str) -> tuple[bytes, tuple[bytes, ...], bytes]:
    key = ("s", model)
    parts = _cache.get(key)
    if parts is None:
        parts = (
            chunk(model, {"role": "assistant", "content": ""}),
            tuple(chunk(model, {"content": word}) for word in WORDS),
            chunk(model, {}, finish="stop"),
        )
        _cache[key] = parts  # type: ignore[assignment]
    return parts  # type: ignore[return-value]


DONE = b"%x\r\n%s\r\n" % (len(b"data: [DONE]\n\n"), b"data: [DONE]\n\n") + b"0\r\n\r\n"


class Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    # asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            STATS["errors"] += 1
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if self.worker is not None:
            self.worker.cancel()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        req = (
            self.parser.get_method(),
            self.url.split(b"?", 1)[0],
            self.headers,
            b"".join(self.body),
        )
        keep = self.parser.should_keep_alive()
        # requests on one connection are answered in order, one at a time
        if self.worker is None and self.fast(req, keep):
            return
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.worker = asyncio.get_running_loop().create_task(self.serve())
        self.queue.put_nowait((req, keep))

    # answering
    def send(self, status: int, body: bytes, keep: bool, ctype=b"application/json") -> None:
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n" % (
            status,
            REASONS.get(status, b"OK"),
            ctype,
            len(body),
            b"" if keep else b"connection: close\r\n",
        )
        self.transport.write(head + body)
        if not keep:
            self.transport.close()

    def knobs(self, headers: dict) -> dict:
        cfg = CONFIG
        if any(k in headers for k in KNOBS):
            cfg = dict(CONFIG)
            for h, k in KNOBS.items():
                if h in headers:
                    cfg[k] = float(headers[h])
        return cfg

    def fast(self, req, keep) -> bool:
        """Answer without a task when nothing has to wait; False when it must be async."""
        method, path, headers, body = req
        if path == b"/v1/chat/completions" and method == b"POST":
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                STATS["errors"] += 1
                self.send(400, _json({"error": {"message": "bad json", "type": "invalid"}}), keep)
                return True
            cfg = self.knobs(headers)
            STATS["requests"] += 1
            if payload.get("stream") or cfg["latency_ms"] > 0:
                return False
            n = int(
                payload.get("max_tokens") or payload.get("max_completion_tokens") or cfg["tokens"]
            )
            self.send(200, completion_body(str(payload.get("model", "mock")), n), keep)
            return True
        if path == b"/v1/models":
            models = {
                "object": "list",
                "data": [
                    {"id": "bench-model", "object": "model", "created": 0, "owned_by": "mock"}
                ],
            }
            self.send(200, _json(models), keep)
        elif path == b"/health":
            self.send(200, b'{"status":"ok"}', keep)
        elif path == b"/_mock/config":
            if method == b"POST":
                try:
                    CONFIG.update({k: float(v) for k, v in json.loads(body).items() if k in CONFIG})
                except (ValueError, TypeError, AttributeError):
                    self.send(400, b'{"error":"bad config"}', keep)
                    return True
            self.send(200, _json(CONFIG), keep)
        elif path == b"/_mock/stats":
            self.send(200, _json(STATS), keep)
        else:
            self.send(404, _json({"error": {"message": "not found", "type": "invalid"}}), keep)
        return True

    async def serve(self) -> None:
        while True:
            req, keep = await self.queue.get()
            if req is None:
                return
            method, path, headers, body = req
            if not (path == b"/v1/chat/completions" and method == b"POST"):
                self.fast(req, keep)
                continue
            payload = json.loads(body or b"{}")
            cfg = self.knobs(headers)
            model = str(payload.get("model", "mock"))
            n = int(
                payload.get("max_tokens") or payload.get("max_completion_tokens") or cfg["tokens"]
            )
            if not payload.get("stream"):
                if cfg["latency_ms"] > 0:
                    await asyncio.sleep(cfg["latency_ms"] / 1000)
                self.send(200, completion_body(model, n), keep)
                continue
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            await self.stream(model, n, cfg, include_usage)
            if not keep:
                self.transport.close()

    async def stream(self, model: str, n: int, cfg: dict, include_usage: bool) -> None:
        STATS["streams"] += 1
        STATS["open_streams"] += 1
        try:
            first, toks, last = stream_parts(model)
            t0 = time.monotonic()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n" + first
            )
            ttft = cfg["ttft_ms"] / 1000
            gap = 1.0 / cfg["rate"] if cfg["rate"] > 0 else 0.0
            for i in range(n):
                due = t0 + ttft + i * gap - time.monotonic()
                if due > 0:
                    await asyncio.sleep(due)
                if self.transport.is_closing():
                    return
                self.transport.write(toks[i % len(toks)])
            tail = last
            if include_usage:
                usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
                tail += chunk(model, {}, usage=usage, choices=False)
            self.transport.write(tail + DONE)
        finally:
            STATS["open_streams"] -= 1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--ttft-ms", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=0.0, help="stream tokens/s (0: no pacing)")
    ap.add_argument("--tokens", type=int, default=16)
    a = ap.parse_args(argv)
    CONFIG.update(latency_ms=a.latency_ms, ttft_ms=a.ttft_ms, rate=a.rate, tokens=a.tokens)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Http, a.host, a.port, backlog=4096, reuse_address=True)
        print(f"mock upstream on http://{a.host}:{a.port}/v1 {CONFIG}", flush=True)
        async with srv:
            await srv.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
