"""boto3's, botocore's and urllib3's exceptions as our taxonomy.

A Bedrock HTTP failure keeps its status; an exception inside a 200 event stream has only its
error code, which stands for a status here (`ERROR_STATUS`).
"""

from __future__ import annotations

import botocore.eventstream
import botocore.exceptions
import botocore.parsers
import urllib3.exceptions

from gateway.errors import GatewayError, InvalidRequestError, UpstreamError
from gateway.providers.upstream_errors import (
    connection_error,
    cut_error,
    malformed_error,
    timeout_error,
    upstream_error,
)

# Bedrock's error codes (HTTP and in-stream exceptions) -> the status they stand for.
ERROR_STATUS = {
    "validationexception": 400,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 403,
    "expiredtokenexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "throttlingexception": 429,
    "modelnotreadyexception": 429,
    "servicequotaexceededexception": 429,
    "internalserverexception": 500,
    "modelerrorexception": 502,
    "modelstreamerrorexception": 502,
    "serviceunavailableexception": 503,
}
_TIMEOUTS = (
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ReadTimeoutError,
)
_CUT = (
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ResponseStreamingError,
    urllib3.exceptions.ProtocolError,
)
_NO_CREDENTIALS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)
_MALFORMED = (botocore.parsers.ResponseParserError, botocore.eventstream.ParserError, ValueError)


def bedrock_error(provider: str, exc: Exception) -> GatewayError:
    """The taxonomy error for anything boto3, botocore or urllib3 raised."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code", ""))
        status = meta.get("HTTPStatusCode") or 0
        if status < 400:  # an exception inside a 200 event stream
            status = ERROR_STATUS.get(code.lower(), 502)
        message = error.get("Message") or code
        return upstream_error(
            provider, status, message, headers=meta.get("HTTPHeaders"), upstream_type=code
        )
    if isinstance(exc, _TIMEOUTS):
        return timeout_error(provider)
    if isinstance(exc, _CUT):
        return cut_error(provider)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        # botocore refused what we built from the client's request before sending it.
        return InvalidRequestError(
            f"the request cannot be sent to provider type 'bedrock': {exc}", param="messages"
        )
    if isinstance(exc, botocore.exceptions.ConnectionError):
        return connection_error(provider, exc)
    if isinstance(exc, _NO_CREDENTIALS):
        return UpstreamError(
            f"provider '{provider}' has no AWS credentials: {exc}",
            provider=provider,
            code="upstream_auth_failed",
        )
    if isinstance(exc, _MALFORMED):
        return malformed_error(provider, str(exc))
    raise exc
