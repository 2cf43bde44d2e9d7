"""Bedrock's embedding models over InvokeModel, each family with its own body shapes.

Titan takes one text per call (the adapter makes the calls in parallel) and reports its token
count in the body; Cohere takes a batch and reports tokens in a response header.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from gateway.providers.support import refuse

Answer = tuple[dict[str, Any], dict[str, str]]

TITAN_DIMENSIONS = (256, 512, 1024)
COHERE_V4_DIMENSIONS = (256, 512, 1024, 1536)


class EmbeddingFamily(Protocol):
    """How one model family wants its texts, and where its vectors and token count are."""

    def bodies(self, texts: list[str], dimensions: int | None) -> list[dict[str, Any]]: ...

    def read(self, answers: list[Answer]) -> tuple[list[list[float]], int]: ...


class Titan:
    """Amazon Titan Text Embeddings (v1: fixed size; v2: 256, 512 or 1024, normalised)."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def bodies(self, texts: list[str], dimensions: int | None) -> list[dict[str, Any]]:
        return [self._body(text, dimensions) for text in texts]

    def _body(self, text: str, dimensions: int | None) -> dict[str, Any]:
        if "titan-embed-text-v1" in self.model_id:
            if dimensions is not None:
                raise refuse("dimensions", "bedrock", f"{self.model_id} has a fixed size")
            return {"inputText": text}
        if dimensions is not None and dimensions not in TITAN_DIMENSIONS:
            raise refuse("dimensions", "bedrock", f"Titan v2 takes one of {TITAN_DIMENSIONS}")
        body: dict[str, Any] = {"inputText": text, "normalize": True}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return body

    def read(self, answers: list[Answer]) -> tuple[list[list[float]], int]:
        vectors = [answer["embedding"] for answer, _ in answers]
        return vectors, sum(answer.get("inputTextTokenCount", 0) for answer, _ in answers)


class Cohere:
    """Cohere Embed (v3: fixed size; v4: `output_dimension`), one call for all texts."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def bodies(self, texts: list[str], dimensions: int | None) -> list[dict[str, Any]]:
        # OpenAI's API has no input type; documents are what a gateway embeds most.
        body: dict[str, Any] = {
            "texts": texts,
            "input_type": "search_document",
            "embedding_types": ["float"],
        }
        if dimensions is not None:
            if "embed-v4" not in self.model_id or dimensions not in COHERE_V4_DIMENSIONS:
                raise refuse(
                    "dimensions",
                    "bedrock",
                    f"only Cohere Embed v4 takes one of {COHERE_V4_DIMENSIONS}",
                )
            body["output_dimension"] = dimensions
        return [body]

    def read(self, answers: list[Answer]) -> tuple[list[list[float]], int]:
        (answer, headers), *_ = answers
        return answer["embeddings"]["float"], int(
            headers.get("x-amzn-bedrock-input-token-count", 0)
        )


def family_for(model_id: str) -> EmbeddingFamily | None:
    if "titan-embed" in model_id:
        return Titan(model_id)
    if "cohere.embed" in model_id:
        return Cohere(model_id)
    return None


def invoke(client: Any, model_id: str, body: dict[str, Any]) -> Answer:
    """One blocking InvokeModel call with its body read: the adapter runs it in its pool."""
    response = client.invoke_model(
        modelId=model_id,
        body=json.dumps(body),
        contentType="application/json",
        accept="application/json",
    )
    answer = json.loads(response["body"].read())
    return answer, response["ResponseMetadata"].get("HTTPHeaders", {})
