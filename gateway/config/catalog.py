"""Providers and models as the config file declares them: types, prices, timeouts, settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ProviderType = Literal["sim", "openai", "azure_openai", "anthropic", "bedrock", "ollama"]
UseCase = Literal["chat", "summarization", "classification", "extraction", "research"]
Capability = Literal["chat", "streaming", "tools", "vision", "json_mode", "embeddings"]
ModelStatus = Literal["active", "testing", "deprecated"]
Strategy = Literal["capability", "cost", "latency", "preference", "tenant", "hybrid", "quality"]

USE_CASES: tuple[str, ...] = ("chat", "summarization", "classification", "extraction", "research")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigError(Exception):
    """A config file that cannot be used: the message names file, field and expectation."""


class _FieldError(ValueError):
    """A value a validator refuses, with the path of the field inside its section."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path}: expected {expected}")
        self.path = path


class SimSettings(_Section):
    """The `sim` provider's behaviour: deterministic text with chosen speed and failures."""

    seed: int = 0
    ttft_ms: float = Field(default=0.0, ge=0)
    tokens_per_s: float = Field(default=0.0, ge=0, description="0 means as fast as possible")
    output_tokens: int = Field(default=16, ge=1)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    failure_statuses: list[int] = Field(default_factory=lambda: [503])
    cut_stream_after: int | None = Field(default=None, ge=0)


class ProviderConfig(_Section):
    """One upstream: its type and how to reach it. Secrets only by env-var reference."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: ProviderType
    base_url: str | None = None
    api_key_env: str | None = None
    endpoint: str | None = None
    api_version: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    organization: str | None = None
    project: str | None = None
    azure_ad: bool = False
    max_connections: int = Field(default=100, ge=1)
    sim: SimSettings | None = None

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("the name of an environment variable (the key itself never goes here)")
        return value


class Price(_Section):
    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """Cost in dollars of one call's usage."""
        cached_rate = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else (self.cached_input_per_mtok)
        )
        fresh = max(0, prompt_tokens - cached_tokens)
        return (
            fresh * self.input_per_mtok
            + cached_tokens * cached_rate
            + completion_tokens * self.output_per_mtok
        ) / 1_000_000

    @property
    def blended_per_mtok(self) -> float:
        """One figure to rank models by cost: a 3:1 input:output token mix."""
        return (3 * self.input_per_mtok + self.output_per_mtok) / 4


class Timeouts(_Section):
    connect_s: float = Field(default=5.0, gt=0)
    first_token_s: float = Field(default=30.0, gt=0)
    total_s: float = Field(default=300.0, gt=0)


class PublishedQuality(_Section):
    """A model's measured quality on one use case, as `llmgw eval publish` wrote it from a run."""

    mean: float = Field(ge=0, le=1)
    ci_low: float = Field(ge=0, le=1, description="lower bound of the 95% interval")
    ci_high: float = Field(ge=0, le=1)
    n: int = Field(ge=1, description="cases measured")
    scorer: str
    run_id: str
    published_at: str | None = None


class ModelConfig(_Section):
    """A model clients can name, at one provider, with what it can do and what it costs."""

    name: str = Field(min_length=1)
    provider: str
    upstream: str | None = None
    aliases: list[str] = Field(default_factory=list)
    use_cases: list[UseCase] = Field(default_factory=lambda: ["chat"])
    capabilities: list[Capability] = Field(default_factory=lambda: ["chat", "streaming"])
    context_window: int = Field(default=8192, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    price: Price = Field(default_factory=Price)
    status: ModelStatus = "active"
    quality: float = Field(default=0.5, ge=0, le=1)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    fallbacks: list[str] = Field(
        default_factory=list, description="models to try, in order, when this one fails"
    )
    sim: SimSettings | None = None
    published_quality: dict[UseCase, PublishedQuality] = Field(
        default_factory=dict, description="per use case, from eval runs (llmgw eval publish)"
    )
    facts: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "set by the gateway, not the config file: where capabilities, context_window, "
            "max_output_tokens and price came from (config, admin, table:<source>, default)"
        ),
    )

    @property
    def upstream_id(self) -> str:
        return self.upstream or self.name
