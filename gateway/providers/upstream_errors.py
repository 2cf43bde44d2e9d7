"""Upstream failures as our taxonomy: by HTTP status first (through `gateway.errors`' one
status table), then what a 400 means (context length, content filter), and the failures that
have no status (timeouts, unreachable hosts, cut streams, unreadable bodies).

Every function keeps the upstream's own words out of the client's message: they go to the log
and `upstream_detail`, redacted, since they may echo credentials or hosts.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from gateway.errors import (
    ContentFilterError,
    ContextLengthError,
    GatewayError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    from_status,
    upstream_failure,
)

_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|input is too long"
    r"|too many (input )?tokens|exceeds the context",
    re.IGNORECASE,
)
_CONTENT_FILTER_CODES = {"content_filter", "content_policy_violation", "responsible_ai_policy"}


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def upstream_error(
    provider: str,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    param: str | None = None,
    upstream_type: str | None = None,
) -> GatewayError:
    """The taxonomy error for an upstream's HTTP failure: status first, then what 400s mean.

    The upstream's `message` never reaches the client (see `from_status`).
    """
    if status in (400, 413, 422) and (
        code == "context_length_exceeded" or _CONTEXT_LENGTH.search(message)
    ):
        error: GatewayError = ContextLengthError(
            f"upstream provider '{provider}' answered {status} (context_length_exceeded): the "
            "prompt does not fit the model's context window",
            param="messages",
            provider=provider,
        )
        return upstream_failure(error, provider, message, "context length exceeded")
    if status in (400, 403) and code in _CONTENT_FILTER_CODES:
        error = ContentFilterError(
            f"upstream provider '{provider}' answered {status} ({code}): its content filter "
            "refused the request",
            param=param,
            provider=provider,
        )
        return upstream_failure(error, provider, message, "content filtered")
    return from_status(
        status,
        message,
        provider=provider,
        retry_after=retry_after(headers),
        code=code if status < 500 else None,
        param=param,
        upstream_type=upstream_type,
    )


def timeout_error(provider: str, seconds: float | None = None) -> UpstreamTimeoutError:
    """The upstream did not answer in time (the SDK's timeout or the call's budget)."""
    within = f" within {seconds:g}s" if seconds else ""
    return UpstreamTimeoutError(f"provider '{provider}' did not answer{within}", provider=provider)


def connection_error(provider: str, exc: BaseException) -> ServiceUnavailableError:
    """Cannot reach the upstream; which host or address failed stays in the log."""
    error = ServiceUnavailableError(f"cannot reach provider '{provider}'", provider=provider)
    return upstream_failure(error, provider, f"{type(exc).__name__}: {exc}", "unreachable")


def malformed_error(provider: str, what: str) -> UpstreamError:
    """A body or stream event that is not what the upstream's protocol promises."""
    error = UpstreamError(
        f"provider '{provider}' sent a response that could not be read",
        provider=provider,
        code="malformed_upstream_response",
    )
    return upstream_failure(error, provider, what, "unreadable response")


def stream_error(provider: str, detail: str) -> UpstreamError:
    """An error event inside a 200 stream: no status, only the upstream's words (logged)."""
    error = UpstreamError(f"provider '{provider}' failed mid-stream", provider=provider)
    return upstream_failure(error, provider, detail, "failed mid-stream")


def cut_error(provider: str) -> UpstreamError:
    """A stream that ended without the upstream's completion signal: never a silent truncation."""
    return UpstreamError(
        f"provider '{provider}' ended the stream before finishing the response",
        provider=provider,
        code="upstream_stream_cut",
    )
