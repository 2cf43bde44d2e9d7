"""A pool's side channel: an ingress's calls straight to a pool replica over a kept-alive TCP
connection of the pool's own, beside Serve's handle (`server.side_channel`, on by default).

bench/hop_cost.py measured Serve's gRPC hop at ~0.4-0.5 ms of CPU on each side of a unary
call and ~1-2 ms a side for a 20-chunk stream; a bare socket costs ~0.01-0.03 ms and ~0.1 ms.

- A pool replica with the side channel listens on its node's address (any free port) and
  announces itself to the `PoolDirectory` actor every `HEARTBEAT_S` (provider type, address);
  on a graceful stop it drains (listed for no new call; its callers keep the connections of
  the calls in flight, which it waits for) and then withdraws, and the directory forgets one
  it has not heard from in `EXPIRE_S` (a replica that died: its callers close every
  connection to it, so calls waiting there fail at once).
- Every connection opens with the cluster's token (random, made by the directory): a
  connection that does not send it first is closed before anything else it sends is read.
- Each ingress (or Router) replica reads the endpoints every `REFRESH_S` and sends a call to
  the endpoint of its pool type with the fewest calls in flight, on an idle connection or a
  new one. With no endpoint, or one that refuses the connection, the call goes by Serve's
  handle as before. A connection lost once the call was sent is a 503 (`pool_connection_lost`):
  the invoker's one retry and the fallback chain take it, as they do a pool replica lost under
  a handle call. A caller that goes away closes the connection, and the pool cancels the call.
- Serve's autoscaler does not see these calls by itself: each pool replica reports its calls
  in flight (`ProviderPool.record_autoscaling_stats`), and a pool that autoscales does so by
  `autoscaling_policy`, Serve's default policy over both kinds of calls (`deployments.app`
  sets it; serve_config.yaml names it for `serve deploy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import logging
import pickle
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from gateway.errors import GatewayError, InternalError, ServiceUnavailableError

log = logging.getLogger("llmgw.side_channel")

DIRECTORY_NAME = "llmgw-pool-directory"
NAMESPACE = "llmgw"
HEARTBEAT_S = 2.0
EXPIRE_S = 3 * HEARTBEAT_S
REFRESH_S = 1.0
# An endpoint that refused a connection is skipped this long (the directory may still list it).
SHUN_S = 5.0
# A host that does not answer at all (a node gone without a reset) is given up on after this.
CONNECT_S = 2.0
# How long a stopping pool replica waits for its side-channel calls (under Serve's 30 s
# graceful_shutdown_timeout_s, after which Serve kills the replica anyway).
DRAIN_S = 25.0
# The largest frame read: a request is bounded by `server.max_body_bytes` well below this.
MAX_FRAME = 256 * 1024 * 1024
TOKEN_BYTES = 32
_OK = b"ok"
# The custom autoscaling metric a pool replica reports: its side channel's calls in flight.
IN_FLIGHT_METRIC = "side_channel_in_flight"
POLICY = "deployments.side_channel:autoscaling_policy"
# What the directory lists: its version, the token, live addresses by pool type, and the
# addresses of replicas draining (no new calls; the calls in flight finish).
Listing = tuple[int, bytes, dict[str, list], list]


# A connection that closed, reset, timed out or sent a frame too large: OSError covers
# ConnectionError and TimeoutError.
_DROPPED = (asyncio.IncompleteReadError, OSError)


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > limit:
        raise ConnectionError(f"a {size}-byte frame, over the {limit} allowed")
    return await reader.readexactly(size)


# ---------------------------------------------------------------------------- the pool side


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
            writer.write(frame(_OK))
            self._open.add(writer)
            while True:
                data = await read_frame(reader)
                if answering is not None:
                    await answering
                kind, call = pickle.loads(data)
                self.calls += 1
                answering = asyncio.ensure_future(self._answer(kind, call, writer))
        except _DROPPED:
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


# ---------------------------------------------------------------------------- the directory


class PoolDirectory:
    """Where pool replicas' side channels are, and the token their connections open with.

    A replica stopping is first *draining*: listed for no new call, while the callers keep
    the connections its calls in flight are on; once drained (or silent for `EXPIRE_S`, its
    node gone) it is dropped, and callers close every connection to it."""

    def __init__(self) -> None:
        self._token = secrets.token_bytes(TOKEN_BYTES)
        self._endpoints: dict[str, tuple[str, tuple[str, int], float]] = {}
        self._draining: set[str] = set()
        # From the clock: a restarted directory (a new token) never repeats a version a
        # caller already holds, so every caller takes the new token.
        self._version = time.time_ns()

    def announce(self, replica: str, kind: str, address: tuple[str, int]) -> bytes:
        """A replica's heartbeat (a draining one's too); returns the token its listener checks."""
        known = self._endpoints.get(replica)
        self._endpoints[replica] = (kind, tuple(address), time.monotonic())  # type: ignore[assignment]
        if known is None or known[:2] != (kind, tuple(address)):
            self._version += 1
        return self._token

    def withdraw(self, replica: str, drained: bool = False) -> None:
        """A replica stopping: draining first (no new calls), then `drained` (gone)."""
        if drained:
            self._draining.discard(replica)
            if self._endpoints.pop(replica, None) is not None:
                self._version += 1
        elif replica in self._endpoints and replica not in self._draining:
            self._draining.add(replica)
            self._version += 1

    def endpoints(self, known_version: int) -> Listing | None:
        """Every live endpoint by pool type and the draining ones' addresses, or None when
        `known_version` is current."""
        now = time.monotonic()
        for replica, (_, _, seen) in list(self._endpoints.items()):
            if now - seen > EXPIRE_S:
                del self._endpoints[replica]
                self._draining.discard(replica)
                self._version += 1
        if known_version == self._version:
            return None
        by_kind: dict[str, list] = {}
        draining = []
        for replica, (kind, address, _) in self._endpoints.items():
            if replica in self._draining:
                draining.append(address)
            else:
                by_kind.setdefault(kind, []).append(address)
        return self._version, self._token, by_kind, draining


# The actor keeps the class's name (`ray::PoolDirectory` in a process list).
PoolDirectoryActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(PoolDirectory)


def get_or_create_directory(resources: Mapping[str, float] | None = None) -> Any:
    """The cluster's pool directory, started (detached) by the first caller."""
    return PoolDirectoryActor.options(
        name=DIRECTORY_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": resources} if resources else {}),
    ).remote()


# ---------------------------------------------------------------------------- the caller side


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
            if await read_frame(reader, len(_OK)) != _OK:
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
            except _DROPPED as error:
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
        except _DROPPED as error:
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
                except _DROPPED as error:
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


# ---------------------------------------------------------------------------- autoscaling


def autoscaling_policy(ctx: Any) -> tuple[float, dict[str, Any]]:
    """Serve's default autoscaling policy, over a pool's calls by handle (Serve counts them)
    plus those by side channel (each replica's `IN_FLIGHT_METRIC`, which Serve averages)."""
    from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy

    by_channel = sum((ctx.aggregated_metrics or {}).get(IN_FLIGHT_METRIC, {}).values())
    if by_channel:
        total = ctx.total_num_requests + by_channel
        ctx = copy.copy(ctx)
        # A `cached_property` in Ray 2.60: the copy's own value shadows it (a unit test holds
        # this to Ray's AutoscalingContext).
        ctx.total_num_requests = total
    return replica_queue_length_autoscaling_policy(ctx)
