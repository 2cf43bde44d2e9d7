"""OpenAI's Responses API (`POST /v1/responses`) as our chat request and back.

Input items (messages, function calls and their outputs, reasoning kept from an earlier turn)
become chat messages after the conversation a `previous_response_id` names; `instructions`
become the system message; function tools, `text.format` and `reasoning.effort` map to their
chat fields. Our completion becomes the Response object with output items. Built-in tools,
`background`, `conversation` and stored prompts are refused by name.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.apis.response_items import call_item, message_item, messages_of, reasoning_item
from gateway.errors import InvalidRequestError
from gateway.pipeline.steps.admission import validation_error
from gateway.providers.thinking import THINKING_FIELD
from gateway.wire import MAX_TOKENS, ChatCompletionRequest, RouteHints


class ResponsesRequest(BaseModel):
    """The body of `POST /v1/responses` (`CreateResponse` in OpenAI's OpenAPI document)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tool_calls: int | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    # llmgw extensions, as on chat completions
    use_case: (
        Literal["chat", "summarization", "classification", "extraction", "research"] | None
    ) = None
    route: RouteHints | None = None

    @property
    def stored(self) -> bool:
        return self.store is not False


def parse_request(body: bytes) -> ResponsesRequest:
    """The client's body, or OpenAI's 400 naming the field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request ({exc.msg}).", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    try:
        request = ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    for param in ("background", "conversation", "prompt"):
        if getattr(request, param):
            raise InvalidRequestError(
                f"'{param}' is not supported by this gateway", param=param, code="unsupported"
            )
    if request.input is None and request.previous_response_id is None:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input")
    return request


def response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


# ---------------------------------------------------------------- request -> ours


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequestError(
        f"Invalid value for 'text.format.type': '{fmt.get('type')}'.", param="text.format"
    )


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise InvalidRequestError(
                f"Tool type '{tool.get('type')}' is not supported by this gateway; send "
                "function tools",
                param=f"tools[{i}].type",
            )
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequestError(
        "Invalid value for 'tool_choice': send auto, none, required or a function",
        param="tool_choice",
    )


def to_chat(request: ResponsesRequest, conversation: list[dict[str, Any]]) -> ChatCompletionRequest:
    """Our chat request for a Responses request whose conversation so far (earlier turns,
    then this turn's input items) is `conversation`."""
    messages = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages.extend(messages_of(conversation))
    tools = _tools(request.tools)
    chat: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": bool(request.stream),
        "tools": tools,
        "tool_choice": _tool_choice(request.tool_choice) if tools else None,
        "parallel_tool_calls": request.parallel_tool_calls if tools else None,
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "response_format": _response_format(request.text),
        "reasoning_effort": (request.reasoning or {}).get("effort"),
        "user": request.user,
        "safety_identifier": request.safety_identifier,
        "prompt_cache_key": request.prompt_cache_key,
        "use_case": request.use_case,
        "route": request.route,
    }
    if request.stream:
        chat["stream_options"] = {"include_usage": True}
    try:
        return ChatCompletionRequest.model_validate(
            {k: v for k, v in chat.items() if v is not None}
        )
    except ValidationError as exc:
        raise validation_error(exc) from None


# ---------------------------------------------------------------- ours -> response


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def output_items(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """The output items of our completion's first choice."""
    reply = completion["choices"][0].get("message") or {}
    items = []
    if reply.get(THINKING_FIELD):
        items.append(reasoning_item(reply[THINKING_FIELD]))
    if reply.get("content"):
        items.append(message_item(reply["content"]))
    elif reply.get("refusal"):
        items.append(message_item(reply["refusal"], refusal=True))
    for call in reply.get("tool_calls") or []:
        function = call["function"]
        items.append(call_item(call["id"], function["name"], function.get("arguments") or ""))
    return items


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(
    request: ResponsesRequest,
    rid: str,
    created_at: float,
    model: str,
    *,
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish: str | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    """The Response object, as `POST /v1/responses` and `GET /v1/responses/{id}` return it."""
    incomplete = _INCOMPLETE.get(finish or "")
    if incomplete is not None and status == "completed":
        status = "incomplete"
    fmt = (request.text or {}).get("format") or {"type": "text"}
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(created_at),
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "model": model,
        "output": output or [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": (request.reasoning or {}).get("effort"), "summary": None},
        "service_tier": "default",
        "store": request.stored,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": {"format": fmt},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_logprobs": request.top_logprobs or 0,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": request.truncation or "disabled",
        "metadata": request.metadata or {},
    }
    # Fields the schema does not let be null are left out until they have a value.
    if usage is not None:
        body["usage"] = usage
    if request.user is not None:
        body["user"] = request.user
    return body


def to_response(
    request: ResponsesRequest, rid: str, created_at: float, completion: dict[str, Any]
) -> dict[str, Any]:
    """The Response object for our completion."""
    return response_object(
        request,
        rid,
        created_at,
        completion.get("model") or request.model,
        output=output_items(completion),
        usage=usage_of(completion.get("usage")),
        finish=completion["choices"][0].get("finish_reason"),
    )


def item_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`GET /v1/responses/{id}/input_items`: a `ResponseItemList`."""
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }
