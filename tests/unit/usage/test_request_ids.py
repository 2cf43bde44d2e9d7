"""The request id a call is served and billed under: the client's when usable, else a new
one, and the served one is echoed."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.auth import hash_key
from gateway.config import load_config
from gateway.server.api import create_api
from gateway.server.local import local_gateway
from gateway.usage.request_ids import serve_middlewares, served_request_id

KEY = "sk-llmgw-test-admin-key-0123456789"
GENERATED = r"req_[0-9a-f]{32}"


@pytest.mark.parametrize("sent", ["abc", "req-1.2:3_4", "A" * 64, "0"])
def test_usable_ids_are_kept(sent: str) -> None:
    assert served_request_id(sent) == sent


@pytest.mark.parametrize(
    "sent", [None, "", "A" * 65, "has space", "semi;colon", "quote'", "ünïcode", "a\nb", "a/b"]
)
def test_unusable_ids_are_replaced(sent: str | None) -> None:
    assert re.fullmatch(GENERATED, served_request_id(sent))


async def test_the_api_bills_and_echoes_the_id_it_served() -> None:
    gateway = local_gateway(load_config(), hash_key(KEY))
    transport = httpx.ASGITransport(app=create_api(gateway.runtime))
    body = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for sent in ("kept-1", "x" * 200, "bad id"):
            response = await http.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {KEY}", "x-request-id": sent},
            )
            assert response.status_code == 200
            echoed = response.headers.get_list("x-request-id")
            assert len(echoed) == 1
            assert echoed[0] == gateway.recorder.usages[-1].request_id
            assert echoed[0] == gateway.recorder.audits[-1].request_id
            assert (echoed[0] == sent) == (sent == "kept-1")


async def test_the_serve_middleware_rewrites_the_header_before_serve_reads_it() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.headers["x-request-id"])

    (middleware,) = serve_middlewares()
    assert isinstance(middleware, Middleware)
    app = Starlette(routes=[Route("/", echo)], middleware=[middleware])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        assert (await http.get("/", headers={"x-request-id": "fine"})).text == "fine"
        assert re.fullmatch(GENERATED, (await http.get("/", headers={"x-request-id": "n o"})).text)
