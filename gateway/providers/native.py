"""Chat requests translated from another provider's own API, carrying the client's body.

`/v1/messages` is Anthropic's API: its requests are translated into our chat request (so every
step and every provider can serve them), and the body the client sent rides along, so that an
adapter of the provider type that speaks that API sends it as it came (system blocks, thinking,
cache control, documents, server tools) instead of a round trip through our types. Features
the translation cannot carry are named, and every other provider type refuses them.
"""

from __future__ import annotations

from typing import Any

from pydantic import PrivateAttr

from gateway.errors import InvalidRequestError
from gateway.wire import ChatCompletionRequest


class TranslatedRequest(ChatCompletionRequest):
    """A chat request translated from `native_type`'s API, with the body as the client sent it.

    Private attributes: not part of the request's JSON, but pickled with it to a pool.
    """

    _native_type: str | None = PrivateAttr(default=None)
    _native_body: dict[str, Any] | None = PrivateAttr(default=None)
    # What only `native_type` can honour, as (param, what): ("messages", "document blocks").
    _native_only: tuple[tuple[str, str], ...] = PrivateAttr(default=())
    # The provider's own request headers the client sent (`anthropic-beta`), to send on.
    _native_headers: dict[str, str] = PrivateAttr(default_factory=dict)

    def carrying(
        self,
        native_type: str,
        body: dict[str, Any],
        native_only: tuple[tuple[str, str], ...] = (),
        headers: dict[str, str] | None = None,
    ) -> TranslatedRequest:
        """This request, carrying `body` (and `headers`) for adapters of `native_type`."""
        self._native_type = native_type
        self._native_body = body
        self._native_only = native_only
        self._native_headers = dict(headers or {})
        return self


def native_body(request: ChatCompletionRequest, provider_type: str) -> dict[str, Any] | None:
    """The client's own body when it was written in `provider_type`'s API, else None."""
    if isinstance(request, TranslatedRequest) and request._native_type == provider_type:
        return request._native_body
    return None


def native_headers(request: ChatCompletionRequest, provider_type: str) -> dict[str, str]:
    """The provider's own headers the client sent with its body (`anthropic-beta`)."""
    if isinstance(request, TranslatedRequest) and request._native_type == provider_type:
        return request._native_headers
    return {}


def check_translatable(request: ChatCompletionRequest, provider_type: str) -> None:
    """Refuse, naming it, a feature of the client's API that `provider_type` cannot honour."""
    if not isinstance(request, TranslatedRequest) or request._native_type == provider_type:
        return
    if request._native_only:
        param, what = request._native_only[0]
        raise InvalidRequestError(
            f"{what} cannot be served by provider type '{provider_type}'; only a "
            f"'{request._native_type}' model takes it",
            param=param,
            code="unsupported_feature",
        )
