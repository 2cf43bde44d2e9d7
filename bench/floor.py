"""The least a Python HTTP proxy can do on this machine: the floor under every Python gateway.

No gateway: raw ASGI on uvicorn (httptools, uvloop), one shared aiohttp session to the
upstream, the request's body and the answer's bytes passed through untouched; no key, no
parsing, no SDK, no records. It answers one question the hot-path targets raise (issue 11):
how close to `direct` can Python get at all here, before a gateway does any of its work?

    .venv/bin/python bench/floor.py --upstream http://127.0.0.1:PORT/v1 --port 8001 [--workers 2]
    (the bench runs it as `python-floor` and `python-floor-2x`: bench/run.py --only ...)
"""

from __future__ import annotations

import argparse
import os

import aiohttp
import uvicorn

FORWARDED = ("content-type", "authorization")


class Floor:
    """ASGI app: POST anything, get the upstream's answer to the same POST at /v1/<path>."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"].removeprefix("/v1")
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() in FORWARDED}
        assert self.session is not None
        async with self.session.post(self.upstream + path, data=body, headers=headers) as r:
            kind = r.headers.get("content-type", "application/json").encode()
            start = {"type": "http.response.start", "status": r.status}
            await send(start | {"headers": [(b"content-type", kind)]})
            async for chunk in r.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="the upstream's base URL, ending in /v1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    a = ap.parse_args()
    os.environ["FLOOR_UPSTREAM"] = a.upstream
    uvicorn.run(
        "floor:factory",
        factory=True,
        host="127.0.0.1",
        port=a.port,
        workers=a.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def factory() -> Floor:
    """The app, as uvicorn's worker processes build it (`--workers` needs an import string)."""
    return Floor(os.environ["FLOOR_UPSTREAM"])


if __name__ == "__main__":
    main()
