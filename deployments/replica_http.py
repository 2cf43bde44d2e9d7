"""The ingress replicas' own HTTP server: `llmgw up --http-mode ingress` (app arg `listen`).

Serve's HTTP front (its Python proxy, or HAProxy and its per-replica request wrapper) costs
more CPU a request than the gateway's own pipeline (bench/RESULTS.md, session 5). In this mode
Serve runs no proxy (`proxy_location: Disabled`) and each ingress replica serves the gateway's
app itself, with uvicorn on its own event loop, on one socket bound to `listen` with
SO_REUSEPORT: every ingress replica on a node binds the same port and the kernel spreads new
connections among them. Serve still places, health-checks, reconfigures and scales the
replicas; it no longer sees their requests, so each replica reports those in flight for the
autoscaler (`side_channel.autoscaling_policy` adds them to Serve's own count).

Each request's line and headers are bounded in size (`MAX_HEAD_BYTES`, 431 past it) and in
time from their first byte (`HEAD_TIMEOUT_S`, 408): uvicorn and httptools bound neither.

A stopping replica closes its socket first (new connections go to the other replicas; on
Linux, connections still in its accept queue are reset), lets its open connections finish the
request they carry, and waits up to `DRAIN_S` for them. On a cluster, a node serves the port
only while an ingress replica runs there: point the load balancer at those nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import GatewayError, InvalidRequestError

log = logging.getLogger("llmgw.http")

# Below the app's graceful_shutdown_timeout_s (30 s), after which Serve kills the replica.
DRAIN_S = 25.0
# An idle keep-alive connection is closed after this long (a load balancer's idle timeout
# should be shorter, so the gateway never closes a connection the balancer reuses).
KEEP_ALIVE_S = 75
BACKLOG = 2048
# A request's line and headers together, at most. httptools has no bound of its own: one
# connection sending an endless header grew a server by 1 MB a MB sent, and every read copied
# what came before, so the event loop slowed for everyone (measured: 200 MB in 70 s, uvicorn
# 0.55, httptools 0.9). nginx allows 8 KiB a header line by default.
MAX_HEAD_BYTES = 64 * 1024
# A request's line and headers must be in within this long of their first byte (nginx's
# client_header_timeout default): uvicorn has no such timeout, so a client trickling a head a
# byte at a time would hold its connection forever. Idle keep-alive is KEEP_ALIVE_S's.
HEAD_TIMEOUT_S = 60.0


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6) as (host, port); ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen: expected host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class Counted:
    """ASGI wrapper counting the HTTP requests in flight, streams until their last byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BoundedHead(HttpToolsProtocol):
    """uvicorn's httptools protocol, with each request's head (line and headers) bounded by
    `MAX_HEAD_BYTES` (past it, a 431 in OpenAI's error shape and the connection closed) and by
    `HEAD_TIMEOUT_S` from its first byte (a 408 the same way).

    Two counts: the line and headers as parsed (a head that arrives whole, in one read), and
    the bytes read while a head is still incomplete (one that never ends: httptools buffers
    it out of sight, so the parsed count would come too late)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # bytes arriving now belong to a request's line and headers
        self._head_bytes = 0  # read while the head is incomplete
        self._head_size = 0  # the line and headers parsed so far
        self._refused = False  # answered 431 or 408: nothing more is parsed or served
        self._head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            if self._head_bytes == 0:  # a head's first bytes: its clock starts
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)
            self._head_bytes += len(data)
        super().data_received(data)
        # Counted before parsing, judged after: a read that also carries the body (the head
        # completed within it) was judged by the parsed size in `on_headers_complete`.
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(_too_large())

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        message = f"request line and headers not received within {HEAD_TIMEOUT_S:g} s"
        self._refuse(InvalidRequestError(message, code="request_timeout", status_code=408))

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        if self._head_size > MAX_HEAD_BYTES:
            self._refuse(_too_large())  # the app never sees it
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:  # the rest of a refused request's read
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # the next request on this connection

    def _refuse(self, error: GatewayError) -> None:
        """Answer `error` in OpenAI's shape and close the connection."""
        self._in_head, self._refused = False, True
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        body = error.json()
        head = (
            f"HTTP/1.1 {error.status_code} {HTTPStatus(error.status_code).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def _too_large() -> InvalidRequestError:
    message = f"request line and headers over {MAX_HEAD_BYTES // 1024} KiB"
    return InvalidRequestError(message, code="request_header_too_large", status_code=431)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other replicas on this node may bind too."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ReplicaHttp:
    """uvicorn serving `app` on the running event loop, on a SO_REUSEPORT socket."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app = Counted(app)
        self.address = (host, port)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=BoundedHead,
                lifespan="off",
                access_log=False,
                log_config=None,
                log_level="warning",
                server_header=False,
                date_header=False,
                timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=DRAIN_S,
                backlog=BACKLOG,
            )
        )
        # uvicorn installs signal handlers on the main thread; the replica's are Ray's.
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return self.app.in_flight

    async def start(self) -> None:
        """Bind and serve; OSError (the port is held by something that is not a replica of
        ours, or the address is not this node's) fails the replica's start."""
        sock = reuseport_socket(*self.address)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("serving HTTP on %s:%d", *self.address)

    def alive(self) -> bool:
        """Whether it still serves (Serve's health check asks)."""
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Stop accepting, let open connections finish (up to DRAIN_S), then close."""
        if self._task is None or self._task.done():
            return
        self._server.should_exit = True  # uvicorn's loop notices within 0.1 s
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self.in_flight:
            log.warning("HTTP: %d requests still in flight at stop", self.in_flight)
