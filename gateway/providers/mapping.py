"""What the adapters share: upstream errors into our taxonomy, time budgets, JSON-output
checks, tool-call stream deltas and embedding encodings (images: `images.py`; schemas:
`schemas.py`).

Each adapter keeps its own three converters (request, response, stream event); this module
holds only what would otherwise be written five times.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import os
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.config import ModelConfig, ProviderConfig, Timeouts
from gateway.errors import (
    ContentFilterError,
    ContextLengthError,
    GatewayError,
    InvalidRequestError,
    OutputSchemaError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    from_status,
    upstream_failure,
)
from gateway.providers.base import ChunkStream
from gateway.providers.schemas import check_output_schema, output_schema, validate_output
from gateway.wire import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    Delta,
    FunctionCallDelta,
    ImagePart,
    ResponseFormat,
    ToolCallDelta,
    UserMessage,
)

T = TypeVar("T")

# ------------------------------------------------------------------------------ credentials


def api_key(config: ProviderConfig, default_env: str) -> str | None:
    """The provider's key from the environment variable its config names (or the default)."""
    return os.environ.get(config.api_key_env or default_env) or None


def missing_key(config: ProviderConfig, default_env: str) -> UpstreamError:
    env = config.api_key_env or default_env
    return UpstreamError(
        f"provider '{config.name}' has no API key: environment variable {env} is not set",
        provider=config.name,
        code="upstream_auth_failed",
    )


# ------------------------------------------------------------------------------ errors

_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|input is too long"
    r"|too many (input )?tokens|exceeds the context",
    re.IGNORECASE,
)
_CONTENT_FILTER_CODES = {"content_filter", "content_policy_violation", "responsible_ai_policy"}


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def upstream_error(
    provider: str,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    param: str | None = None,
    upstream_type: str | None = None,
) -> GatewayError:
    """The taxonomy error for an upstream's HTTP failure: status first, then what 400s mean.

    The upstream's `message` never reaches the client (see `from_status`).
    """
    if status in (400, 413, 422) and (
        code == "context_length_exceeded" or _CONTEXT_LENGTH.search(message)
    ):
        error: GatewayError = ContextLengthError(
            f"upstream provider '{provider}' answered {status} (context_length_exceeded): the "
            "prompt does not fit the model's context window",
            param="messages",
            provider=provider,
        )
        return upstream_failure(error, provider, message, "context length exceeded")
    if status in (400, 403) and code in _CONTENT_FILTER_CODES:
        error = ContentFilterError(
            f"upstream provider '{provider}' answered {status} ({code}): its content filter "
            "refused the request",
            param=param,
            provider=provider,
        )
        return upstream_failure(error, provider, message, "content filtered")
    return from_status(
        status,
        message,
        provider=provider,
        retry_after=retry_after(headers),
        code=code if status < 500 else None,
        param=param,
        upstream_type=upstream_type,
    )


def timeout_error(provider: str, seconds: float | None = None) -> UpstreamTimeoutError:
    within = f" within {seconds:g}s" if seconds else ""
    return UpstreamTimeoutError(f"provider '{provider}' did not answer{within}", provider=provider)


def connection_error(provider: str, exc: BaseException) -> ServiceUnavailableError:
    """Cannot reach the upstream; which host or address failed stays in the log."""
    error = ServiceUnavailableError(f"cannot reach provider '{provider}'", provider=provider)
    return upstream_failure(error, provider, f"{type(exc).__name__}: {exc}", "unreachable")


def malformed_error(provider: str, what: str) -> UpstreamError:
    error = UpstreamError(
        f"provider '{provider}' sent a response that could not be read",
        provider=provider,
        code="malformed_upstream_response",
    )
    return upstream_failure(error, provider, what, "unreadable response")


def stream_error(provider: str, detail: str) -> UpstreamError:
    """An error event inside a 200 stream: no status, only the upstream's words (logged)."""
    error = UpstreamError(f"provider '{provider}' failed mid-stream", provider=provider)
    return upstream_failure(error, provider, detail, "failed mid-stream")


