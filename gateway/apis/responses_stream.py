"""Our chat chunk stream as the Responses API's event stream.

`response.created` and `response.in_progress`; per output item `response.output_item.added`,
its content (`response.content_part.added`, `response.output_text.delta` ... `.done`,
`response.content_part.done`, or `response.function_call_arguments.delta` ... `.done`) and
`response.output_item.done`; then `response.completed` (or `response.incomplete`). A failure
mid-stream is an `error` event followed by `response.failed`. Every event has its sequence
number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.apis.frames import named_event, payloads
from gateway.apis.response_items import call_item, message_item, reasoning_item
from gateway.apis.responses import ResponsesRequest, response_object, usage_of
from gateway.errors import GatewayError
from gateway.providers.thinking import THINKING_FIELD


class ResponseEvents:
    """One streamed response: its events, and the Response object once it is complete."""

    def __init__(self, request: ResponsesRequest, rid: str, created_at: float, model: str) -> None:
        self.request = request
        self.rid = rid
        self.created_at = created_at
        self.model = model
        self.output: list[dict[str, Any]] = []
        self.sequence = 0
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.open_key: Any = None  # "text", or a tool call's index

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return named_event(kind, payload)

    def snapshot(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(
            self.request,
            self.rid,
            self.created_at,
            self.model,
            output=list(self.output),
            status=status,
            **fields,
        )

    async def events(
        self,
        frames: AsyncIterator[bytes],
        failure: Callable[[], GatewayError | None],
        completed: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> AsyncIterator[bytes]:
        """The Responses events for our stream; `completed` (which keeps the response) runs
        before `response.completed` is sent, so a follow-up can name it at once."""
        yield self.event("response.created", response=self.snapshot("in_progress"))
        yield self.event("response.in_progress", response=self.snapshot("in_progress"))
        usage: dict[str, Any] | None = None
        finish: str | None = None
        async for payload in payloads(frames):
            if "error" in payload:
                error = failure()
                body = payload["error"]
                code = error.code if error is not None else body.get("code")
                yield self.event(
                    "error", code=code, message=body.get("message", ""), param=body.get("param")
                )
                failed = {"code": "server_error", "message": body.get("message", "")}
                response = self.snapshot("failed")
                response["error"] = failed
                yield self.event("response.failed", response=response)
                return
            if payload.get("usage") and not payload.get("choices"):
                usage = payload["usage"]
                continue
            for choice in payload.get("choices") or []:
                for event in self._delta(choice.get("delta") or {}):
                    yield event
                finish = choice.get("finish_reason") or finish
        for event in self._close():
            yield event
        response = self.snapshot("completed", usage=usage_of(usage), finish=finish)
        await completed(response)
        name = "response.completed" if response["status"] == "completed" else "response.incomplete"
        yield self.event(name, response=response)

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        if delta.get(THINKING_FIELD):
            events.extend(self._close())
            item = reasoning_item(delta[THINKING_FIELD])
            index = len(self.output)
            self.output.append(item)
            events.append(self.event("response.output_item.added", output_index=index, item=item))
            events.append(self.event("response.output_item.done", output_index=index, item=item))
        text = delta.get("content") or delta.get("refusal")
        if text:
            if self.open_key != "text":
                events.extend(self._open_message())
            self.open["content"][0]["text"] += text
            events.append(
                self.event(
                    "response.output_text.delta",
                    item_id=self.open["id"],
                    output_index=len(self.output),
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            if call.get("id") is not None or self.open_key != ("tool", call.get("index", 0)):
                events.extend(self._close())
                self.open = call_item(call.get("id") or "", function.get("name") or "", "")
                self.open["status"] = "in_progress"
                self.open_key = ("tool", call.get("index", 0))
                added = dict(self.open)
                events.append(
                    self.event(
                        "response.output_item.added", output_index=len(self.output), item=added
                    )
                )
            if function.get("arguments"):
                self.open["arguments"] += function["arguments"]
                events.append(
                    self.event(
                        "response.function_call_arguments.delta",
                        item_id=self.open["id"],
                        output_index=len(self.output),
                        delta=function["arguments"],
                    )
                )
        return events

    def _open_message(self) -> list[bytes]:
        events = self._close()
        item = message_item("", status="in_progress")
        item["content"] = []
        self.open, self.open_key = item, "text"
        index = len(self.output)
        events.append(self.event("response.output_item.added", output_index=index, item=dict(item)))
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        events.append(
            self.event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=dict(part),
            )
        )
        item["content"].append(part)
        return events

    def _close(self) -> list[bytes]:
        item, self.open, key = self.open, None, self.open_key
        self.open_key = None
        if item is None:
            return []
        index = len(self.output)
        item["status"] = "completed"
        self.output.append(item)
        events = []
        if key == "text":
            part = item["content"][0]
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(
                self.event("response.output_text.done", text=part["text"], logprobs=[], **common)
            )
            events.append(self.event("response.content_part.done", part=part, **common))
        else:
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    name=item["name"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
        events.append(self.event("response.output_item.done", output_index=index, item=item))
        return events
