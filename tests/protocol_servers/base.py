"""What every local protocol server shares: a uvicorn thread, a script of replies, a record.

A test scripts what the upstream answers next in provider-neutral terms (`Reply`, `Failure`);
each server renders that in its own wire protocol (JSON, SSE, NDJSON, AWS event-stream) and
records every request it received so the test can assert what the gateway sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

# ------------------------------------------------------------------------------ the script


@dataclass
class ToolUse:
    """A tool call the scripted model makes."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:16]}")


@dataclass
class Failure:
    """An upstream failure in neutral terms; each server renders its provider's own error.

    kind: bad_request, auth, permission, not_found, rate_limit, overloaded, server,
    context_length, content_filter, unavailable, request_timeout.
    """

    kind: str
    message: str = "scripted failure"
    retry_after: float | None = None
    # Answer with this HTTP status instead of the kind's own (the kind still shapes the body).
    status: int | None = None


@dataclass
class Reply:
    """What the server answers to the next request."""

    text: str = "Hello from the protocol server."
    tool_calls: list[ToolUse] = field(default_factory=list)
    # Reasoning the model shows first (Anthropic thinking, Bedrock reasoningContent), signed.
    thinking: str | None = None
    # OpenAI: the model declines (structured outputs), with this text instead of content.
    refusal: str | None = None
    # Neutral: stop, length, tool_calls, stop_sequence, content_filter. None: derived.
    finish: str | None = None
    # The provider's own stop reason, sent verbatim (e.g. Bedrock "guardrail_intervened").
    native_finish: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int | None = None
    delay_s: float = 0.0
    chunk_chars: int = 5
    # Streams: drop the connection after this many events (no terminating chunk).
    cut_after: int | None = None
    # Streams: end the response cleanly after this many events, before the provider's
    # completion signal (finish reason, message_stop, messageStop, done).
    end_after: int | None = None
    # The body (or a stream event) is not valid JSON.
    malformed: bool = False
    failure: Failure | None = None
    # Streams: send the failure as an in-stream error event after the first events.
    failure_in_stream: bool = False

    def neutral_finish(self) -> str:
        if self.finish is not None:
            return self.finish
        return "tool_calls" if self.tool_calls else "stop"

    def pieces(self, text: str | None = None) -> list[str]:
        """`text` (default: the reply's) cut into stream deltas of `chunk_chars`."""
        text = self.text if text is None else text
        step = max(1, self.chunk_chars)
        return [text[i : i + step] for i in range(0, len(text), step)]


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str  # raw, still percent-encoded (boto3 encodes model ids)
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def stop_applied(reply: Reply, stops: list[str]) -> tuple[str, str | None]:
    """The reply's text cut at the first stop sequence it contains, as a model stops there."""
    hits = [(reply.text.find(s), s) for s in stops if s and s in reply.text]
    if not hits:
        return reply.text, None
    index, stop = min(hits)
    return reply.text[:index], stop


def signature_of(thinking: str) -> str:
    """The signature a server puts on its thinking, and checks when it comes back unmodified."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def vector_for(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text`: the same text always embeds the same."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] + i * 37) % 251) / 125.0 - 1.0 for i in range(dims)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    # float32-representable, so base64 (float32) and float answers compare exactly.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in raw]


def data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


class ProtocolError(Exception):
    """A request the real API would refuse: the server answers with its native error."""

    def __init__(self, status: int, message: str, kind: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


# ------------------------------------------------------------------------------ the server


class ProtocolServer:
    """A provider's wire protocol on a free local port, in a background thread.

    Subclasses define `routes()`; `script()` queues replies, `received` records requests.
    """

    name = "protocol"

    def __init__(self) -> None:
        self.received: list[Received] = []
        # Bytes served at GET /files/{name}: images for http image_url parts.
        self.files: dict[str, tuple[str, bytes]] = {}
        # GET /files/{name} answered with a 302 to this URL instead.
        self.file_redirects: dict[str, str] = {}
        self.file_requests: list[str] = []
        self._script: deque[Reply] = deque()
        self.default_reply = Reply()
        # When set, every request is recorded and answered with a 307 to this URL + its path.
        self.redirect_to: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ----------------------------------------------------------------- lifecycle

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def start(self) -> ProtocolServer:
        files = Route("/files/{name}", self._file, methods=["GET"])
        app = self._redirecting(Starlette(routes=[*self.routes(), files]))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} protocol server did not start")
            time.sleep(0.01)
        return self

    def _redirecting(self, app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or self.redirect_to is None:
                return await app(scope, receive, send)
            await self.record(Request(scope, receive))
            target = self.redirect_to + scope["path"]
            await RedirectResponse(target, status_code=307)(scope, receive, send)

        return wrapped

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProtocolServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.file_requests.append(name)
        if name in self.file_redirects:
            return RedirectResponse(self.file_redirects[name], status_code=302)
        if name not in self.files:
            return Response(status_code=404)
        media_type, data = self.files[name]
        return Response(data, media_type=media_type)

    # ----------------------------------------------------------------- script and record

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order (then the default reply)."""
        self._script.extend(replies)

    def reset(self) -> None:
        self._script.clear()
        self.received.clear()
        self.default_reply = Reply()
        self.redirect_to = None
        self.file_redirects.clear()
        self.file_requests.clear()

    def next_reply(self) -> Reply:
        return self._script.popleft() if self._script else self.default_reply

    @property
    def last(self) -> Received:
        return self.received[-1]

    def last_json(self) -> Any:
        return self.received[-1].json()

    async def record(self, request: Request) -> Received:
        body = await request.body()
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        received = Received(
            method=request.method,
            path=raw_path.decode(),
            query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.received.append(received)
        return received


def endpoint(
    handler: Callable[[Any, Request, Received], Any],
) -> Callable[[Any, Request], Any]:
    """Wrap a route handler: record the request, turn `ProtocolError` into the native error."""

    async def wrapped(self: Any, request: Request) -> Response:
        received = await self.record(request)
        try:
            return await handler(self, request, received)
        except ProtocolError as exc:
            return self.error_response(Failure(exc.kind, exc.message), status=exc.status)

    wrapped.__name__ = handler.__name__
    return wrapped


async def paced(events: list[bytes], reply: Reply) -> AsyncIterator[bytes]:
    """Yield stream events, dropping the connection after `cut_after` of them, or ending the
    response cleanly after `end_after`, if scripted."""
    for sent, event in enumerate(events):
        if reply.end_after is not None and sent >= reply.end_after:
            return
        if reply.cut_after is not None and sent >= reply.cut_after:
            # An exception after the response started makes uvicorn drop the connection
            # without the terminating chunk: a client sees the stream cut mid-way.
            raise ConnectionAbortedError("scripted stream cut")
        yield event
        await asyncio.sleep(0)


def streaming(events: list[bytes], reply: Reply, media_type: str) -> StreamingResponse:
    return StreamingResponse(paced(events, reply), media_type=media_type)


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


MALFORMED_JSON = b'{"id": "broken", "choices": [{"mess'