def cut_error(provider: str) -> UpstreamError:
    return UpstreamError(
        f"provider '{provider}' ended the stream before finishing the response",
        provider=provider,
        code="upstream_stream_cut",
    )


# ------------------------------------------------------------------------------ time budgets


@dataclass
class Deadline:
    """One call's time budget: `total_s` for all of it, `first_token_s` for a stream's start."""

    timeouts: Timeouts
    provider: str
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return max(0.0, self.timeouts.total_s - (time.monotonic() - self.started))

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await within the total budget; past it, an `UpstreamTimeoutError`."""
        try:
            return await asyncio.wait_for(awaitable, self.remaining())
        except asyncio.TimeoutError:
            raise timeout_error(self.provider, self.timeouts.total_s) from None

    async def first(self, awaitable: Awaitable[T]) -> T:
        """Await a stream's opening within what is left of `first_token_s` (and `total_s`)."""
        elapsed = time.monotonic() - self.started
        limit = min(self.remaining(), max(0.0, self.timeouts.first_token_s - elapsed))
        try:
            return await asyncio.wait_for(awaitable, limit)
        except asyncio.TimeoutError:
            raise timeout_error(self.provider, self.timeouts.first_token_s) from None

    async def events(self, events: AsyncIterator[T]) -> AsyncIterator[T]:
        """A stream's events within the budget: the first by `first_token_s`, all by `total_s`."""
        first = True
        while True:
            limit = self.remaining()
            if first:
                elapsed = time.monotonic() - self.started
                limit = min(limit, max(0.0, self.timeouts.first_token_s - elapsed))
            try:
                event = await asyncio.wait_for(events.__anext__(), limit)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                seconds = self.timeouts.first_token_s if first else self.timeouts.total_s
                raise timeout_error(self.provider, seconds) from None
            first = False
            yield event


# ------------------------------------------------------------------------------ capabilities


def has_images(request: ChatCompletionRequest) -> bool:
    return any(
        isinstance(m, UserMessage)
        and not isinstance(m.content, str)
        and any(isinstance(p, ImagePart) for p in m.content)
        for m in request.messages
    )


def check_capabilities(request: ChatCompletionRequest, model: ModelConfig) -> None:
    """Refuse images and JSON output a model cannot handle, naming the parameter."""
    if has_images(request) and "vision" not in model.capabilities:
        raise InvalidRequestError(
            f"model '{model.name}' does not accept images; send text only", param="messages"
        )
    fmt = request.response_format
    if fmt is not None and fmt.type != "text" and "json_mode" not in model.capabilities:
        raise InvalidRequestError(
            f"model '{model.name}' does not support response_format '{fmt.type}'",
            param="response_format",
        )
    check_output_schema(fmt)


def refuse(param: str, provider_type: str, detail: str = "") -> InvalidRequestError:
    """The 400 for a parameter a provider cannot honour."""
    suffix = f": {detail}" if detail else ""
    return InvalidRequestError(
        f"'{param}' is not supported by provider type '{provider_type}'{suffix}", param=param
    )


# ------------------------------------------------------------------------------ JSON output


