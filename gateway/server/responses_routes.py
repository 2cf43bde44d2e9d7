"""`/v1/responses`: OpenAI's Responses API, with conversations the gateway keeps per tenant.

`POST` runs the chat pipeline on the translated request; a kept response (`store`, the
default) is written before the answer (or `response.completed`) goes out, so the client's next
turn can name it at once. Reads and deletes are scoped to the caller's tenant: another
tenant's id is a 404, exactly as an unknown one. The store is read and written off the event
loop; one read per `previous_response_id` (the state the client asked for), no actor hop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.apis.response_items import input_items
from gateway.apis.responses import (
    ResponsesRequest,
    item_list,
    parse_request,
    response_id,
    to_chat,
    to_response,
)
from gateway.apis.responses_stream import ResponseEvents
from gateway.config import store_url
from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.pipeline.context import RequestContext
from gateway.server.runtime import GatewayRuntime
from gateway.server.translated import (
    finished_after,
    gated,
    json_answer,
    run_translated,
    stream_answer,
)
from gateway.store import Store
from gateway.store.responses import StoredResponse
from gateway.usage.records import utcnow
from gateway.wire import ChatCompletionRequest

logger = logging.getLogger("llmgw.responses")
JSON = "application/json"
MAX_ITEMS_LIMIT = 100


class ResponseBook:
    """Kept responses in the store by URL (opened on first use), off the event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def _opened(self) -> Store:
        if self._store is None:
            self._store = Store(self.url)
        return self._store

    async def load(self, tenant: str, rid: str) -> StoredResponse | None:
        return await asyncio.to_thread(lambda: self._opened().load_response(tenant, rid))

    async def save(self, stored: StoredResponse) -> None:
        await asyncio.to_thread(lambda: self._opened().save_response(stored))

    async def delete(self, tenant: str, rid: str) -> bool:
        return await asyncio.to_thread(lambda: self._opened().delete_response(tenant, rid))


def openai_error(error: GatewayError) -> Response:
    return Response(
        error.json(), status_code=error.status_code, media_type=JSON, headers=error.headers()
    )


def _not_found(rid: str, param: str | None = None) -> NotFoundError:
    if param == "previous_response_id":
        return NotFoundError(
            f"Previous response with id '{rid}' not found.",
            param=param,
            code="previous_response_not_found",
        )
    return NotFoundError(f"Response with id '{rid}' not found.")


def _tenant(ctx: RequestContext) -> str:
    assert ctx.principal is not None, "authenticate ran"
    return ctx.principal.tenant


class _Turn:
    """One `POST /v1/responses`: the request, its input items, what came before them."""

    request: ResponsesRequest
    items: list[dict[str, Any]]
    context: list[dict[str, Any]]


def add_responses_routes(
    api: FastAPI, runtime: GatewayRuntime, book: ResponseBook | None = None
) -> None:
    """Mount the Responses API on `api`; `book` defaults to the configured store."""
    book = book or ResponseBook(store_url(runtime.services.config))

    @api.post("/v1/responses", include_in_schema=False)
    async def create(request: Request) -> Response:
        turn = _Turn()

        async def translate(ctx: RequestContext, raw: bytes) -> ChatCompletionRequest:
            turn.request = parse_request(raw)
            previous_id = turn.request.previous_response_id
            turn.context = []
            if previous_id is not None:
                previous = await book.load(_tenant(ctx), previous_id)
                if previous is None:
                    raise _not_found(previous_id, "previous_response_id")
                turn.context = previous.conversation()
            turn.items = input_items(turn.request.input)
            return to_chat(turn.request, [*turn.context, *turn.items])

        ctx = await run_translated(runtime, request, "responses", translate)
        if ctx.error is not None:
            return finished_after(runtime, ctx, openai_error(ctx.error))
        assert ctx.model is not None
        rid, created, model = response_id(), ctx.started_at, ctx.model.name

        async def keep(response: dict[str, Any]) -> None:
            if not turn.request.stored:
                return
            stored = StoredResponse(
                id=rid,
                tenant=_tenant(ctx),
                created_at=utcnow(),
                model=model,
                previous_response_id=turn.request.previous_response_id,
                response=response,
                input_items=turn.items,
                context_items=turn.context,
            )
            try:
                await book.save(stored)
            except Exception:
                # Served, but not kept: say so rather than promise a conversation we lack.
                logger.exception("response %s could not be kept", rid)
                response["store"] = False

        if ctx.stream is not None:
            events = ResponseEvents(turn.request, rid, created, model)
            return stream_answer(
                runtime, ctx, lambda frames: events.events(frames, lambda: ctx.error, keep)
            )
        assert ctx.completed is not None
        response = to_response(turn.request, rid, created, orjson.loads(ctx.completed.body))
        response["model"] = model
        await keep(response)
        return json_answer(runtime, ctx, orjson.dumps(response))

    async def kept(request: Request, rid: str) -> tuple[RequestContext, StoredResponse | None]:
        ctx, _ = await gated(runtime, request)
        if ctx.error is not None:
            return ctx, None
        stored = await book.load(_tenant(ctx), rid)
        if stored is None:
            ctx.error = _not_found(rid)
        return ctx, stored

    @api.get("/v1/responses/{rid}", include_in_schema=False)
    async def retrieve(rid: str, request: Request) -> Response:
        ctx, stored = await kept(request, rid)
        if ctx.error is not None or stored is None:
            return openai_error(ctx.error or _not_found(rid))
        return Response(orjson.dumps(stored.response), media_type=JSON)

    @api.delete("/v1/responses/{rid}", include_in_schema=False)
    async def delete(rid: str, request: Request) -> Response:
        ctx, _ = await gated(runtime, request)
        if ctx.error is not None:
            return openai_error(ctx.error)
        if not await book.delete(_tenant(ctx), rid):
            return openai_error(_not_found(rid))
        body = {"id": rid, "object": "response", "deleted": True}
        return Response(orjson.dumps(body), media_type=JSON)

    @api.get("/v1/responses/{rid}/input_items", include_in_schema=False)
    async def list_input_items(rid: str, request: Request) -> Response:
        ctx, stored = await kept(request, rid)
        if ctx.error is not None or stored is None:
            return openai_error(ctx.error or _not_found(rid))
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            return openai_error(InvalidRequestError("order must be asc or desc", param="order"))
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_ITEMS_LIMIT:
            return openai_error(
                InvalidRequestError(f"limit must be 1 to {MAX_ITEMS_LIMIT}", param="limit")
            )
        items = list(stored.input_items if order == "asc" else reversed(stored.input_items))
        after = query.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = item_list(items[:limit])
        page["has_more"] = len(items) > limit
        return Response(orjson.dumps(page), media_type=JSON)
