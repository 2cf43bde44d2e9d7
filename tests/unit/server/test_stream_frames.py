"""Frames ready together cross a hop as one item; nothing is lost, reordered or left open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.errors import UpstreamError
from gateway.providers.framing import StreamHead, StreamItem, StreamTail, coalesced, sse
from gateway.wire import Usage

HEAD = StreamHead(sse(b'{"role":"assistant"}'), 1.0)
TAIL = StreamTail(sse(b'{"usage":{}}'), Usage.of(1, 5), 2.0, 1.0)
FRAMES = [sse(b'{"n":%d}' % i) for i in range(5)]


class Upstream:
    """A framed stream, either all at once or one frame every `gap_s`; notes its closing."""

    def __init__(self, gap_s: float = 0.0, fail_after: int | None = None) -> None:
        self.gap_s = gap_s
        self.fail_after = fail_after
        self.closed = False

    async def items(self) -> AsyncIterator[StreamItem]:
        try:
            yield HEAD
            for i, frame in enumerate(FRAMES):
                if self.fail_after == i:
                    raise UpstreamError("cut", provider="p")
                if self.gap_s:
                    await asyncio.sleep(self.gap_s)
                yield frame
            yield TAIL
        finally:
            self.closed = True


async def test_a_burst_crosses_as_one_item_between_head_and_tail() -> None:
    upstream = Upstream()
    out = [item async for item in coalesced(upstream.items())]
    assert out[0] is HEAD and out[-1] is TAIL
    assert b"".join(out[1:-1]) == b"".join(FRAMES)
    assert len(out) < 2 + len(FRAMES)
    assert upstream.closed


async def test_a_paced_stream_keeps_one_frame_per_item() -> None:
    out = [item async for item in coalesced(Upstream(gap_s=0.01).items())]
    assert out == [HEAD, *FRAMES, TAIL]


async def test_frames_before_a_failure_arrive_then_the_error() -> None:
    got: list[StreamItem] = []
    with pytest.raises(UpstreamError):
        async for item in coalesced(Upstream(gap_s=0.01, fail_after=3).items()):
            got.append(item)
    assert got == [HEAD, *FRAMES[:3]]


async def test_a_reader_that_leaves_closes_the_upstream() -> None:
    upstream = Upstream(gap_s=0.05)
    stream = coalesced(upstream.items())
    assert await anext(stream) is HEAD
    await stream.aclose()
    await asyncio.sleep(0)
    assert upstream.closed


def test_frames_counted_by_their_blank_lines() -> None:
    joined = b"".join(FRAMES)
    assert joined.count(b"\n\n") == len(FRAMES)
