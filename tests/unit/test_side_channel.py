"""The pool side channel's wire, without Ray: a pool-like object behind a real listener on
loopback, called through the client the ingress uses."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deployments.side_channel import frame, read_frame
from deployments.side_channel_client import ChannelClient
from deployments.side_channel_pool import ChannelServer
from gateway.errors import GatewayError, RateLimitError, ServiceUnavailableError
from gateway.providers.framing import Completed, StreamHead, StreamTail
from gateway.wire import Usage

TOKEN = b"t" * 32


class Pool:
    """Answers as a pool replica would; records what it was asked and what it finished."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.cancelled: list[Any] = []
        self.release = asyncio.Event()

    async def send(self, call: Any) -> Completed:
        self.calls.append(call)
        if call == "limited":
            raise RateLimitError("slow down", retry_after=3.0, provider="up")
        if call == "hang":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(call)
                raise
        if call == "bug":
            raise KeyError("a bug")
        return Completed(b'{"id":"x"}', Usage.of(3, 4), 1.5)

    async def stream(self, call: Any) -> AsyncIterator[Any]:
        self.calls.append(call)
        yield StreamHead(b"data: head\n\n", 2.0)
        try:
            for n in range(3):
                if call == "cut" and n == 1:
                    raise ServiceUnavailableError("upstream went away", code="upstream_stream_cut")
                if call == "hang" and n == 1:
                    await self.release.wait()
                yield f"data: {n}\n\n".encode()
        except asyncio.CancelledError:
            self.cancelled.append(call)
            raise
        yield StreamTail(b"data: tail\n\n", Usage.of(1, 3), 9.0, 2.0)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Pool, ChannelServer, ChannelClient]]:
    pool = Pool()
    server = ChannelServer(pool, lambda: TOKEN)
    port = await server.start("127.0.0.1")
    listed = {"sim": [("127.0.0.1", port)]}

    async def endpoints(version: int) -> Any:
        return None if version == 1 else (1, TOKEN, listed, [])

    client = ChannelClient(endpoints)
    await client.refresh()
    yield pool, server, client
    client.aclose()
    server.close()


async def test_a_call_and_its_answer(served: Any) -> None:
    pool, server, client = served
    for _ in range(3):  # one kept-alive connection serves them all
        answer = await client.send("sim", "hello")
        assert answer == Completed(b'{"id":"x"}', Usage.of(3, 4), 1.5)
    assert pool.calls == ["hello"] * 3 and server.calls == 3
    assert len(client._endpoints["sim"][0].idle) == 1


async def test_a_pool_error_arrives_whole(served: Any) -> None:
    _, _, client = served
    with pytest.raises(RateLimitError) as info:
        await client.send("sim", "limited")
    assert (info.value.retry_after, info.value.provider) == (3.0, "up")
    assert await client.send("sim", "hello")  # the connection is still good


async def test_a_pool_bug_is_a_500_not_its_traceback(served: Any) -> None:
    _, _, client = served
    with pytest.raises(GatewayError) as info:
        await client.send("sim", "bug")
    assert info.value.status_code == 500 and "KeyError" in info.value.message
    assert "a bug" not in info.value.message


async def test_a_stream_in_order_then_its_tail(served: Any) -> None:
    _, _, client = served
    items = [item async for item in await client.stream("sim", "go")]
    assert isinstance(items[0], StreamHead) and isinstance(items[-1], StreamTail)
    assert items[1:-1] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    assert items[-1].usage == Usage.of(1, 3)


async def test_a_stream_cut_by_the_pool_raises_after_what_it_sent(served: Any) -> None:
    _, _, client = served
    seen = []
    with pytest.raises(ServiceUnavailableError, match="upstream went away"):
        async for item in await client.stream("sim", "cut"):
            seen.append(item)
    assert len(seen) == 2  # the head and one frame
    assert await client.send("sim", "hello")


async def test_a_caller_that_goes_away_cancels_the_pools_call(served: Any) -> None:
    pool, _, client = served
    waiting = asyncio.ensure_future(client.send("sim", "hang"))
    await _until(lambda: "hang" in pool.calls)
    waiting.cancel()
    await _until(lambda: pool.cancelled == ["hang"])

    items = await client.stream("sim", "hang")
    assert isinstance(await anext(items), StreamHead)
    assert await anext(items) == b"data: 0\n\n"
    await items.aclose()  # the client stopped reading
    await _until(lambda: pool.cancelled == ["hang", "hang"])


async def test_no_endpoint_or_a_refusing_one_means_the_handle(served: Any) -> None:
    _, server, client = served
    assert await client.send("openai", "hello") is None  # no pool of that type listed
    assert await client.send("sim", "hello")  # a connection kept alive after it
    server.close()  # the replica stopping closes it: not reused, and no new one is taken
    await asyncio.sleep(0.05)
    assert await client.send("sim", "hello") is None
    assert await client.stream("sim", "hello") is None  # shunned now: not even tried


async def test_a_connection_lost_mid_call_is_a_503_that_falls_back(served: Any) -> None:
    pool, _server, client = served
    waiting = asyncio.ensure_future(client.send("sim", "hang"))
    await _until(lambda: "hang" in pool.calls)
    for task in asyncio.all_tasks():  # the pool replica dies: its connection handler with it
        if task.get_coro().__qualname__ == "ChannelServer._connection":
            task.cancel()
    with pytest.raises(ServiceUnavailableError) as info:
        await waiting
    assert info.value.code == "pool_connection_lost" and info.value.retryable


