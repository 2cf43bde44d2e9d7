"""What a streamed completion is built from: chunks sharing one id, and the state an adapter
keeps while it reads the upstream's events.

`StreamState.finished` is set only by the upstream's own completion signal (a finish reason,
`message_stop`, `messageStop`, `done`); the base adapter treats a stream that ends without it
as cut, never as a shorter answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.providers.json_output import check_json_output, unfenced
from gateway.wire import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    Usage,
    completion_id,
)


@dataclass
class ChunkStream:
    """Builds the chunks of one streamed completion with a shared id, time and model name."""

    model: str
    id: str = field(default_factory=completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def chunk(self, delta: Delta, finish_reason: str | None = None) -> ChatCompletionChunk:
        """One chunk with one choice."""
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
        )

    def usage(self, usage: Usage) -> ChatCompletionChunk:
        """The last chunk: usage and no choices."""
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=[], usage=usage
        )


class StreamState:
    """What one stream has shown so far: whether it started, whether the upstream signalled
    its end (`finished`), and the usage it reported."""

    def __init__(self, request: ChatCompletionRequest, provider: str) -> None:
        self.request = request
        self.provider = provider
        self.started = False
        self.finished = False
        self.usage: Usage | None = None

    def final_usage(self) -> Usage:
        """The usage the last chunk carries (read once the stream is done)."""
        return self.usage or Usage()


class ToolCallDeltas:
    """OpenAI-style tool-call deltas from a provider's content blocks, indexed from 0."""

    def __init__(self) -> None:
        self._index: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    def start(self, block: Any, call_id: str, name: str) -> ToolCallDelta:
        """The first delta of a call: index, id, type, name and empty arguments."""
        index = self._index.setdefault(block, len(self._index))
        return ToolCallDelta(
            index=index,
            id=call_id,
            type="function",
            function=FunctionCallDelta(name=name, arguments=""),
        )

    def arguments(self, block: Any, fragment: str) -> ToolCallDelta:
        """A fragment of a started call's arguments."""
        return ToolCallDelta(
            index=self._index[block], function=FunctionCallDelta(arguments=fragment)
        )

    def __contains__(self, block: Any) -> bool:
        return block in self._index


class StreamedAnswer(StreamState):
    """A streamed answer's text and tool calls so far, checked when it finishes.

    Emulated JSON (`json_object` where the provider has no mode for it) is held back and sent
    whole once it parses; everything else streams as it comes.
    """

    def __init__(self, request: ChatCompletionRequest, provider: str) -> None:
        super().__init__(request, provider)
        self.buffering = False
        self.calls = ToolCallDeltas()
        self.text = ""

    def content(self, text: str, chunks: ChunkStream) -> list[ChatCompletionChunk]:
        """Chunks for a piece of text (none while emulated JSON is held back)."""
        self.text += text
        return [] if self.buffering else [chunks.chunk(Delta(content=text))]

    def finish(self, finish: str, chunks: ChunkStream) -> list[ChatCompletionChunk]:
        """The upstream's completion signal: held-back text, the JSON check, the finish chunk."""
        self.finished = True
        out = []
        if self.buffering:
            self.text = unfenced(self.text) if finish == "stop" else self.text
            out.append(chunks.chunk(Delta(content=self.text)))
        if finish == "stop" and not len(self.calls):
            check_json_output(self.text, self.request.response_format, self.provider)
        out.append(chunks.chunk(Delta(), finish_reason=finish))
        return out
