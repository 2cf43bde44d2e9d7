"""The pool replica's end of the side channel (see `deployments.side_channel`): the listener
that answers calls on authenticated connections, and the heartbeat that lists it in the
directory and drains it on a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import pickle
import time
from collections.abc import Callable
from typing import Any

import ray

from deployments.side_channel import DROPPED, HEARTBEAT_S, TOKEN_BYTES, TOKEN_OK, frame, read_frame
from gateway.errors import GatewayError, InternalError

log = logging.getLogger("llmgw.side_channel")

# How long a stopping pool replica waits for its side-channel calls (under Serve's 30 s
# graceful_shutdown_timeout_s, after which Serve kills the replica anyway).
DRAIN_S = 25.0


class ChannelServer:
    """The pool replica's listener: calls `send(call)` / `stream(call)` of `pool` for each call
    that arrives on an authenticated connection."""

    def __init__(self, pool: Any, token: Callable[[], bytes]) -> None:
        self.pool = pool
        self._token = token
        self._server: asyncio.Server | None = None
        self._open: set[Any] = set()  # every connection's writer
        self._busy: set[Any] = set()  # those answering a call
        self._closing = False
        self.calls = 0  # calls served (`ProviderPool.side_channel_calls`)
        self.in_flight = 0  # calls being answered (the pool's autoscaling reads it)

    async def start(self, host: str) -> int:
        self._server = await asyncio.start_server(self._connection, host, 0)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop accepting and close the connections between calls; calls in flight finish
        on theirs (a replica's graceful stop)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in self._open - self._busy:
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: Any) -> None:
        # The reads never stop: the connection closing mid-call (the caller went away) ends
        # the read, and the call is cancelled. A caller sends its next call only once it has
        # the whole answer to the last, so that one is finishing when the next arrives.
        answering: asyncio.Future[None] | None = None
        try:
            sent = await asyncio.wait_for(read_frame(reader, TOKEN_BYTES), 5.0)
            if not hmac.compare_digest(sent, self._token()):
                return
            writer.write(frame(TOKEN_OK))
            self._open.add(writer)
            while True:
                data = await read_frame(reader)
                if answering is not None:
                    await answering
                kind, call = pickle.loads(data)
                self.calls += 1
                answering = asyncio.ensure_future(self._answer(kind, call, writer))
        except DROPPED:
            return
        finally:
            self._open.discard(writer)
            if answering is not None:
                answering.cancel()
                if answering.done() and not answering.cancelled():
                    answering.exception()  # retrieved: a write to a closed connection
            writer.close()

    async def _answer(self, kind: str, call: Any, writer: Any) -> None:
        self.in_flight += 1
        self._busy.add(writer)
        try:
            try:
                if kind == "send":
                    writer.write(frame(pickle.dumps(("ok", await self.pool.send(call)))))
                else:
                    async with contextlib.aclosing(self.pool.stream(call)) as items:
                        async for item in items:
                            writer.write(frame(pickle.dumps(("item", item))))
                            await writer.drain()
                    writer.write(frame(pickle.dumps(("end", None))))
            except GatewayError as error:
                writer.write(frame(pickle.dumps(("error", error))))
            except Exception as error:
                log.exception("side channel: the pool failed a call")
                failed = InternalError(f"the provider pool failed: {type(error).__name__}")
                writer.write(frame(pickle.dumps(("error", failed))))
            await writer.drain()
        finally:  # answered in full, failed, or cancelled (the caller went away)
            self.in_flight -= 1
            self._busy.discard(writer)
        if self._closing:  # answered; the caller takes no further call here
            writer.close()


class PoolChannel:
    """A pool replica's side channel: its listener and its heartbeat to the directory."""

    def __init__(self, pool: Any, kind: str, directory: Any) -> None:
        self.kind = kind
        self.directory = directory
        self.token = b""
        self.server = ChannelServer(pool, lambda: self.token)
        self.replica = ""
        self.address: tuple[str, int] | None = None
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from ray import serve

        self.replica = serve.get_replica_context().replica_id.unique_id
        host = ray.util.get_node_ip_address()
        self.address = (host, await self.server.start(host))
        await self._announce()
        self._beat = asyncio.create_task(self._heartbeat())
        log.info("side channel for %s pool on %s:%d", self.kind, *self.address)

    async def _announce(self) -> None:
        assert self.address is not None
        self.token = await self.directory.announce.remote(self.replica, self.kind, self.address)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._announce()
            except Exception:  # the directory restarting: the next beat announces again
                log.warning("side channel: announcing to the directory failed", exc_info=True)

    async def aclose(self, drain_s: float = DRAIN_S) -> None:
        """A graceful stop: drain (callers send new calls to other replicas or the handle),
        stop listening, wait up to `drain_s` for the calls in flight to finish, withdraw.
        Serve waits only for the calls it routed, so without this wait its stop would cut
        these."""
        # Draining: callers send no new call here and keep the connections of those in
        # flight (the heartbeat goes on, so the directory does not take it for dead).
        with contextlib.suppress(Exception):
            await self.directory.withdraw.remote(self.replica)
        self.server.close()
        deadline = time.monotonic() + drain_s
        while self.server.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.server.in_flight:
            log.warning("side channel: %d calls still in flight at stop", self.server.in_flight)
        if self._beat is not None:
            self._beat.cancel()
        with contextlib.suppress(Exception):
            await self.directory.withdraw.remote(self.replica, drained=True)
