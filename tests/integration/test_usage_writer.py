"""The usage writer actor on a real Ray: what replicas send reaches the store once, through
a database outage and a hard kill of the writer itself.

Every actor here has a name private to this module and is killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from deployments.usage_writer import UsageSink, UsageWriter
from gateway.store import AuditEvent, Store, UsageRecord
from tests.pg import pg_database, pg_schema  # noqa: F401 - a fixture

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

NAMESPACE = "llmgw-tests"
_SUFFIX = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def actors() -> Iterator[list[Any]]:
    """Every actor this module starts, killed for good at the end."""
    created: list[Any] = []
    yield created
    for handle in created:
        ray.kill(handle, no_restart=True)


def start_writer(store_url: str, home: Path, name: str, actors: list[Any]) -> Any:
    handle = UsageWriter.options(name=f"{name}-{_SUFFIX}", namespace=NAMESPACE).remote(
        store_url, name=name, home=str(home)
    )
    actors.append(handle)
    return handle


async def until(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def usage(n: int, tenant: str) -> UsageRecord:
    return UsageRecord(request_id=f"{tenant}-{n}", tenant=tenant, model="sim-fast", prompt_tokens=n)


def billed(store: Store, tenant: str) -> tuple[int, int]:
    rows = store.usage_report(by=["tenant"], tenant=tenant)
    return (rows[0]["requests"], rows[0]["prompt_tokens"]) if rows else (0, 0)


async def test_the_writer_writes_what_it_is_sent(actors: list[Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'llmgw.db'}"
    writer = start_writer(url, tmp_path, "direct", actors)
    store = Store(url)
    store.migrate()  # the writer migrates on its first flush; this reader may come first
    records = [usage(n, "direct") for n in range(1200)]
    events = [
        AuditEvent(request_id=f"direct-{n}", action="chat", tenant="direct") for n in range(3)
    ]
    await writer.write.remote(records[:600], events)
    await writer.write.remote(records[600:], [])

    async def written() -> bool:
        return billed(store, "direct") == (1200, sum(range(1200)))

    await until(written, timeout_s=10.0)  # no flush asked for
    assert len(store.list_audit(tenant="direct")) == 3
    stats = await writer.stats.remote()
    assert stats["pending"] == 0 and stats["usage_written"] == 1200
    assert not list(Path(stats["spool"]).glob("*.jsonl"))
    store.close()


async def test_the_sink_ships_in_batches_and_drains_on_stop(
    actors: list[Any], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'llmgw.db'}"
    writer = start_writer(url, tmp_path, "sink", actors)
    sink = UsageSink(writer)
    for n in range(50):
        sink.usage(usage(n, "sink"))
        sink.audit(AuditEvent(request_id=f"sink-{n}", action="chat", tenant="sink"))
    assert sink.pending == 100  # buffered in place: the calls never awaited the actor
    for n in range(50, 80):
        sink.usage(usage(n, "sink"))
    await sink.aclose()  # graceful stop: the sink ships, then the writer drains
    assert sink.pending == 0
    await writer.drain.remote()
    store = Store(url)
    assert billed(store, "sink") == (80, sum(range(80)))
    assert len(store.list_audit(tenant="sink", limit=1000)) == 50
    store.close()


class TcpRelay:
    """127.0.0.1:<port> -> PostgreSQL; `cut()` drops every connection and refuses new ones
    (the database gone, as far as the writer can tell), `restore()` serves again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


async def test_records_sent_while_the_database_is_away_and_the_writer_killed_arrive_once(
    actors: list[Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Replicas keep sending while PostgreSQL is unreachable; the writer is killed -9 in the
    middle; once the database is back, every record is in the store exactly once."""
    database: URL = request.getfixturevalue("pg_database")
    with pg_schema(database) as direct_url:
        relay = TcpRelay((database.host or "127.0.0.1", database.port or 5432))
        relayed = Store(direct_url).url.set(host="127.0.0.1", port=relay.port)
        url = relayed.render_as_string(hide_password=False)
        writer = start_writer(url, tmp_path, "outage", actors)
        sinks = [UsageSink(writer, interval_s=0.1) for _ in range(3)]
        sent = 0

        async def serve(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                sinks[sent % 3].usage(usage(sent, "outage"))
                sinks[sent % 3].audit(AuditEvent(request_id=f"outage-{sent}", action="chat"))
                sent += 1
                if sent % 20 == 0:
                    await asyncio.sleep(0.01)

        await serve(200)
        await asyncio.gather(*(s.flush() for s in sinks))
        await writer.drain.remote()
        relay.cut()
        await serve(300)
        await asyncio.gather(*(s.flush() for s in sinks))  # acknowledged: spooled

        async def failing() -> bool:
            return (await writer.stats.remote())["failed_flushes"] > 0

        await until(failing)
        pid_before = await writer.stats.remote()
        ray.kill(writer, no_restart=False)  # a hard kill: the spool is all that is left
        await serve(200)  # the sinks retry until the restarted writer takes them
        for sink in sinks:
            await sink.aclose(timeout_s=60)
        stats = await writer.stats.remote()
        assert stats["replayed_segments"] >= 1, (pid_before, stats)

        relay.restore()
        await writer.drain.remote(60.0)
        store = Store(direct_url)
        assert billed(store, "outage") == (sent, sum(range(sent)))
        assert len(store.list_audit(limit=10_000)) == sent
        store.close()
        relay.cut()


async def test_a_writer_started_before_its_database_exists_spools_then_writes_it_all(
    actors: list[Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database: URL = request.getfixturevalue("pg_database")
    schema = f"late_{uuid.uuid4().hex[:8]}"
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    writer = start_writer(url_text, tmp_path, "late", actors)
    await writer.write.remote([usage(n, "late") for n in range(10)], [])

    async def failing() -> bool:
        return (await writer.stats.remote())["failed_flushes"] > 0

    await until(failing)
    assert (await writer.stats.remote())["pending"] == 1  # one spool segment waits
    admin = create_engine(database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        assert await writer.drain.remote() == 10
        store = Store(url_text)
        assert billed(store, "late") == (10, sum(range(10)))
        store.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
