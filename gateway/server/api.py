"""The OpenAI-compatible HTTP API: one FastAPI app per replica, over a `GatewayRuntime`."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import __version__
from gateway.errors import (
    GatewayError,
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
)
from gateway.pipeline.context import Endpoint, RequestContext
from gateway.routing.request import OPEN_POLICY
from gateway.server.admin import add_admin_routes
from gateway.server.admin_common import AdminRoutes
from gateway.server.admin_tenancy import add_tenancy_routes
from gateway.server.admin_usage import add_usage_routes
from gateway.server.body import read_body
from gateway.server.messages_routes import add_messages_routes
from gateway.server.openapi import openapi_document
from gateway.server.responses_routes import add_responses_routes
from gateway.server.runtime import GatewayRuntime
from gateway.server.streaming import sse_body
from gateway.usage.request_ids import served_request_id
from gateway.wire import ModelCard, ModelList, dump

logger = logging.getLogger("llmgw.api")

JSON = "application/json"
_STARTED = int(time.time())

_STATUS_ERRORS = {404: NotFoundError, 405: InvalidRequestError}


def error_response(error: GatewayError) -> Response:
    headers = error.headers()
    return Response(error.json(), status_code=error.status_code, media_type=JSON, headers=headers)


def _context(request: Request, endpoint: Endpoint) -> RequestContext:
    # Serve's proxy, or RequestIdMiddleware, puts an x-request-id on every request.
    request_id = served_request_id(request.headers.get("x-request-id"))
    return RequestContext(
        endpoint=endpoint,
        path=request.url.path,
        headers=request.headers,
        request_id=request_id,
    )


def _allowed(api: FastAPI, request: Request) -> list[str]:
    """The methods of the most specific route template the path matches (`/admin/models/x/
    deprecate` is a deprecation, though `/admin/models/{name:path}` matches it too)."""
    by_template: dict[str, set[str]] = {}
    for route in api.routes:
        match, _ = route.matches(request.scope)
        path = getattr(route, "path", None)
        if match != Match.NONE and path is not None:
            by_template.setdefault(path, set()).update(getattr(route, "methods", None) or ())
    if not by_template:
        return []
    literal = max(by_template, key=lambda path: len(re.sub(r"\{[^}]*\}", "", path)))
    return sorted(by_template[literal])


def _served_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-llmgw-overhead-ms": f"{ctx.overhead_ms():.2f}"}
    if ctx.model is not None:
        headers["x-llmgw-model"] = ctx.model.name
        headers["x-llmgw-provider"] = ctx.model.provider
        if ctx.usage is not None:
            # What this call is billed, as its usage record will hold it (eval sweeps read it).
            u = ctx.usage
            cost = ctx.model.price.cost(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
            headers["x-llmgw-cost-usd"] = repr(cost)
    return headers


class RequestIdMiddleware:
    """Gives every request an `x-request-id` (the client's, if it sent one) and echoes it.

    Ray Serve's proxy does the same in front of a replica, so a Serve ingress goes without.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = MutableHeaders(scope=scope)
        request_id = served_request_id(headers.get("x-request-id"))
        headers["x-request-id"] = request_id  # a client's unusable one is replaced

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


ModelCall = Callable[[Request], Awaitable[Response]]


class GatewayAPI(FastAPI):
    """FastAPI, with the model calls (`POST /v1/chat/completions`, `/v1/embeddings`) served
    ahead of its middleware stack and router.

    Those handlers take the raw `Request` and turn every error into OpenAI's error shape
    themselves, so FastAPI's layers (error and exception middleware, body limit, exit stack,
    route matching over every admin route, the endpoint wrapper) only cost CPU on them:
    about a tenth of a replica's own per-request CPU (bench/inproc.py). The routes stay
    registered with FastAPI too, for the OpenAPI document and for other methods (405).
    """

    def __init__(self, *, request_ids: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_calls: dict[str, ModelCall] = {}
        # Serve's proxy assigns request ids; without it this middleware does, on every path.
        self._entry: ASGIApp = (
            RequestIdMiddleware(self._dispatch) if request_ids else self._dispatch
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.model_calls.get(_route_path(scope))
            if handler is not None:
                await _serve(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (Serve's route prefix), as Starlette routes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _serve(handler: ModelCall, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await handler(Request(scope, receive, send))
    except Exception:
        # The handlers keep their errors in the context; this is the gateway's own bug.
        request_id = served_request_id(Headers(scope=scope).get("x-request-id"))
        logger.exception("request %s failed outside the pipeline", request_id)
        response = error_response(InternalError.for_request(request_id))
    await response(scope, receive, send)


def create_api(runtime: GatewayRuntime, *, request_ids: bool = True) -> GatewayAPI:
    """The app a replica serves: `/v1/*`, `/health*`, `/admin/*`, and with `server.docs`
    OpenAPI at `/docs` and `/openapi.json` (served without a key, so off unless set).

    `request_ids=False` under Ray Serve, whose proxy already assigns and echoes them.
    """
    docs = runtime.services.config.server.docs
    api = GatewayAPI(
        request_ids=request_ids,
        title="llmgw",
        version=__version__,
        description="An enterprise LLM gateway.",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    api.openapi = lambda: openapi_document(api)  # type: ignore[method-assign]
    pipeline = runtime.pipeline
    max_body = runtime.services.config.server.max_body_bytes

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cls = _STATUS_ERRORS.get(exc.status_code, InvalidRequestError)
        message = (
            f"Unknown request URL: {request.method} {request.url.path}."
            if exc.status_code == 404
            else f"{exc.detail}: {request.method} {request.url.path}"
        )
        response = error_response(cls(message, status_code=exc.status_code))
        if exc.status_code == 405:
            # HTTP asks a 405 to name the methods the resource does take.
            response.headers["allow"] = ", ".join(_allowed(api, request))
        return response

    @api.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        # Starlette's last resort is a plain-text 500; ours keeps OpenAI's error shape and
        # gives the request id to quote. Starlette still re-raises, so the server logs the bug.
        request_id = served_request_id(request.headers.get("x-request-id"))
        return error_response(InternalError.for_request(request_id))

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(InvalidRequestError(f"invalid request: {exc.errors()[0]['msg']}"))

    async def model_call(request: Request, endpoint: Endpoint) -> Response:
        ctx = _context(request, endpoint)
        # The body is read only once the caller is authenticated, and never past the limit.
        await pipeline.run(ctx, body=lambda: read_body(request, max_body))
        if ctx.error is not None:
            response = error_response(ctx.error)
            # Metering and audit run once the response is sent, off the client's clock.
            response.background = BackgroundTask(pipeline.finish, ctx)
            return response
        if ctx.stream is not None:
            headers = _served_headers(ctx)
            headers["cache-control"] = "no-cache"
            return StreamingResponse(
                sse_body(ctx, pipeline.finish), media_type="text/event-stream", headers=headers
            )
        assert ctx.completed is not None
        response = Response(ctx.completed.body, media_type=JSON, headers=_served_headers(ctx))
        response.background = BackgroundTask(pipeline.finish, ctx)
        return response

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await model_call(request, "chat")

    @api.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        return await model_call(request, "embeddings")

    api.model_calls.update({"/v1/chat/completions": chat_completions, "/v1/embeddings": embeddings})

    async def gate(request: Request, endpoint: Endpoint) -> RequestContext:
        ctx = _context(request, endpoint)
        await pipeline.run(ctx)
        return ctx

    @api.get("/v1/models")
    async def list_models(request: Request) -> Response:
        ctx = await gate(request, "models")
        if ctx.error is not None:
            return error_response(ctx.error)
        snapshot = runtime.services.snapshot()
        policy = ctx.principal.policy if ctx.principal else OPEN_POLICY
        # A tenant sees only the models it may use.
        cards = [
            ModelCard(id=m.name, created=_STARTED, owned_by=m.provider)
            for m in snapshot.models.values()
            if policy.permits(m.name, m.provider)
        ]
        return Response(dump(ModelList(data=cards)), media_type=JSON)

    @api.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> Response:
        ctx = await gate(request, "models")
        if ctx.error is not None:
            return error_response(ctx.error)
        model = runtime.services.snapshot().resolve(model_id)
        policy = ctx.principal.policy if ctx.principal else OPEN_POLICY
        if model is None or not policy.permits(model.name, model.provider):
            return error_response(
                ModelNotFoundError(
                    f"The model '{model_id}' does not exist or you do not have access to it.",
                    param="model",
                ),
            )
        card = ModelCard(id=model.name, created=_STARTED, owned_by=model.provider)
        return Response(dump(card), media_type=JSON)

    @api.get("/health")
    async def health(request: Request) -> Response:
        ctx = await gate(request, "health")
        if ctx.error is not None:
            return error_response(ctx.error)
        return Response(b'{"status":"ok"}', media_type=JSON)

    @api.get("/health/ready")
    async def ready(request: Request) -> Response:
        ctx = await gate(request, "health")
        if ctx.error is not None:
            return error_response(ctx.error)
        snapshot = runtime.services.snapshot()
        body = {"status": "ready", "registry_version": snapshot.version}
        body["models"] = len(snapshot.models)
        # A provider down is not the gateway down: routing already skips it.
        body["providers"] = {name: h.state for name, h in snapshot.health.items()}
        return Response(orjson.dumps(body), media_type=JSON)

    admin_routes = AdminRoutes(runtime, gate, error_response)
    add_admin_routes(api, admin_routes)
    add_tenancy_routes(api, admin_routes)
    add_usage_routes(api, runtime, gate, error_response)
    add_messages_routes(api, runtime)
    add_responses_routes(api, runtime)
    return api
