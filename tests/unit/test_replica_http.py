"""The ingress replicas' own HTTP server (`--http-mode ingress`), without Ray: two servers on
one SO_REUSEPORT port, as two ingress replicas on a node bind it, driven over real loopback
connections."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from deployments import replica_http
from deployments.replica_http import MAX_HEAD_BYTES, ReplicaHttp, parse_listen
from tests.openapi import validate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """An ASGI app that says which server answered, and streams slowly on /slow."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/slow":
            await send({"type": "http.response.body", "body": b"first,", "more_body": True})
            self.started.set()
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"last"})
            return
        await send({"type": "http.response.body", "body": self.name.encode()})


@pytest.fixture
async def pair() -> AsyncIterator[tuple[str, list[App], list[ReplicaHttp]]]:
    port = free_port()
    apps = [App("a"), App("b")]
    servers = [ReplicaHttp(app, "127.0.0.1", port) for app in apps]
    for server in servers:
        await server.start()
    yield f"http://127.0.0.1:{port}", apps, servers
    for app in apps:
        app.release.set()
    for server in servers:
        await server.aclose()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.0.0.0:8000", ("0.0.0.0", 8000)), ("[::1]:9", ("::1", 9)), ("gw.local:1", ("gw.local", 1))],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8000", ":8000", "host:", "host:0", "host:70000", "host:x"])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_listen(value)


async def test_both_servers_share_the_port(pair: tuple[str, list[App], list[ReplicaHttp]]) -> None:
    url, _, servers = pair
    answered: set[str] = set()
    for _ in range(200):  # the kernel spreads new connections by their address hash
        async with httpx.AsyncClient() as client:  # a new connection each time
            answered.add((await client.get(f"{url}/")).text)
        if answered == {"a", "b"}:
            break
    assert answered == {"a", "b"}
    assert all(server.alive() for server in servers)


async def test_a_stopping_server_finishes_its_requests_and_the_other_serves_on(
    pair: tuple[str, list[App], list[ReplicaHttp]],
) -> None:
    url, apps, servers = pair
    # A stream in flight on whichever server took the connection.
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{url}/slow") as response,
    ):
        chunks = response.aiter_bytes()
        assert await anext(chunks) == b"first,"
        busy = next(i for i, app in enumerate(apps) if app.started.is_set())
        assert servers[busy].in_flight == 1
        closing = asyncio.create_task(servers[busy].aclose())
        await asyncio.sleep(0.3)
        assert not closing.done(), "the stop must wait for the request in flight"
        # New connections reach the server still listening.
        async with httpx.AsyncClient() as other:
            for _ in range(20):
                assert (await other.get(f"{url}/")).text == apps[1 - busy].name
        apps[busy].release.set()
        rest = b"".join([part async for part in chunks])
    assert rest == b"last"  # the stream was finished, not cut
    await asyncio.wait_for(closing, 5)
    assert not servers[busy].alive()
    assert servers[busy].in_flight == 0


async def test_a_port_held_by_another_program_fails_the_start() -> None:
    with socket.socket() as holder:  # no SO_REUSEPORT: not one of ours
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        server = ReplicaHttp(App("a"), "127.0.0.1", holder.getsockname()[1])
        with pytest.raises(OSError):
            await server.start()
        assert not server.alive()
        await server.aclose()  # nothing to stop; no error


# ---------------------------------------------------------------- a request's head, bounded


@pytest.fixture
async def one() -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    server = ReplicaHttp(App("a"), "127.0.0.1", port)
    await server.start()
    yield "127.0.0.1", port
    await server.aclose()


async def exchange(address: tuple[str, int], *parts: bytes) -> bytes:
    """Send `parts` one write each, then read until the server closes (or 5 s pass)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), 5)
    except ConnectionError:
        return await asyncio.wait_for(reader.read(1 << 20), 5)
    finally:
        writer.close()


def refused(answer: bytes, status: int = 431, code: str = "request_header_too_large") -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"connection: close" in head
    error = json.loads(body)
    validate(error, "ErrorResponse")
    assert error["error"]["code"] == code


async def test_an_endless_header_is_refused_with_431(one: tuple[str, int]) -> None:
    """A header that never ends (sent in pieces, as a slow attacker would) is cut at
    MAX_HEAD_BYTES with a 431 in OpenAI's error shape, not buffered without limit."""
    piece = b"a" * 16 * 1024
    start = b"GET / HTTP/1.1\r\nhost: gw\r\nx-big: "
    refused(await exchange(one, start, *[piece] * ((MAX_HEAD_BYTES // len(piece)) + 4)))


async def test_a_whole_head_over_the_bound_is_refused_with_431(one: tuple[str, int]) -> None:
    """The same bound for a head that arrives complete in one write, body and all."""
    big = b"x-big: " + b"a" * (MAX_HEAD_BYTES + 1024) + b"\r\n"
    post = b"POST / HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\n" + big + b"\r\n{}"
    refused(await exchange(one, post))
    many = b"".join(b"x-h%d: %s\r\n" % (i, b"a" * 1000) for i in range(80))
    refused(await exchange(one, b"GET / HTTP/1.1\r\nhost: gw\r\n" + many + b"\r\n"))


async def test_heads_under_the_bound_are_served(one: tuple[str, int]) -> None:
    """A 40 KiB header twice on one keep-alive connection (the bound is per request), and a
    1 MiB body sent in one write with its head (not counted as head), are all served."""
    header = b"x-big: " + b"a" * 40 * 1024 + b"\r\n"
    get = b"GET / HTTP/1.1\r\nhost: gw\r\n" + header + b"\r\n"
    close = b"GET / HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n" + header + b"\r\n"
    answer = await exchange(one, get, close)
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:300]
    body = b"b" * (1 << 20)
    post = b"POST / HTTP/1.1\r\nhost: gw\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
    answer = await exchange(one, post % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


async def test_a_head_trickled_too_slowly_is_refused_with_408(
    one: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head still incomplete HEAD_TIMEOUT_S after its first byte (a slowloris client) gets a
    408 in OpenAI's error shape and the connection closed; a head completed in time, and an
    idle keep-alive connection between requests, are not timed by it."""
    monkeypatch.setattr(replica_http, "HEAD_TIMEOUT_S", 0.5)
    reader, writer = await asyncio.open_connection(*one)
    try:
        writer.write(b"GET / HTTP/1.1\r\nhost: gw\r\n\r\n")  # served, then idle past 0.5 s
        assert (await asyncio.wait_for(reader.read(1 << 16), 5)).startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.8)
        writer.write(b"GET / HTTP/1.1\r\nhost: gw\r\nx-slow: a")  # never finished
        answer = await asyncio.wait_for(reader.read(1 << 16), 5)
    finally:
        writer.close()
    refused(answer, 408, "request_timeout")
