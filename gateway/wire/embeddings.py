"""The body of `POST /v1/embeddings` and its answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.wire.base import OpenModel, StrictModel
from gateway.wire.chat_request import RouteHints

# OpenAI's limit on inputs in one request, so a request it would refuse is refused here.
MAX_EMBEDDING_INPUTS = 2048


class EmbeddingRequest(StrictModel):
    """The body of `POST /v1/embeddings`."""

    model: str = Field(min_length=1)
    input: (
        str
        | Annotated[list[str], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
        | Annotated[list[int], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    )
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    use_case: str | None = None
    route: RouteHints | None = None

    def texts(self) -> list[str]:
        """The inputs as strings; token-id inputs are refused by adapters that need text."""
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(item, str) for item in self.input):
            return list(self.input)  # type: ignore[arg-type]
        from gateway.errors import InvalidRequestError

        raise InvalidRequestError(
            "token-id input is not supported by this model; send text", param="input"
        )


class EmbeddingUsage(OpenModel):
    prompt_tokens: int = 0
    total_tokens: int = 0


class Embedding(OpenModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(OpenModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
