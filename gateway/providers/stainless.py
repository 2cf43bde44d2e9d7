"""What the adapters over Stainless-generated SDKs (`openai`, `anthropic`) share: one pooled
httpx2 client per provider, the key from the environment, and one error map.

Both SDKs raise the same classes under the same names (`APITimeoutError`,
`APIConnectionError`, `APIResponseValidationError`, `APIStatusError`, `APIError`), so one
function maps either SDK's errors, taking the SDK module; the status goes through
`upstream_errors.upstream_error` and the one status table in `gateway.errors`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

import aiohttp
import httpx2

from gateway.config import ModelConfig, ProviderConfig
from gateway.errors import GatewayError
from gateway.providers.base import Provider
from gateway.providers.credentials import api_key, missing_key
from gateway.providers.upstream_errors import (
    connection_error,
    cut_error,
    malformed_error,
    stream_error,
    timeout_error,
    upstream_error,
)
from gateway.wire import ChatCompletionRequest

# An error event inside a 200 stream carries only its type: the status it stands for
# (Anthropic's types; OpenAI's in-stream errors carry a code instead).
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_CUT = (httpx2.RemoteProtocolError, httpx2.ReadError)
# The aiohttp transport (`transport.pooled_client`) maps its errors onto httpx2's coarsely
# (a refused connection becomes a connect *timeout*), so the aiohttp error at the root of
# the chain decides: what timed out, what never connected, what was cut mid-answer.
_AIOHTTP_TIMEOUTS = (aiohttp.ServerTimeoutError, aiohttp.SocketTimeoutError)
_AIOHTTP_CUT = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)


class StainlessProvider(Provider):
    """An adapter over a Stainless SDK: `sdk` is the module (`openai` or `anthropic`)."""

    sdk: ClassVar[ModuleType]
    default_key_env: ClassVar[str]

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._key = api_key(config, self.default_key_env)
        self._client = self._make_client()

    def _make_client(self) -> Any:
        """The SDK's async client on `transport.pooled_client`, with the SDK's retries off."""
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._client.close()

    def check(self, request: ChatCompletionRequest, model: ModelConfig) -> None:
        super().check(request, model)
        self._require_key()

    def _require_key(self) -> None:
        if self._key is None:
            raise missing_key(self.config, self.default_key_env)

    def _timeout(self, model: ModelConfig) -> Any:
        """The SDK's per-request timeout from the model's budget."""
        return self.sdk.Timeout(model.timeouts.total_s, connect=model.timeouts.connect_s)

    async def _close_stream(self, upstream: Any) -> None:
        await upstream.close()

    def _convert_error(self, exc: Exception) -> GatewayError:
        return stainless_error(self.sdk, self.name, exc)


def stainless_error(sdk: ModuleType, provider: str, exc: Exception) -> GatewayError:
    """The taxonomy error for anything a Stainless SDK or its httpx2 transport raised."""
    if isinstance(exc, GatewayError):
        return exc
    root = _aiohttp_root(exc)
    if isinstance(root, _AIOHTTP_TIMEOUTS):
        return timeout_error(provider)
    if isinstance(root, _AIOHTTP_CUT):
        return cut_error(provider)
    if isinstance(root, aiohttp.ClientConnectionError):
        return connection_error(provider, exc)
    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException)):
        return timeout_error(provider)
    if isinstance(exc, sdk.APIConnectionError):
        if isinstance(exc.__cause__, _CUT):
            return cut_error(provider)
        return connection_error(provider, exc)
    if isinstance(exc, sdk.APIResponseValidationError):
        return malformed_error(provider, exc.message)
    if isinstance(exc, sdk.APIStatusError):
        return _status_error(provider, exc.status_code, exc.body, exc.message, exc.response.headers)
    if isinstance(exc, sdk.APIError):
        # An error event inside a 200 stream (OpenAI's): no status, only the error object.
        code, kind = getattr(exc, "code", None), getattr(exc, "type", None)
        if "rate_limit" in f"{code} {kind}":
            return upstream_error(provider, 429, exc.message, upstream_type=kind)
        if "context_length" in f"{code} {kind}":
            return upstream_error(provider, 400, exc.message, code=code)
        return stream_error(provider, exc.message)
    if isinstance(exc, _CUT):
        return cut_error(provider)
    if isinstance(exc, (ValueError, httpx2.DecodingError)):
        return malformed_error(provider, str(exc))
    if isinstance(exc, httpx2.TransportError):
        return connection_error(provider, exc)
    raise exc


def _aiohttp_root(exc: BaseException) -> BaseException | None:
    """The aiohttp error an SDK error (through httpx2's) was raised from, if any."""
    cause: BaseException | None = exc
    for _ in range(4):
        cause = cause.__cause__ if cause is not None else None
        if isinstance(cause, aiohttp.ClientError):
            return cause
    return None


def _status_error(
    provider: str, status: int, body: object, fallback: str, headers: Mapping[str, str]
) -> GatewayError:
    """An HTTP failure by its status. The error object is the body's `error` (Anthropic) or
    the body itself (the openai SDK unwraps it); an Anthropic error event in a 200 stream has
    only its type, which stands for a status."""
    whole = body if isinstance(body, dict) else {}
    error = whole.get("error") if isinstance(whole.get("error"), dict) else whole
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    if status < 400:
        status = ERROR_TYPE_STATUS.get(kind or "", 502)
    text = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    return upstream_error(
        provider,
        status,
        error.get("message") or text or fallback,
        headers=headers,
        code=error.get("code"),
        param=error.get("param"),
        upstream_type=kind,
    )
