"""The body of `POST /v1/chat/completions`: its tools and options, llmgw's routing hints, and
the limits OpenAI documents for it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from gateway.wire.base import JsonObject, OpenModel, StrictModel
from gateway.wire.messages import Message

# Limits OpenAI documents, so a request it would refuse is refused here by the field's name.
MAX_TOOLS = 128
MAX_STOP = 4
MAX_LOGIT_BIAS = 300
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# Beyond any model's output limit (each model's own limit is checked when routing), inside
# every SDK's 32-bit integers.
MAX_TOKENS = 2**31 - 1
Bias = Annotated[float, Field(ge=-100, le=100)]


class FunctionDef(OpenModel):
    name: str
    description: str | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class Tool(OpenModel):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(OpenModel):
    name: str


class NamedToolChoice(OpenModel):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(OpenModel):
    name: str
    schema_: JsonObject | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(OpenModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(OpenModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class RouteHints(StrictModel):
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


class ChatCompletionRequest(StrictModel):
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
