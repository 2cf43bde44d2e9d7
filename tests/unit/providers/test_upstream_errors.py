"""What a client learns when an upstream fails: our words, never the upstream's, and never a
redirect followed (it would carry the gateway's key and the prompt to another host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.errors import GatewayError, UpstreamError, from_status, redact
from tests.protocol_servers import SERVERS, Failure, Reply
from tests.protocol_servers.base import ProtocolServer
from tests.unit.providers.conftest import KINDS, Upstream, make_upstream

LEAKY = "Incorrect API key provided: sk-proj-abcd************************wxyz. See 10.0.0.7."


@pytest.fixture
def elsewhere() -> Iterator[ProtocolServer]:
    with SERVERS["openai"]() as server:
        yield server


async def test_a_redirect_is_not_followed_and_the_other_host_receives_nothing(
    upstream: Upstream, elsewhere: ProtocolServer
) -> None:
    upstream.server.redirect_to = elsewhere.url
    with pytest.raises(GatewayError) as caught:
        await upstream.provider.complete(upstream.request("secret prompt"), upstream.model)
    assert elsewhere.received == []
    assert caught.value.status_code == 502
    assert upstream.server.received, "the upstream itself was called"


async def test_a_redirected_stream_is_not_followed(
    upstream: Upstream, elsewhere: ProtocolServer
) -> None:
    upstream.server.redirect_to = elsewhere.url
    with pytest.raises(GatewayError) as caught:
        await upstream.collect(upstream.request("secret prompt"))
    assert elsewhere.received == []
    assert caught.value.status_code == 502


async def test_an_upstream_401_shows_the_client_our_words_and_keeps_the_detail(
    upstream: Upstream,
) -> None:
    upstream.server.script(Reply(failure=Failure("auth", message=LEAKY)))
    with pytest.raises(UpstreamError) as caught:
        await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    error = caught.value
    assert error.status_code == 502 and error.code == "upstream_auth_failed"
    assert error.message.startswith(f"upstream provider '{upstream.provider.name}' answered 40")
    assert "sk-" not in error.json().decode() and "wxyz" not in error.json().decode()
    assert error.upstream_detail is not None and "wxyz" not in error.upstream_detail


async def test_an_upstream_500_text_stays_out_of_the_client_message(upstream: Upstream) -> None:
    upstream.server.script(Reply(failure=Failure("server", message="db at 10.1.2.3 is down")))
    with pytest.raises(GatewayError) as caught:
        await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    assert caught.value.status_code >= 500
    assert "10.1.2.3" not in caught.value.json().decode()
    assert caught.value.message.startswith("upstream provider")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_connection_error_does_not_name_the_host(
    kind: str, servers: dict[str, ProtocolServer]
) -> None:
    with SERVERS[kind]() as gone:
        upstream = make_upstream(kind, gone)
    try:
        with pytest.raises(GatewayError) as caught:
            await upstream.provider.complete(upstream.request("Hi"), upstream.model)
    finally:
        await upstream.provider.aclose()
    body = caught.value.json().decode()
    assert "127.0.0.1" not in body and str(gone.port) not in body
    assert caught.value.status_code in (502, 503, 504)
    assert caught.value.upstream_detail


def test_from_status_keeps_status_and_type_and_logs_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = from_status(401, LEAKY, provider="openai", upstream_type="authentication_error")
    assert error.message == (
        "upstream provider 'openai' answered 401 (authentication_error): it refused the "
        "gateway's credentials"
    )
    assert error.body()["error"]["type"] == "upstream_error" and error.status_code == 502
    assert "wxyz" not in caplog.text and "answered 401" in caplog.text
    rebuilt = pickle_roundtrip(error)
    assert rebuilt.upstream_detail == error.upstream_detail


def test_redact_masks_keys_tokens_and_aws_key_ids() -> None:
    text = redact(
        "key sk-ant-api03-AbCdEf012345 Authorization: Bearer eyJhbGciOi.x.y "
        "AKIAIOSFODNN7EXAMPLE x-api-key=abc123"
    )
    for secret in ("AbCdEf012345", "eyJhbGciOi", "AKIAIOSFODNN7EXAMPLE", "abc123"):
        assert secret not in text


def pickle_roundtrip(error: GatewayError) -> GatewayError:
    import pickle

    return pickle.loads(pickle.dumps(error))
