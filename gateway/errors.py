"""One small error taxonomy for the whole gateway, mapped to OpenAI's error shape and status.

Provider adapters map their SDK's exceptions into these classes by HTTP status first
(`from_status`), so a status code, a `Retry-After` and the original exception are never lost.
"""

from __future__ import annotations

import http
import logging
import os
import re
from typing import Any

import orjson

logger = logging.getLogger("gateway.upstream")


class GatewayError(Exception):
    """An error a client sees: OpenAI's `{"error": {message, type, param, code}}` and a status."""

    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None
    retryable: bool = False
    # False for a failure the client caused through the upstream (its own schema not met):
    # it must not open the model's circuit for everyone, nor move on to other models.
    counts_against_circuit: bool = True
    # The upstream's own words (redacted), for logs and audit; never in the client's message.
    upstream_detail: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after
        self.provider = provider
        if status_code is not None:
            self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross Ray process boundaries; keep every field through pickling.
        return (_rebuild, (type(self), self.message, self.__dict__))

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json(self) -> bytes:
        return orjson.dumps(self.body())

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}


def _rebuild(cls: type[GatewayError], message: str, state: dict[str, Any]) -> GatewayError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class InvalidRequestError(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status_code = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class ModelNotFoundError(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class NotFoundError(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ConflictError(InvalidRequestError):
    """The change collides with what exists (a model or key registered twice)."""

    status_code = 409
    default_code = "conflict"


class PayloadTooLargeError(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class ContextLengthError(InvalidRequestError):
    default_code = "context_length_exceeded"


class ContentFilterError(InvalidRequestError):
    default_code = "content_filter"


class RateLimitError(GatewayError):
    status_code = 429
    error_type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"
    retryable = True


class BudgetExceededError(GatewayError):
    """A tenant's or key's hard budget for the period is spent (OpenAI's `insufficient_quota`)."""

    status_code = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class UpstreamError(GatewayError):
    """The provider answered with a failure of its own, or with a body we could not read."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"
    retryable = True


class OutputSchemaError(UpstreamError):
    """The upstream's answer does not meet the client's `response_format`: the model did answer,
    so the circuit stays closed, and the same request is not tried on other models."""

    default_code = "invalid_json_output"
    retryable = False
    counts_against_circuit = False


class ServiceUnavailableError(GatewayError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"
    retryable = True


class UpstreamTimeoutError(GatewayError):
    status_code = 504
    error_type = "timeout"
    default_code = "upstream_timeout"
    retryable = True


class InternalError(GatewayError):
    status_code = 500
    error_type = "server_error"
    default_code = "internal_error"

    @classmethod
    def for_request(cls, request_id: str) -> InternalError:
        """The gateway's own bug, as the client sees it: no detail, the request id to quote."""
        return cls(f"internal error (request id {request_id})")


_STATUS_ERROR_CLASSES: dict[int, type[GatewayError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    408: UpstreamTimeoutError,
    409: UpstreamError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    429: RateLimitError,
    500: UpstreamError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
    529: ServiceUnavailableError,  # Anthropic's "overloaded"
}


# Credentials an upstream may echo in its error text (OpenAI shows a key's head and tail).
_SECRETS = (
    re.compile(r"\b(?:sk|pk|rk)-[\w*.\-]{4,}"),
    re.compile(r"(?i)\bbearer\s+[\w.~+/=*\-]+"),
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{12,}\b"),
    re.compile(
        r"(?i)((?:api[-_ ]?key|x-api-key|authorization|secret(?:_access_key)?|token|password)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
    ),
)


_SECRET_ENV = re.compile(r"(?i)key|secret|token|password")


def _known_secrets() -> list[str]:
    """This process's credentials (providers read theirs from the environment), longest first:
    masked even where no pattern knows their shape (an Azure key has no prefix)."""
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 12}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """An upstream's text with anything that looks like a credential masked, for logs."""
    for secret in _known_secrets():
        text = text.replace(secret, "[REDACTED]")
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


def upstream_failure(
    error: GatewayError, provider: str | None, detail: str | None, what: str
) -> GatewayError:
    """Keep the upstream's text (redacted) on `error` and in the log, never in its message."""
    if detail:
        error.upstream_detail = redact(detail)[:2000]
    logger.warning("provider %s: %s: %s", provider or "upstream", what, error.upstream_detail)
    return error


def _status_name(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def from_status(
    status: int,
    message: str,
    *,
    provider: str | None = None,
    retry_after: float | None = None,
    code: str | None = None,
    param: str | None = None,
    upstream_type: str | None = None,
) -> GatewayError:
    """The taxonomy class for an upstream HTTP status, keeping the status's meaning.

    `message` is the upstream's own text: it may echo credentials, hosts or other tenants'
    data, so the client gets ours (provider, status, type) and the text goes to the log and
    `upstream_detail`. An upstream's 401/403 is the gateway's credentials failing, not the
    client's: it becomes a 502 so a client never thinks its own key was refused.
    """
    name = provider or "upstream"
    kind = upstream_type or code or _status_name(status)
    ours = f"upstream provider '{name}' answered {status} ({kind})"
    error: GatewayError
    if status in (401, 403):
        error = UpstreamError(
            f"{ours}: it refused the gateway's credentials",
            provider=provider,
            code="upstream_auth_failed",
        )
    elif status < 400:
        # A redirect (never followed: it would carry our key elsewhere) or another oddity.
        error = UpstreamError(ours, provider=provider)
    else:
        cls = _STATUS_ERROR_CLASSES.get(status)
        if cls is None:
            cls = UpstreamError if status >= 500 else InvalidRequestError
        error = cls(ours, provider=provider, retry_after=retry_after, code=code, param=param)
    return upstream_failure(error, provider, message, ours)