async def test_a_call_to_a_replica_the_directory_dropped_fails_now(served: Any) -> None:
    # A node gone without a reset: nothing arrives on the connection until the directory,
    # missing the replica's heartbeats, drops it; then the call is a 503 at once.
    pool, _, client = served
    port = client._endpoints["sim"][0].address[1]
    listing: dict[str, Any] = {"sim": [("127.0.0.1", port)]}
    client._fetch = _listing(listing)
    await client.refresh()
    waiting = asyncio.ensure_future(client.send("sim", "hang"))
    await _until(lambda: "hang" in pool.calls)
    listing.clear()
    await client.refresh()
    with pytest.raises(ServiceUnavailableError) as info:
        await asyncio.wait_for(waiting, 1.0)
    assert info.value.code == "pool_connection_lost"


def _listing(listing: dict[str, Any]) -> Any:
    """A directory whose endpoints are `listing`, a new version at every read."""
    version = iter(range(100, 1000))

    async def endpoints(_: int) -> Any:
        return next(version), TOKEN, listing, []

    return endpoints


async def test_a_stopping_pool_waits_for_its_calls_in_flight(served: Any) -> None:
    from deployments.side_channel_pool import PoolChannel

    pool, server, client = served

    class Directory:
        class withdraw:  # an actor method: `directory.withdraw.remote(...)`
            @staticmethod
            async def remote(replica: str) -> None:
                return None

    channel = PoolChannel(pool, "sim", Directory())
    channel.server = server
    waiting = asyncio.ensure_future(client.send("sim", "hang"))
    await _until(lambda: server.in_flight == 1)
    stopping = asyncio.ensure_future(channel.aclose())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # the call in flight holds the stop
    pool.release.set()
    assert await waiting  # answered in full
    await asyncio.wait_for(stopping, 2.0)


async def test_a_draining_replica_finishes_its_calls_and_takes_no_new_one(served: Any) -> None:
    # The directory's own logic (the actor's class), as the pool's stop drives it: draining
    # first, while a call is in flight; gone once it is answered.
    from deployments.side_channel_directory import PoolDirectory

    pool, _server, client = served
    directory = PoolDirectory()
    port = client._endpoints["sim"][0].address[1]
    directory.announce("r1", "sim", ("127.0.0.1", port))

    async def endpoints(version: int) -> Any:
        listing = directory.endpoints(version)
        if listing is not None:  # the token the pool's listener checks stays the test's
            listing = (listing[0], TOKEN, *listing[2:])
        return listing

    client._fetch = endpoints
    await client.refresh()
    waiting = asyncio.ensure_future(client.stream("sim", "hang"))
    items = await waiting
    assert items is not None
    first = await anext(items)
    directory.withdraw("r1")  # the pool's stop begins
    await client.refresh()
    assert await client.send("sim", "new") is None  # no endpoint: Serve's handle takes it
    pool.release.set()
    rest = [item async for item in items]
    assert first == StreamHead(b"data: head\n\n", 2.0)
    assert rest[-1] == StreamTail(b"data: tail\n\n", Usage.of(1, 3), 9.0, 2.0)  # not cut
    directory.withdraw("r1", drained=True)
    assert directory.endpoints(0)[2:] == ({}, [])


async def test_without_the_token_nothing_is_read_as_a_call(served: Any) -> None:
    pool, _server, client = served
    port = client._endpoints["sim"][0].address[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(b"x" * 32) + frame(pickle.dumps(("send", "hello"))))
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader)
    writer.close()
    # A length past the token's is refused before anything is read into memory.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((2**31).to_bytes(4, "big"))
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader)
    writer.close()
    assert pool.calls == []


async def _until(done: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not done():
            await asyncio.sleep(0.01)


def test_frames_round_trip() -> None:
    async def main() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(frame(b"abc"))
        return await read_frame(reader)

    assert asyncio.run(main()) == b"abc"


def test_a_pool_that_autoscales_scales_on_its_side_channel_calls_too() -> None:
    from ray.serve._private.common import DeploymentID, ReplicaID
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    from deployments.side_channel import IN_FLIGHT_METRIC, autoscaling_policy

    config = AutoscalingConfig(
        min_replicas=1, max_replicas=8, target_ongoing_requests=2, upscale_delay_s=0
    )
    deployment = DeploymentID(name="OpenAIPool", app_name="llmgw")
    replica = ReplicaID("r1", deployment)

    def context(by_handle: float, by_channel: float) -> AutoscalingContext:
        return AutoscalingContext(
            deployment_id=deployment,
            deployment_name="OpenAIPool",
            app_name="llmgw",
            current_num_replicas=1,
            target_num_replicas=1,
            running_replicas=[replica],
            total_num_requests=lambda: by_handle,
            total_queued_requests=0,
            aggregated_metrics=lambda: {IN_FLIGHT_METRIC: {replica: by_channel}},
            raw_metrics=None,
            capacity_adjusted_min_replicas=1,
            capacity_adjusted_max_replicas=8,
            policy_state={},
            last_scale_up_time=None,
            last_scale_down_time=None,
            current_time=None,
            config=config,
        )

    assert autoscaling_policy(context(2, 0))[0] == 1  # at its target by handle alone
    assert autoscaling_policy(context(0, 8))[0] == 4  # 8 in flight by side channel: 4 replicas
    assert autoscaling_policy(context(4, 4))[0] == 4
