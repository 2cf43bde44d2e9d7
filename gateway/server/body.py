"""Reading a request body within the size limit, counting bytes as they arrive.

A declared `content-length` over the limit is refused before anything is read; a chunked body
(no length) is read chunk by chunk and refused the moment it passes the limit, so no client
makes a replica hold more than `server.max_body_bytes` of one body.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import InvalidRequestError, PayloadTooLargeError


def too_large(limit: int, size: int | None = None) -> PayloadTooLargeError:
    """The 413 for a body over `limit` bytes (of `size` bytes, when it declared one)."""
    what = f"request body of {size} bytes" if size is not None else "request body"
    return PayloadTooLargeError(f"{what} exceeds the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a `PayloadTooLargeError` as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidRequestError(f"Invalid content-length header: '{declared[:32]}'.")
        if int(declared) > limit:
            raise too_large(limit, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
