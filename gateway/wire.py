"""OpenAI's wire format as pydantic models: what clients send us and what we send back.

Requests are validated strictly (an unknown parameter is a 400, as OpenAI answers); responses
serialise to exactly the JSON OpenAI returns, checked against its published OpenAPI document.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

# Limits OpenAI documents, so a request it would refuse is refused here by the field's name.
MAX_TOOLS = 128
MAX_STOP = 4
MAX_LOGIT_BIAS = 300
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_EMBEDDING_INPUTS = 2048
# Beyond any model's output limit (each model's own limit is checked when routing), inside
# every SDK's 32-bit integers.
MAX_TOKENS = 2**31 - 1
# Nesting of free-form JSON (tool parameter schemas, response schemas): deep enough for any
# real schema, shallow enough for every recursive walk downstream.
MAX_JSON_DEPTH = 64


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply `value` nests (a scalar is 0), counted without recursion; stops counting
    once past `limit`."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
            pending.extend((inner, depth) for inner in item)
    return deepest


def _bounded_depth(value: Any) -> Any:
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_depth)]
Bias = Annotated[float, Field(ge=-100, le=100)]


def _omit() -> Any:
    """A field OpenAI leaves out of its JSON when it has no value, rather than sending null."""
    return Field(default=None, exclude_if=lambda value: value is None)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    # Response-side and nested objects: tolerate fields newer SDKs send.
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- request: content and messages


class ImageURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Open):
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class ToolMessage(_Open):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


def text_of(content: str | list[Any] | None) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


# ---------------------------------------------------------------- request: tools and options


class FunctionDef(_Open):
    name: str
    description: str | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(_Open):
    name: str
    schema_: JsonObject | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class RouteHints(_Strict):
    """llmgw's own routing hints, sent as `route` in the body (`extra_body` in the SDK)."""

    strategy: (
        Literal["capability", "cost", "latency", "preference", "tenant", "hybrid", "quality"] | None
    ) = None
    # The cheapest model whose published quality's lower bound clears this (quality, hybrid).
    min_quality: float | None = Field(default=None, ge=0, le=1)
    max_cost_per_mtok: float | None = Field(default=None, ge=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    providers: list[str] | None = Field(default=None, max_length=64)
    prefer: list[str] | None = Field(default=None, max_length=64)
    fallback: bool = True


class ChatCompletionRequest(_Strict):
    """The body of `POST /v1/chat/completions`, with llmgw's `use_case` and `route` extensions."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    user: str | None = None
    tools: list[Tool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, Bias] | None = Field(default=None, max_length=MAX_LOGIT_BIAS)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = Field(default=None, max_length=4)
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # llmgw extensions
    use_case: (
        Literal["chat", "summarization", "classification", "extraction", "research"] | None
    ) = None
    route: RouteHints | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences, got {len(value)}")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > MAX_METADATA:
            raise ValueError(f"at most {MAX_METADATA} key-value pairs, got {len(value)}")
        for key, text in value.items():
            if len(key) > MAX_METADATA_KEY:
                raise ValueError(f"keys of at most {MAX_METADATA_KEY} characters")
            if len(text) > MAX_METADATA_VALUE:
                raise ValueError(f"values of at most {MAX_METADATA_VALUE} characters")
        return value

    def output_limit(self) -> int | None:
        """The client's cap on output tokens, whichever of the two fields it used."""
        return self.max_completion_tokens or self.max_tokens

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


# ---------------------------------------------------------------- responses


class PromptTokensDetails(_Open):
    cached_tokens: int = 0


class Usage(_Open):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = _omit()

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int | None = None) -> Usage:
        details = PromptTokensDetails(cached_tokens=cached) if cached is not None else None
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=details,
        )

    @property
    def cached_tokens(self) -> int:
        return self.prompt_tokens_details.cached_tokens if self.prompt_tokens_details else 0


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ResponseMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = _omit()


class Choice(_Open):
    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason
    logprobs: dict[str, Any] | None = None


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletion(_Open):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = _omit()


class FunctionCallDelta(_Open):
    name: str | None = _omit()
    arguments: str | None = _omit()


class ToolCallDelta(_Open):
    index: int
    id: str | None = _omit()
    type: Literal["function"] | None = _omit()
    function: FunctionCallDelta | None = _omit()


class Delta(_Open):
    role: Literal["assistant"] | None = _omit()
    content: str | None = _omit()
    refusal: str | None = _omit()
    tool_calls: list[ToolCallDelta] | None = _omit()


class ChunkChoice(_Open):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(_Open):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = _omit()
    system_fingerprint: str | None = _omit()


class ModelCard(_Open):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def dump(model: BaseModel) -> bytes:
    """JSON bytes of a response model, shaped as OpenAI's."""
    return model.__pydantic_serializer__.to_json(model, by_alias=True)


class ErrorDetail(_Open):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Open):
    """Every error the gateway answers, as OpenAI shapes it."""

    error: ErrorDetail


# ---------------------------------------------------------------- embeddings


class EmbeddingRequest(_Strict):
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


class EmbeddingUsage(_Open):
    prompt_tokens: int = 0
    total_tokens: int = 0


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(_Open):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
