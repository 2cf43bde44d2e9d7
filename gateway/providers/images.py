"""Images as bytes, for providers that take bytes rather than URLs (Bedrock, Ollama).

A client's `image_url` makes the gateway open a connection from inside the network, so the
fetch is guarded like any server-side request: only public addresses (checked after DNS and
again after each redirect, and the connection pinned to the checked address), at most
`MAX_REDIRECTS` redirects, a size cap enforced while streaming, one total timeout, and at most
`MAX_IMAGES` per request. Every failure is the same plain 400, whatever was found there: the
gateway is not a port scanner.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2

from gateway.errors import InvalidRequestError
from gateway.wire import ChatCompletionRequest, ImagePart, UserMessage

logger = logging.getLogger("gateway.providers.images")

MAX_IMAGES = 16
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 3
FETCH_SECONDS = 10.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata services; link-local and private ranges already cover them, named for clarity.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)
_MEDIA_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


@dataclass(frozen=True)
class ImageData:
    """An image's bytes and media type."""

    media_type: str
    data: bytes

    @property
    def format(self) -> str:
        """`png`, `jpeg`, `gif` or `webp`: the short name Bedrock wants."""
        return self.media_type.split("/", 1)[1]

    def b64(self) -> str:
        return base64.b64encode(self.data).decode()


def _media_type(data: bytes, declared: str | None) -> str | None:
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    return declared if declared in _MEDIA_TYPES else None


def parse_data_url(url: str) -> ImageData:
    """The image inside a `data:image/...;base64,` URL."""
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise InvalidRequestError("image_url data URLs must be base64-encoded", param="messages")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise InvalidRequestError(
            "image_url data URL is not valid base64", param="messages"
        ) from None
    media_type = _media_type(data, head[5:].split(";", 1)[0])
    if media_type is None:
        raise InvalidRequestError(
            "image_url is not a PNG, JPEG, GIF or WebP image", param="messages"
        )
    return ImageData(media_type, data)


def is_public_address(ip: IPAddress) -> bool:
    """Whether the gateway may connect to `ip` for a client: globally routable, unicast."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def image_urls(request: ChatCompletionRequest) -> list[str]:
    """Every image URL in the request, in order."""
    return [
        part.image_url.url
        for m in request.messages
        if isinstance(m, UserMessage) and not isinstance(m.content, str)
        for part in m.content
        if isinstance(part, ImagePart)
    ]


def check_image_count(request: ChatCompletionRequest) -> None:
    """At most `MAX_IMAGES` images in one request (each may be a fetch)."""
    if len(image_urls(request)) > MAX_IMAGES:
        raise InvalidRequestError(
            f"a request may carry at most {MAX_IMAGES} images", param="messages"
        )


class _Refused(Exception):
    """Why a fetch failed: logged, never shown to the client."""


def _unfetchable() -> InvalidRequestError:
    return InvalidRequestError(
        "an image_url could not be fetched: it must be a public http(s) URL of a PNG, JPEG, "
        f"GIF or WebP image of at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB",
        param="messages",
        code="invalid_image_url",
    )


class ImageFetcher:
    """The one way adapters turn an image URL into bytes (on httpx2, the adapters' one HTTP
    stack; only Ollama's SDK insists on building its own httpx client).

    `allow_address` is the address policy (production: `is_public_address`); tests that serve
    images from loopback inject a wider one.
    """

    def __init__(
        self,
        *,
        allow_address: Callable[[IPAddress], bool] = is_public_address,
        timeout_s: float = FETCH_SECONDS,
        max_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        self.allow_address = allow_address
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            follow_redirects=False,
            trust_env=False,  # a proxy would connect where we did not check
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def fetch_all(self, urls: list[str]) -> list[ImageData]:
        """The images at `urls` (data: or http(s)), fetched concurrently."""
        if len(urls) > MAX_IMAGES:
            raise InvalidRequestError(
                f"a request may carry at most {MAX_IMAGES} images", param="messages"
            )
        return list(await asyncio.gather(*(self.fetch(url) for url in urls)))

    async def fetch(self, url: str) -> ImageData:
        """The image at a data: or http(s) URL."""
        if url.startswith("data:"):
            return parse_data_url(url)
        if not url.startswith(("http://", "https://")):
            raise InvalidRequestError("image_url must be a data: or http(s) URL", param="messages")
        try:
            return await asyncio.wait_for(self._follow(httpx2.URL(url)), self.timeout_s)
        except (TimeoutError, _Refused, httpx2.HTTPError, OSError, ValueError) as exc:
            logger.info("image_url refused: %s: %s", type(exc).__name__, exc)
            raise _unfetchable() from None

    async def _follow(self, url: httpx2.URL) -> ImageData:
        for _ in range(MAX_REDIRECTS + 1):
            if url.scheme not in ("http", "https") or not url.host:
                raise _Refused(f"scheme {url.scheme!r}")
            address = await self._address(url)
            request = self._http.build_request(
                "GET",
                # Pinned to the address just checked: no second lookup to rebind.
                url.copy_with(host=str(address)),
                headers={"host": url.netloc.decode("ascii"), "accept": "image/*"},
                extensions={"sni_hostname": url.host},
            )
            response = await self._http.send(request, stream=True)
            try:
                if response.is_redirect:
                    url = url.join(response.headers.get("location", ""))
                    continue
                return await self._read(response)
            finally:
                await response.aclose()
        raise _Refused(f"more than {MAX_REDIRECTS} redirects")

    async def _address(self, url: httpx2.URL) -> IPAddress:
        port = url.port or (443 if url.scheme == "https" else 80)
        infos: list[Any] = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        if not addresses or not all(self.allow_address(a) for a in addresses):
            raise _Refused(f"address of {url.host} not allowed")
        return addresses[0]

    async def _read(self, response: httpx2.Response) -> ImageData:
        if response.status_code != 200:
            raise _Refused(f"status {response.status_code}")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise _Refused("too large")
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > self.max_bytes:
                raise _Refused("too large")
        declared = response.headers.get("content-type", "").split(";")[0].strip()
        media_type = _media_type(bytes(body), declared)
        if media_type is None:
            raise _Refused("not an image")
        return ImageData(media_type, bytes(body))
