"""Image URLs fetched for providers that need bytes: public addresses only (after DNS and
after each redirect), a size cap, a total timeout, a cap per request, one plain 400."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest

from gateway.errors import InvalidRequestError
from gateway.providers.images import (
    MAX_IMAGES,
    ImageFetcher,
    IPAddress,
    is_public_address,
)
from tests.protocol_servers import SERVERS
from tests.protocol_servers.base import ProtocolServer
from tests.unit.providers.conftest import PNG, Upstream

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
def files() -> Iterator[ProtocolServer]:
    with SERVERS["openai"]() as server:
        server.files["cat.png"] = ("image/png", PNG)
        server.files["big.png"] = ("image/png", PNG + b"\0" * 5000)
        server.files["page.html"] = ("text/html", b"<html>secret admin page</html>")
        yield server


def only_loopback(address: IPAddress) -> bool:
    return address == LOOPBACK


async def refusal(fetcher: ImageFetcher, url: str) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        await fetcher.fetch(url)
    assert caught.value.status_code == 400 and caught.value.code == "invalid_image_url"
    assert caught.value.param == "messages"
    return caught.value


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "0.0.0.0",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:127.0.0.1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


def test_public_addresses_are() -> None:
    assert is_public_address(ipaddress.ip_address("93.184.216.34"))
    assert is_public_address(ipaddress.ip_address("2606:4700::1111"))


async def test_the_default_policy_refuses_loopback_and_fetches_nothing(
    files: ProtocolServer,
) -> None:
    fetcher = ImageFetcher()
    try:
        await refusal(fetcher, f"{files.url}/files/cat.png")
        # A name is checked after it is resolved.
        await refusal(fetcher, f"http://localhost:{files.port}/files/cat.png")
        await refusal(fetcher, "http://169.254.169.254/latest/meta-data/")
    finally:
        await fetcher.aclose()
    assert files.file_requests == []


async def test_a_redirect_to_an_internal_address_is_refused_before_connecting(
    files: ProtocolServer,
) -> None:
    # 127.0.0.2 is loopback too, but outside this test's policy: as a redirect to the
    # metadata service would be outside production's.
    files.file_redirects["hop.png"] = f"http://127.0.0.2:{files.port}/files/cat.png"
    fetcher = ImageFetcher(allow_address=only_loopback)
    try:
        await refusal(fetcher, f"{files.url}/files/hop.png")
    finally:
        await fetcher.aclose()
    assert files.file_requests == ["hop.png"]


async def test_redirects_are_followed_at_most_three_times(files: ProtocolServer) -> None:
    for hop in range(5):
        files.file_redirects[f"r{hop}.png"] = f"{files.url}/files/r{hop + 1}.png"
    files.file_redirects["r5.png"] = f"{files.url}/files/cat.png"
    files.file_redirects["short.png"] = f"{files.url}/files/cat.png"
    fetcher = ImageFetcher(allow_address=only_loopback)
    try:
        image = await fetcher.fetch(f"{files.url}/files/short.png")
        assert image.data == PNG
        await refusal(fetcher, f"{files.url}/files/r0.png")
    finally:
        await fetcher.aclose()
    # r0 and three redirects (r1, r2, r3); the fourth, to r4, is not followed.
    assert files.file_requests == ["short.png", "cat.png", "r0.png", "r1.png", "r2.png", "r3.png"]


async def test_failures_look_the_same_whatever_was_there(files: ProtocolServer) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    fetcher = ImageFetcher(allow_address=only_loopback, max_bytes=1000)
    try:
        messages = {
            (await refusal(fetcher, url)).message
            for url in (
                f"{files.url}/files/missing.png",  # 404
                f"{files.url}/files/page.html",  # not an image
                f"{files.url}/files/big.png",  # too large
                f"http://127.0.0.1:{dead_port}/x.png",  # nothing listening
                f"http://10.0.0.1:{files.port}/x.png",  # refused address
            )
        }
    finally:
        await fetcher.aclose()
    assert len(messages) == 1
    (message,) = messages
    assert "404" not in message and str(dead_port) not in message and "secret" not in message


@pytest.mark.timeout(10)
async def test_a_server_that_never_answers_is_cut_off() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    fetcher = ImageFetcher(allow_address=only_loopback, timeout_s=0.5)
    start = time.monotonic()
    try:
        await refusal(fetcher, f"http://127.0.0.1:{silent.getsockname()[1]}/x.png")
    finally:
        await fetcher.aclose()
        silent.close()
    assert time.monotonic() - start < 3


async def test_too_many_images_in_one_request_is_a_400(
    ollama_upstream: Upstream, bedrock_upstream: Upstream
) -> None:
    image = {"type": "image_url", "image_url": {"url": f"{ollama_upstream.server.url}/x.png"}}
    for upstream in (ollama_upstream, bedrock_upstream):
        request = upstream.request({"role": "user", "content": [image] * (MAX_IMAGES + 1)})
        with pytest.raises(InvalidRequestError) as caught:
            await upstream.provider.complete(request, upstream.model)
        assert caught.value.param == "messages" and str(MAX_IMAGES) in caught.value.message
        assert upstream.server.received == [] and upstream.server.file_requests == []


async def test_adapters_refuse_internal_image_urls_by_default(ollama_upstream: Upstream) -> None:
    fetcher = ollama_upstream.provider.images  # type: ignore[attr-defined]
    policy = fetcher.allow_address
    fetcher.allow_address = is_public_address
    image = {
        "type": "image_url",
        "image_url": {"url": f"{ollama_upstream.server.url}/files/cat.png"},
    }
    try:
        with pytest.raises(InvalidRequestError):
            await ollama_upstream.provider.complete(
                ollama_upstream.request({"role": "user", "content": [image]}),
                ollama_upstream.model,
            )
    finally:
        fetcher.allow_address = policy
    assert ollama_upstream.server.file_requests == []
