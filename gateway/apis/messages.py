"""Anthropic's Messages API (`POST /v1/messages`) as our chat request and back.

The request is translated into our `ChatCompletionRequest` (system, text, images, tool use and
tool results, thinking blocks sent back, `thinking` as a reasoning effort, structured output),
so routing, limits and every provider serve it; the body itself rides along for an Anthropic
model, whose adapter sends it as it came (see `gateway.providers.native`). What only Anthropic
can honour (documents, server tools, `top_k`, ...) is named, and other providers refuse it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.apis.message_blocks import BlockTranslation
from gateway.errors import GatewayError, InvalidRequestError
from gateway.pipeline.steps.admission import validation_error
from gateway.providers.native import TranslatedRequest
from gateway.providers.thinking import THINKING_FIELD
from gateway.wire import MAX_TOKENS, JsonObject, RouteHints

ANTHROPIC = "anthropic"

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "function_call": "tool_use",
}

# Our statuses as Anthropic's error types.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Thinking budgets as the reasoning effort other providers take.
_EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))


class MessagesRequest(BaseModel):
    """The body of `POST /v1/messages`: top-level fields checked, content blocks walked."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    tools: list[JsonObject] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    service_tier: str | None = None
    container: Any = None
    mcp_servers: list[dict[str, Any]] | None = None
    context_management: dict[str, Any] | None = None
    # Hints only Anthropic reads; other providers go without them.
    cache_control: dict[str, Any] | None = None
    speed: str | None = None
    inference_geo: str | None = None
    diagnostics: Any = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
    # llmgw extensions, as on chat completions
    use_case: (
        Literal["chat", "summarization", "classification", "extraction", "research"] | None
    ) = None
    route: RouteHints | None = None


class CountTokensRequest(MessagesRequest):
    """The body of `POST /v1/messages/count_tokens`: a message request without `max_tokens`."""

    max_tokens: int = Field(default=1, ge=1, le=MAX_TOKENS)


def parse_request(
    body: bytes, cls: type[MessagesRequest] = MessagesRequest
) -> tuple[MessagesRequest, dict[str, Any]]:
    """The client's body, checked and as sent, or a 400 naming the field as Anthropic does
    (`max_tokens: Field required`)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("There was an error parsing the body.") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    try:
        return cls.model_validate(data), data
    except ValidationError as exc:
        error = validation_error(exc)
        detail = exc.errors()[0]
        what = {"missing": "Field required", "extra_forbidden": "Extra inputs are not permitted"}
        text = what.get(detail["type"], detail["msg"])
        raise InvalidRequestError(f"{error.param}: {text}", param=error.param) from None


# ---------------------------------------------------------------- request -> ours


def _tool_choice(choice: dict[str, Any] | None) -> tuple[Any, bool | None]:
    if not choice:
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise InvalidRequestError(
        "tool_choice: expected type auto, any, tool (with a name) or none", param="tool_choice"
    )


def _effort(request: MessagesRequest) -> str | None:
    effort = (request.output_config or {}).get("effort")
    if effort is not None:
        return effort
    thinking = request.thinking or {}
    if thinking.get("type") == "adaptive":
        return "medium"
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens") or 0
    return next((name for limit, name in _EFFORT_BUDGETS if budget <= limit), "high")


def _response_format(request: MessagesRequest) -> dict[str, Any] | None:
    fmt = (request.output_config or {}).get("format")
    if not fmt:
        return None
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequestError(
            "output_config.format: expected {type: json_schema, schema: {...}}",
            param="output_config.format",
        )
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def to_chat(
    request: MessagesRequest, body: dict[str, Any], headers: dict[str, str] | None = None
) -> TranslatedRequest:
    """Our chat request for a Messages request, carrying `body` (and Anthropic's own
    `headers`, such as `anthropic-beta`) for an Anthropic model."""
    t = BlockTranslation()
    messages = t.system(request.system)
    for i, message in enumerate(request.messages):
        messages.extend(t.turn(i, message))
    if request.container is not None:
        # Containers are reused by id within the upstream account all tenants share.
        raise InvalidRequestError(
            "container: not served by this gateway (containers are shared by its tenants)",
            param="container",
        )
    for param in ("top_k", "mcp_servers", "context_management"):
        if getattr(request, param) is not None:
            t.only_native(param, f"'{param}'")
    choice, parallel = _tool_choice(request.tool_choice)
    chat: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": bool(request.stream),
        "tools": t.tools(request.tools),
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop_sequences or None,
        "reasoning_effort": _effort(request),
        "response_format": _response_format(request),
        "service_tier": None,
        "user": (request.metadata or {}).get("user_id"),
        "use_case": request.use_case,
        "route": request.route,
    }
    if request.stream:
        # The event stream's final usage comes from our usage chunk.
        chat["stream_options"] = {"include_usage": True}
    if chat["tools"] is None:
        chat["tool_choice"] = chat["parallel_tool_calls"] = None
    chat = {k: v for k, v in chat.items() if v is not None}
    try:
        translated = TranslatedRequest.model_validate(chat)
    except ValidationError as exc:
        raise validation_error(exc) from None
    native = {k: v for k, v in body.items() if k not in ("use_case", "route")}
    return translated.carrying(ANTHROPIC, native, tuple(t.native_only), headers or {})


# ---------------------------------------------------------------- ours -> response


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic's usage from ours: its `input_tokens` leave cached tokens out."""
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": max(0, (usage.get("prompt_tokens") or 0) - cached),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def to_message(completion: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Message from our chat completion (its first choice)."""
    choice = completion["choices"][0]
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = list(reply.get(THINKING_FIELD) or [])
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        content.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": call["function"]["name"],
                "input": _arguments(call["function"].get("arguments")),
            }
        )
    if reply.get("refusal") and not reply.get("content"):
        content.append({"type": "text", "text": reply["refusal"]})
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(completion.get("usage")),
    }


def _arguments(arguments: str | None) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {}


# ---------------------------------------------------------------- errors


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(error: GatewayError, request_id: str | None = None) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}`, as Anthropic answers errors."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(error.status_code), "message": error.message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)
