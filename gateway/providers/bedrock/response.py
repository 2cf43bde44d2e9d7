"""Converse answers as ours: a response as a `ChatCompletion`, ConverseStream events as chunks.

Reasoning (`reasoningContent`) reaches the client as `thinking_blocks` in Anthropic's shape,
whole once signed, for the client to send back with a tool-use turn.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from gateway.errors import UpstreamError
from gateway.providers.json_output import check_json_output, unfenced, wants_json_object
from gateway.providers.streams import ChunkStream, StreamedAnswer
from gateway.providers.thinking import THINKING_FIELD
from gateway.providers.upstream_errors import malformed_error
from gateway.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Delta,
    FunctionCall,
    ResponseMessage,
    ToolCall,
    Usage,
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Stop reasons that mean the answer is unusable.
FAILED_STOPS = {"malformed_model_output", "malformed_tool_use"}


def finish_reason(stop_reason: str, provider: str) -> str:
    """OpenAI's finish reason for Bedrock's stop reason; an unusable answer is an error."""
    if stop_reason in FAILED_STOPS:
        raise UpstreamError(
            f"provider '{provider}' stopped with '{stop_reason}': the model's output was unusable",
            provider=provider,
            code=stop_reason,
        )
    return FINISH_REASONS.get(stop_reason, "stop")


def completion(
    response: dict[str, Any], request: ChatCompletionRequest, model_name: str, provider: str
) -> ChatCompletion:
    """A Converse response as ours; a JSON-mode answer checked."""
    try:
        blocks = response["output"]["message"]["content"]
        stop_reason = response["stopReason"]
        usage = _usage(response["usage"])
    except (KeyError, TypeError):
        raise malformed_error(provider, "a Converse response without output") from None
    text, calls, thinking = "", [], []
    for block in blocks:
        if "text" in block:
            text += block["text"]
        elif "reasoningContent" in block:
            thinking.append(_thinking_block(block["reasoningContent"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            call = FunctionCall(name=use["name"], arguments=json.dumps(use["input"]))
            calls.append(ToolCall(id=use["toolUseId"], function=call))
    finish = finish_reason(stop_reason, provider)
    if wants_json_object(request):
        text = unfenced(text)
    if finish == "stop" and not calls:
        check_json_output(text, request.response_format, provider)
    message = ResponseMessage(content=(text or None) if calls else text, tool_calls=calls or None)
    if thinking:
        setattr(message, THINKING_FIELD, thinking)
    return ChatCompletion(
        model=model_name, choices=[Choice(message=message, finish_reason=finish)], usage=usage
    )


class ConverseStreamState(StreamedAnswer):
    """What a ConverseStream has shown so far; `messageStop` finishes it, `metadata` (after
    it) carries the usage, and both must arrive."""

    def __init__(self, request: ChatCompletionRequest, provider: str) -> None:
        super().__init__(request, provider)
        self.buffering = wants_json_object(request)
        self.thinking: dict[int, dict[str, Any]] = {}

    def chunks(self, event: dict[str, Any], chunks: ChunkStream) -> list[ChatCompletionChunk]:
        """Our chunks for one ConverseStream event."""
        if "messageStart" in event:
            return [chunks.chunk(Delta(role="assistant", content=""))]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use is None:
                return []
            head = self.calls.start(start["contentBlockIndex"], use["toolUseId"], use["name"])
            return [chunks.chunk(Delta(tool_calls=[head]))]
        if "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"], chunks)
        if "contentBlockStop" in event:
            reasoning = self.thinking.pop(event["contentBlockStop"]["contentBlockIndex"], None)
            if reasoning is None:
                return []
            # Sent whole once signed, for the client to send back with a tool-use turn.
            block = _thinking_block(
                {"redactedContent": reasoning["redactedContent"]}
                if "redactedContent" in reasoning
                else {"reasoningText": reasoning}
            )
            return [chunks.chunk(Delta.model_validate({THINKING_FIELD: [block]}))]
        if "messageStop" in event:
            stop_reason = event["messageStop"]["stopReason"]
            return self.finish(finish_reason(stop_reason, self.provider), chunks)
        if "metadata" in event:
            self.usage = _usage(event["metadata"]["usage"])
        return []

    def _delta(self, block: dict[str, Any], chunks: ChunkStream) -> list[ChatCompletionChunk]:
        delta, index = block["delta"], block["contentBlockIndex"]
        if "text" in delta:
            return self.content(delta["text"], chunks)
        if "reasoningContent" in delta:
            reasoning = self.thinking.setdefault(index, {})
            for key, value in delta["reasoningContent"].items():
                reasoning[key] = reasoning.get(key, "") + value if key == "text" else value
            return []
        fragment = delta.get("toolUse", {}).get("input")
        if fragment is not None and index in self.calls:
            return [chunks.chunk(Delta(tool_calls=[self.calls.arguments(index, fragment)]))]
        return []


def _thinking_block(reasoning: dict[str, Any]) -> dict[str, Any]:
    """Bedrock's reasoningContent in the Anthropic shape `thinking_blocks` carry."""
    if "redactedContent" in reasoning:
        data = base64.b64encode(reasoning["redactedContent"]).decode()
        return {"type": "redacted_thinking", "data": data}
    text = reasoning.get("reasoningText", {})
    return {
        "type": "thinking",
        "thinking": text.get("text", ""),
        "signature": text.get("signature"),
    }


def _usage(usage: dict[str, Any]) -> Usage:
    """OpenAI usage from Bedrock's, whose `inputTokens` leave cache reads and writes out."""
    cached = usage.get("cacheReadInputTokens")
    written = usage.get("cacheWriteInputTokens") or 0
    prompt = usage.get("inputTokens", 0) + (cached or 0) + written
    return Usage.of(prompt, usage.get("outputTokens", 0), cached)
