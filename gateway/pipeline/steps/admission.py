"""Steps that decide whether a request may proceed: validate, authenticate, authorize, admit."""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.errors import (
    AuthenticationError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from gateway.pipeline.context import RequestContext
from gateway.pipeline.step import ALL_ENDPOINTS, Step
from gateway.wire import ChatCompletionRequest, EmbeddingRequest

# Discriminated unions put the tag, and plain unions the type, into an error's location.
_UNION_LABELS = {"system", "developer", "user", "assistant", "tool", "text", "image_url"}


def _param(loc: tuple[Any, ...]) -> str:
    """`('messages', 0, 'user', 'content')` -> `messages[0].content`."""
    out = ""
    previous: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _union_label(previous, part):
            out += f".{part}" if out else str(part)
        previous = part
    return out


def _union_label(previous: Any, part: Any) -> bool:
    return (
        (isinstance(previous, int) and part in _UNION_LABELS)
        or "[" in str(part)
        or part in ("str", "int", "float", "bool", "list", "dict", "function-after")
    )


def validation_error(exc: ValidationError) -> InvalidRequestError:
    """The first problem in a request body, worded as OpenAI words it, naming the field."""
    error = exc.errors()[0]
    param = _param(error["loc"])
    if error["type"] == "extra_forbidden":
        return InvalidRequestError(
            f"Unrecognized request argument supplied: {param}",
            param=param,
            code="unknown_parameter",
        )
    if error["type"] == "missing":
        return InvalidRequestError(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    return InvalidRequestError(
        f"Invalid value for '{param}': {error['msg']}.", param=param, code="invalid_value"
    )


class Validate(Step):
    """Parse and check the body: JSON, OpenAI's schema, size and message-count limits."""

    name = "validate"

    async def handle(self, ctx: RequestContext) -> None:
        server = self.services.config.server
        if ctx.chat is not None:
            # Translated from another API at the edge (`/v1/messages`, `/v1/responses`).
            self._check_chat(ctx.chat)
            return
        if len(ctx.body) > server.max_body_bytes:
            raise PayloadTooLargeError(
                f"request body of {len(ctx.body)} bytes exceeds the limit of "
                f"{server.max_body_bytes} bytes"
            )
        try:
            data = orjson.loads(ctx.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(
                f"We could not parse the JSON body of your request ({exc.msg}).",
                code="invalid_json",
            ) from None
        if not isinstance(data, dict):
            raise InvalidRequestError(
                "The request body must be a JSON object.", code="invalid_json"
            )
        model_cls = ChatCompletionRequest if ctx.endpoint == "chat" else EmbeddingRequest
        try:
            parsed = model_cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if isinstance(parsed, ChatCompletionRequest):
            self._check_chat(parsed)
            ctx.chat = parsed
        else:
            ctx.embedding = parsed

    def _check_chat(self, chat: ChatCompletionRequest) -> None:
        max_messages = self.services.config.server.max_messages
        if len(chat.messages) > max_messages:
            raise InvalidRequestError(
                f"'messages' has {len(chat.messages)} items; at most {max_messages} are accepted",
                param="messages",
            )
        if chat.stream_options is not None and not chat.stream:
            raise InvalidRequestError(
                "'stream_options' is only allowed when 'stream' is true",
                param="stream_options",
            )


def _masked(key: str) -> str:
    return f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else "****"


class Authenticate(Step):
    """Who is calling: a Bearer key (or Anthropic's `x-api-key`) looked up (by hash) in the
    replica's key ring."""

    name = "authenticate"
    endpoints = ALL_ENDPOINTS

    async def handle(self, ctx: RequestContext) -> None:
        header = ctx.headers.get("authorization", "")
        if not header and ctx.headers.get("x-api-key"):
            header = f"Bearer {ctx.headers['x-api-key']}"
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if not header or scheme.lower() != "bearer" or not key:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        principal = self.services.keys.lookup(key)
        if principal is None:
            raise AuthenticationError(f"Incorrect API key provided: {_masked(key)}.")
        if principal.expired(time.time()):
            raise AuthenticationError(
                f"The API key {_masked(key)} has expired.", code="expired_api_key"
            )
        if principal.suspended:
            raise PermissionDeniedError(
                f"tenant '{principal.tenant}' is suspended", code="tenant_suspended"
            )
        ctx.principal = principal


# What each endpoint needs; every other `/admin` route needs `admin`, granted only by name.
_SCOPES = {
    "chat": "inference",
    "embeddings": "inference",
    "messages": "inference",
    "responses": "inference",
    "models": "inference",
}
_USAGE_READ_PATHS = frozenset({"/admin/usage"})


def required_scope(ctx: RequestContext) -> str:
    """The scope a request needs: `inference` for model calls and listings; `usage:read` to
    read usage (a tenant's own, the route enforces); `admin` for the rest of `/admin`."""
    if ctx.endpoint == "admin":
        return "usage:read" if ctx.path in _USAGE_READ_PATHS else "admin"
    return _SCOPES[ctx.endpoint]


class Authorize(Step):
    """Whether the caller's key may use this endpoint, and its tenant this use case; which
    models it may use is routing's (the tenant's policy)."""

    name = "authorize"
    endpoints = ALL_ENDPOINTS - {"health"}

    async def handle(self, ctx: RequestContext) -> None:
        scope = required_scope(ctx)
        if ctx.principal is None or not ctx.principal.may(scope):
            raise PermissionDeniedError(
                f"this API key is not allowed to use {ctx.path} (it lacks the '{scope}' scope)"
            )


class Admit(Step):
    """A turn among the replica's concurrent model calls.

    Past `server.max_concurrent_calls` a call waits for a slot instead of starting: an
    overloaded replica would otherwise slow every call until their first-token timeouts fire
    and trip the circuits of healthy providers. Rates and budgets are the `quota` step's.
    """

    name = "admit"

    def __init__(self, services: Any) -> None:
        super().__init__(services)
        server = services.config.server
        self._slots = asyncio.Semaphore(server.max_concurrent_calls)
        self._queue_timeout_s = server.queue_timeout_s

    async def handle(self, ctx: RequestContext) -> None:
        try:
            if self._slots.locked():  # wait in line (`wait_for` costs a task: only then)
                await asyncio.wait_for(self._slots.acquire(), self._queue_timeout_s)
            else:
                await self._slots.acquire()  # a free slot, nobody waiting: taken at once
        except TimeoutError:
            raise ServiceUnavailableError(
                f"the gateway is at capacity: no slot freed within {self._queue_timeout_s:g} s",
                code="gateway_at_capacity",
                retry_after=1.0,
            ) from None
        # Released once, by `finish` or, should the response never run (the client left
        # before it started), when the request context is collected.
        ctx.release = weakref.finalize(ctx, self._slots.release)

    async def finish(self, ctx: RequestContext) -> None:
        if ctx.release is not None:
            ctx.release()
