"""The request id a call is served and billed under: the client's `x-request-id` when it is a
plain token that fits the store's column, else a fresh one."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

HEADER = "x-request-id"
# What the usage table's request_id column holds: 64 characters, no spaces or quotes.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def served_request_id(sent: str | None) -> str:
    """`sent` when it is 1-64 of `A-Za-z0-9._:-`, otherwise a new `req_<uuid hex>`."""
    if sent is not None and _ACCEPTED.fullmatch(sent):
        return sent
    return new_request_id()


class RequestIdSanitizer:
    """Replaces a client's unusable `x-request-id` before anything reads it.

    Serve's proxy echoes the request's `x-request-id` header as it finds it, so under Serve this
    runs in front of it (see `serve_middlewares`), and the id echoed is the one served.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = MutableHeaders(scope=scope)
            sent = headers.get(HEADER)
            if sent is not None and served_request_id(sent) != sent:
                headers[HEADER] = new_request_id()
        await self.app(scope, receive, send)


def serve_middlewares() -> list[object]:
    """For `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=gateway.usage.request_ids:serve_middlewares`:
    Serve's HTTP proxy (or direct ingress) then sanitises ids before its own middleware."""
    from starlette.middleware import Middleware

    return [Middleware(RequestIdSanitizer)]
