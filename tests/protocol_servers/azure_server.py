"""Azure OpenAI's deployment API: OpenAI's protocol at `/openai/deployments/{deployment}/...`.

Checks requests as Azure does: an `api-key` header (or an Entra ID Bearer token), an
`api-version` query parameter, a known deployment. Errors carry Azure's codes (a string status
in `code`, `DeploymentNotFound`, `content_filter` with its `innererror`).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.protocol_servers.base import Failure, ProtocolError, Received, endpoint
from tests.protocol_servers.openai_server import OpenAIServer

# kind -> (status, code, message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "bad_request": (400, "BadRequest", "Invalid request"),
    "auth": (
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API endpoint "
        "for your resource.",
    ),
    "permission": (403, "PermissionDenied", "Principal does not have access to API/Operation."),
    "not_found": (
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    ),
    "rate_limit": (
        429,
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier.",
    ),
    "overloaded": (503, "ServiceUnavailable", "The service is temporarily unable to process."),
    "unavailable": (503, "ServiceUnavailable", "The service is temporarily unable to process."),
    "server": (500, "InternalServerError", "The server had an error processing your request."),
    "context_length": (
        400,
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130412 tokens. Please reduce the length of the messages.",
    ),
    "content_filter": (
        400,
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry.",
    ),
    "request_timeout": (408, "Timeout", "The operation was timeout."),
}


class AzureOpenAIServer(OpenAIServer):
    """`POST /openai/deployments/{deployment}/chat/completions|embeddings?api-version=...`."""

    name = "azure_openai"

    def __init__(self, api_key: str = "azure-test-key", ad_token: str = "entra-test-token") -> None:
        super().__init__(api_key)
        self.ad_token = ad_token
        self.deployments = {"gpt-test-deployment", "embedding-deployment"}

    def routes(self) -> list[Route]:
        return [
            Route(
                "/openai/deployments/{deployment}/chat/completions",
                self.azure_chat,
                methods=["POST"],
            ),
            Route(
                "/openai/deployments/{deployment}/embeddings",
                self.azure_embeddings,
                methods=["POST"],
            ),
            # The gateway's health probe lists models (the resource's, as Azure serves them).
            Route("/openai/models", self.models, methods=["GET"]),
        ]

    def authenticate(self, received: Received) -> None:
        headers = received.headers
        if headers.get("api-key") == self.api_key:
            return
        if headers.get("authorization") == f"Bearer {self.ad_token}":
            return
        raise ProtocolError(401, ERRORS["auth"][2], "auth")

    def check_deployment(self, request: Request, received: Received) -> None:
        if "api-version" not in received.query:
            raise ProtocolError(
                404, "Resource not found: the api-version query parameter is required", "not_found"
            )
        if request.path_params["deployment"] not in self.deployments:
            raise ProtocolError(404, ERRORS["not_found"][2], "not_found")

    def error_body(self, failure: Failure, status: int) -> dict[str, Any]:
        status, code, message = ERRORS.get(failure.kind, (status, str(status), failure.message))
        error: dict[str, Any] = {"code": code, "message": message}
        if failure.kind == "context_length":
            error.update(type="invalid_request_error", param="messages")
        if failure.kind == "content_filter":
            error.update(
                type=None,
                param="prompt",
                status=400,
                innererror={
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": {"filtered": True, "severity": "high"},
                        "violence": {"filtered": False, "severity": "safe"},
                    },
                },
            )
        return {"error": error}

    def error_response(self, failure: Failure, status: int | None = None) -> Response:
        status = status or failure.status or ERRORS[failure.kind][0]
        headers = {"apim-request-id": str(uuid.uuid4()), "x-ms-region": "Sweden Central"}
        if failure.retry_after is not None:
            headers["retry-after"] = str(int(failure.retry_after))
            headers["retry-after-ms"] = str(int(failure.retry_after * 1000))
        return JSONResponse(self.error_body(failure, status), status_code=status, headers=headers)

    @endpoint
    async def azure_chat(self, request: Request, received: Received) -> Response:
        self.authenticate(received)
        self.check_deployment(request, received)
        body = self.body(received)
        body.setdefault("model", request.path_params["deployment"])
        self.check_chat(body)
        return await self.answer(body, self.next_reply())

    @endpoint
    async def azure_embeddings(self, request: Request, received: Received) -> Response:
        self.authenticate(received)
        self.check_deployment(request, received)
        body = self.body(received)
        body.setdefault("model", request.path_params["deployment"])
        return await self.embed_answer(body, self.next_reply())
