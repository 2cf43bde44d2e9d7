"""The gateway's OpenAPI document: the routes FastAPI knows, plus what it cannot see.

Model routes read their bodies themselves (after authentication, within the size limit), so
FastAPI knows neither their request bodies nor their answers; this adds them from the wire
models, and documents every error as OpenAI's error body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.config import ModelConfig
from gateway.wire import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    ModelCard,
    ModelList,
)

_REF = "#/components/schemas/{model}"
_MODELS: list[tuple[type[BaseModel], Any]] = [
    (ChatCompletionRequest, "validation"),
    (EmbeddingRequest, "validation"),
    (ModelConfig, "validation"),
    (ChatCompletion, "serialization"),
    (EmbeddingResponse, "serialization"),
    (ModelList, "serialization"),
    (ModelCard, "serialization"),
    (ErrorResponse, "serialization"),
]

# (method, path) -> request body schema, success status, success schema or media types.
_BODIES: dict[tuple[str, str], str] = {
    ("post", "/v1/chat/completions"): "ChatCompletionRequest",
    ("post", "/v1/embeddings"): "EmbeddingRequest",
    ("post", "/admin/route/explain"): "ChatCompletionRequest",
    ("post", "/admin/models"): "ModelConfig",
}
_ANSWERS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("post", "/v1/chat/completions"): (
        "200",
        {
            "application/json": {"schema": {"$ref": _REF.format(model="ChatCompletion")}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    ),
    ("post", "/v1/embeddings"): (
        "200",
        {"application/json": {"schema": {"$ref": _REF.format(model="EmbeddingResponse")}}},
    ),
    ("get", "/v1/models"): (
        "200",
        {"application/json": {"schema": {"$ref": _REF.format(model="ModelList")}}},
    ),
    ("get", "/v1/models/{model_id}"): (
        "200",
        {"application/json": {"schema": {"$ref": _REF.format(model="ModelCard")}}},
    ),
    ("post", "/admin/models"): ("201", {"application/json": {"schema": {"type": "object"}}}),
}
_ERROR = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}


def openapi_document(api: FastAPI) -> dict[str, Any]:
    """The document `/openapi.json` serves, built once."""
    if api.openapi_schema is not None:
        return api.openapi_schema
    document = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    _, definitions = models_json_schema(_MODELS, ref_template=_REF)
    document.setdefault("components", {}).setdefault("schemas", {}).update(
        definitions.get("$defs", {})
    )
    security = {"bearer": {"type": "http", "scheme": "bearer"}}
    document["components"]["securitySchemes"] = security
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            _complete(operation, method, path)
    api.openapi_schema = document
    return document


def _complete(operation: dict[str, Any], method: str, path: str) -> None:
    key = (method, path)
    if not path.startswith("/health"):
        operation["security"] = [{"bearer": []}]
    body = _BODIES.get(key)
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=body)}}},
        }
    elif method in ("post", "patch"):
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    responses = operation.setdefault("responses", {})
    answer = _ANSWERS.get(key)
    if answer is not None:
        status, content = answer
        responses.pop("200", None)
        responses[status] = {"description": "Success", "content": content}
    # Every route answers errors in OpenAI's shape (FastAPI's own 422 never happens: no route
    # lets FastAPI validate a body).
    responses.pop("422", None)
    responses["4XX"] = {"description": "The request was refused", "content": _ERROR}
    responses["5XX"] = {"description": "The gateway or a provider failed", "content": _ERROR}