def tool_arguments(arguments: str) -> dict[str, Any]:
    """An assistant tool call's JSON arguments as the object Anthropic, Bedrock, Ollama want."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        raise InvalidRequestError(
            "an assistant tool call's arguments are not valid JSON", param="messages"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "an assistant tool call's arguments must be a JSON object", param="messages"
        )
    return value


def check_json_output(content: str | None, fmt: ResponseFormat | None, provider: str) -> None:
    """A JSON-mode answer must parse and satisfy the schema; otherwise an `OutputSchemaError`
    (a 502 that neither opens the model's circuit nor moves on to other models)."""
    if output_schema(fmt) is None:
        return
    try:
        value = json.loads(content or "")
    except ValueError:
        raise OutputSchemaError(
            f"provider '{provider}' answered a JSON-mode request with text that is not JSON",
            provider=provider,
        ) from None
    validate_output(value, fmt, provider)


# `json_object` where a provider has no JSON-object mode (Anthropic, Bedrock): an instruction,
# and the answer checked. Not a forced tool: current Claude models refuse forced tool use
# (Sonnet 5.5 always, others with adaptive thinking on), and native structured outputs cannot
# express "any object" (every object must close its properties).
JSON_INSTRUCTION = (
    "Answer with a single JSON object and nothing else: no prose before or after it and no "
    "Markdown code fences."
)
_FENCE = re.compile(r"^\s*```(?:json)?[ \t]*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def wants_json_object(request: ChatCompletionRequest) -> bool:
    fmt = request.response_format
    return fmt is not None and fmt.type == "json_object"


def unfenced(text: str) -> str:
    """An emulated JSON answer without the Markdown fence a model may still wrap it in."""
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text.strip()


# ------------------------------------------------------------------------------ reasoning

# A model's signed reasoning rides on assistant messages as `thinking_blocks` (LiteLLM's name):
# Anthropic and Bedrock refuse a tool-use turn replayed without it while thinking is on.
THINKING_FIELD = "thinking_blocks"


# The string fields each reasoning block must carry (`signature` may be absent).
_THINKING_FIELDS = {"thinking": ("thinking",), "redacted_thinking": ("data",)}


def thinking_blocks_of(message: Any) -> list[dict[str, Any]]:
    """The reasoning blocks a client sent back on an assistant turn, in Anthropic's shape;
    a block missing its content is a 400 naming the field."""
    blocks = (getattr(message, "model_extra", None) or {}).get(THINKING_FIELD) or []
    if not isinstance(blocks, list):
        raise InvalidRequestError(f"'{THINKING_FIELD}' must be a list", param="messages")
    kept = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in _THINKING_FIELDS:
            continue
        for name in _THINKING_FIELDS[block["type"]]:
            if not isinstance(block.get(name), str):
                raise InvalidRequestError(
                    f"{THINKING_FIELD}[{i}].{name}: a {block['type']} block needs its '{name}' "
                    "string, as it was received",
                    param="messages",
                )
        if not isinstance(block.get("signature") or "", str):
            raise InvalidRequestError(
                f"{THINKING_FIELD}[{i}].signature must be a string", param="messages"
            )
        kept.append(block)
    return kept


# ------------------------------------------------------------------------------ streams


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
        return ToolCallDelta(
            index=self._index[block], function=FunctionCallDelta(arguments=fragment)
        )

    def __contains__(self, block: Any) -> bool:
        return block in self._index


# ------------------------------------------------------------------------------ embeddings


def encode_embedding(vector: list[float], encoding_format: str | None) -> list[float] | str:
    """A vector as floats, or as base64 of little-endian float32 bytes (as OpenAI does)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return [float(v) for v in vector]


def merge_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive turns of one role as one turn of blocks, as Anthropic and Bedrock want.

    Consecutive tool results become one user turn (the next user text joins it after them).
    """
    merged: list[dict[str, Any]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"].extend(turn["content"])
        else:
            merged.append({"role": turn["role"], "content": list(turn["content"])})
    return merged


class StreamedAnswer:
    """A streamed answer's text and tool calls so far, checked when it finishes.

    Emulated JSON (`json_object` where the provider has no mode for it) is held back and sent
    whole once it parses; everything else streams as it comes.
    """

    def __init__(self, request: ChatCompletionRequest, provider: str) -> None:
        self.request = request
        self.provider = provider
        self.buffering = False
        self.calls = ToolCallDeltas()
        self.text = ""

    def content(self, text: str, chunks: ChunkStream) -> list[ChatCompletionChunk]:
        self.text += text
        return [] if self.buffering else [chunks.chunk(Delta(content=text))]

    def finish(self, finish: str, chunks: ChunkStream) -> list[ChatCompletionChunk]:
        out = []
        if self.buffering:
            self.text = unfenced(self.text) if finish == "stop" else self.text
            out.append(chunks.chunk(Delta(content=self.text)))
        if finish == "stop" and not len(self.calls):
            check_json_output(self.text, self.request.response_format, self.provider)
        out.append(chunks.chunk(Delta(), finish_reason=finish))
        return out
