"""boto3 off the event loop: a ConverseStream opened in a thread and its events read there.

A thread cannot be interrupted, so a stream that opens after its caller gave up is closed at
once (freeing its connection), and closing a stream also frees a thread still blocked on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gateway.providers.blocking import BlockingPool


class StreamOpening:
    """A ConverseStream being opened in a thread; one that opens after its caller gave up is
    closed at once, freeing its connection, instead of being left unread."""

    def __init__(self, call: Callable[[], dict[str, Any]]) -> None:
        self._call = call
        self._lock = threading.Lock()
        self._abandoned = False
        self._response: dict[str, Any] | None = None

    def open(self) -> dict[str, Any]:
        """Open the stream (in a pool thread)."""
        response = self._call()
        with self._lock:
            self._response = response
            abandoned = self._abandoned
        if abandoned:
            _close(response)
        return response

    def abandon(self) -> None:
        """The caller gave up: close the stream now, or as soon as it opens."""
        with self._lock:
            self._abandoned = True
            response = self._response
        if response is not None:
            _close(response)


async def open_stream(pool: BlockingPool, call: Callable[[], dict[str, Any]]) -> EventReader:
    """Open a ConverseStream in `pool`; cancelled or failed, the opening is abandoned."""
    opening = StreamOpening(call)
    try:
        response = await pool.submit(opening.open)
    except BaseException:
        opening.abandon()
        raise
    return EventReader(pool, response["stream"])


class EventReader:
    """A ConverseStream's events, each read in the pool (already admitted: `admit=False`)."""

    def __init__(self, pool: BlockingPool, stream: Any) -> None:
        self._pool = pool
        self._stream = stream
        self._events = iter(stream)

    def __aiter__(self) -> EventReader:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self._pool.submit(next, self._events, None, admit=False)
        if event is None:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        # Closing the socket also frees a pool thread still blocked reading it.
        self._stream.close()


def _close(response: dict[str, Any]) -> None:
    stream = response.get("stream")
    if stream is not None:
        stream.close()
