"""The caller's end of the side channel (see `deployments.side_channel`), used by an ingress
or Router replica: the endpoints kept fresh from the directory, a connection per call in
flight, and calls sent to the least busy endpoint of a pool type.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployments.side_channel import DROPPED, TOKEN_OK, frame, read_frame
from deployments.side_channel_directory import get_or_create_directory
from gateway.errors import ServiceUnavailableError

log = logging.getLogger("llmgw.side_channel")

REFRESH_S = 1.0
# An endpoint that refused a connection is skipped this long (the directory may still list it).
SHUN_S = 5.0
# A host that does not answer at all (a node gone without a reset) is given up on after this.
CONNECT_S = 2.0


@dataclass(eq=False)
class Connection:
    reader: asyncio.StreamReader
    writer: Any

    def close(self) -> None:
        self.writer.close()


@dataclass(eq=False)
class Endpoint:
    """One pool replica's listener, its idle connections and its calls in flight."""

    address: tuple[str, int]
    idle: list[Connection] = field(default_factory=list)
    busy: set[Connection] = field(default_factory=set)  # carrying a call
    shunned_until: float = 0.0

    @property
    def in_flight(self) -> int:
        return len(self.busy)

    async def connection(self, token: bytes) -> Connection:
        while self.idle:
            conn = self.idle.pop()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn
            conn.close()  # the pool closed it between calls (its replica stopping)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.address), CONNECT_S)
        try:
            writer.write(frame(token))
            if await read_frame(reader, len(TOKEN_OK)) != TOKEN_OK:
                raise ConnectionError("the pool refused the side channel's token")
        except BaseException:
            writer.close()
            raise
        return Connection(reader, writer)

    def close(self) -> None:
        """Close the connections between calls."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    def abandon(self) -> None:
        """The replica is gone from the directory (it stopped, or its node did): close every
        connection, so calls still waiting on one fail now, not at their deadline."""
        self.close()
        for conn in self.busy:
            conn.close()


def _lost(error: BaseException) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the provider pool replica's connection was lost mid-call ({type(error).__name__})",
        code="pool_connection_lost",
    )


class ChannelClient:
    """An ingress's (or Router's) side of the side channel: endpoints kept fresh from the
    directory, calls sent to the least busy one. `send`/`stream` answer None where the call
    should take Serve's handle instead (no endpoint, or none that accepts a connection)."""

    def __init__(self, endpoints: Callable[[int], Awaitable[Any]]) -> None:
        self._fetch = endpoints
        self._version = -1
        self._token = b""
        self._endpoints: dict[str, list[Endpoint]] = {}
        self._refresher: asyncio.Task[None] | None = None

    @classmethod
    def for_config(cls, side_channel: bool, resources: Mapping[str, float]) -> ChannelClient | None:
        """A replica's client when `server.side_channel` is on (started on its event loop).
        The directory is looked up at the first read, so building one touches no actor."""
        if not side_channel:
            return None
        directory: list[Any] = []

        def endpoints(version: int) -> Any:
            if not directory:
                directory.append(get_or_create_directory(resources))
            return directory[0].endpoints.remote(version)

        return cls(endpoints)

    async def refresh(self) -> None:
        """Take the directory's endpoints, keeping the connections of those still listed."""
        found = await self._fetch(self._version)
        if found is None:
            return
        self._version, self._token, by_kind, draining = found
        known = {ep.address: ep for eps in self._endpoints.values() for ep in eps}
        fresh = {
            kind: [known.pop(tuple(a), None) or Endpoint(tuple(a)) for a in addresses]
            for kind, addresses in by_kind.items()
        }
        finishing = {tuple(a) for a in draining}
        for gone in known.values():
            if gone.address in finishing:
                gone.close()  # a replica stopping: its calls in flight finish on theirs
            else:
                gone.abandon()
        self._endpoints = fresh

    def start(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("side channel: reading the pool directory failed", exc_info=True)
            await asyncio.sleep(REFRESH_S)

    def _pick(self, kind: str) -> Endpoint | None:
        now = time.monotonic()
        live = [ep for ep in self._endpoints.get(kind, ()) if ep.shunned_until <= now]
        return min(live, key=lambda ep: ep.in_flight) if live else None

    async def _connect(self, kind: str) -> tuple[Endpoint, Connection] | None:
        """An endpoint of `kind` and a connection to it; None when none will take one."""
        while (endpoint := self._pick(kind)) is not None:
            try:
                return endpoint, await endpoint.connection(self._token)
            except DROPPED as error:
                log.warning("side channel: %s:%d refused: %r", *endpoint.address, error)
                endpoint.shunned_until = time.monotonic() + SHUN_S
                endpoint.close()
        return None

    async def send(self, kind: str, call: Any) -> Any:
        """The pool's answer to a finished call, or None: take the handle."""
        picked = await self._connect(kind)
        if picked is None:
            return None
        endpoint, conn = picked
        endpoint.busy.add(conn)
        try:
            conn.writer.write(frame(pickle.dumps(("send", call))))
            status, value = pickle.loads(await read_frame(conn.reader))
        except DROPPED as error:
            conn.close()
            raise _lost(error) from None
        except BaseException:
            conn.close()  # cancelled: the pool sees the connection close and cancels too
            raise
        finally:
            endpoint.busy.discard(conn)
        endpoint.idle.append(conn)
        if status == "error":
            raise value
        return value

    async def stream(self, kind: str, call: Any) -> AsyncIterator[Any] | None:
        """The pool's stream items, or None: take the handle."""
        picked = await self._connect(kind)
        if picked is None:
            return None
        return self._items(*picked, call)

    async def _items(self, endpoint: Endpoint, conn: Connection, call: Any) -> AsyncIterator[Any]:
        endpoint.busy.add(conn)
        finished = False
        try:
            conn.writer.write(frame(pickle.dumps(("stream", call))))
            while True:
                try:
                    status, value = pickle.loads(await read_frame(conn.reader))
                except DROPPED as error:
                    raise _lost(error) from None
                if status == "item":
                    yield value
                    continue
                finished = True
                if status == "error":
                    raise value
                return
        finally:
            endpoint.busy.discard(conn)
            if finished:
                endpoint.idle.append(conn)
            else:  # cut short (the client left, a timeout): the pool cancels the call
                conn.close()

    def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        for endpoints in self._endpoints.values():
            for endpoint in endpoints:
                endpoint.close()
