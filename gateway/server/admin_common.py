"""What every `/admin` route shares: the gate and finish around an action, JSON in and out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from gateway.errors import GatewayError, InvalidRequestError
from gateway.pipeline.context import Endpoint, RequestContext
from gateway.pipeline.steps.admission import validation_error
from gateway.server.body import read_body
from gateway.server.runtime import GatewayRuntime

Gate = Callable[[Request, Endpoint], Awaitable[RequestContext]]
ErrorResponse = Callable[[GatewayError], Response]
Action = Callable[[RequestContext], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, read within `limit` bytes; a 400 when it is not one."""
    try:
        data = orjson.loads(await read_body(request, limit) or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return data


class AdminRoutes:
    """Runs an admin action behind the pipeline's gate (authenticated, authorized, audited);
    the action gets the request's context, so it knows who asks and can note what changed."""

    def __init__(self, runtime: GatewayRuntime, gate: Gate, error_response: ErrorResponse) -> None:
        self.runtime = runtime
        self.gate = gate
        self.error_response = error_response
        self.max_body = runtime.services.config.server.max_body_bytes

    async def run(self, request: Request, action: Action) -> Response:
        ctx = await self.gate(request, "admin")
        response: Response | None = None
        if ctx.error is None:
            try:
                response = await action(ctx)
            except ValidationError as exc:
                ctx.error = validation_error(exc)
            except GatewayError as error:
                ctx.error = error
            else:
                ctx.status = response.status_code
        if ctx.error is not None:
            ctx.status = ctx.error.status_code
        await self.runtime.pipeline.finish(ctx)
        if ctx.error is not None or response is None:
            return self.error_response(ctx.error)  # type: ignore[arg-type]
        return response

    async def body(self, request: Request) -> dict[str, Any]:
        return await json_object(request, self.max_body)
