"""The built-in model table (`gateway/data/models.yaml`): what known models cost and can do.

A model config that leaves out `capabilities`, `context_window`, `max_output_tokens` or `price`
gets the value from the row for its provider type and upstream id; a value the config sets
always wins, and a model the table does not know keeps the config's defaults. `apply` records
where each of those four values came from in the model's `facts` (`config`, `table:<source>`
or `default`), which `llmgw models show` prints. Discovery also builds model configs from rows.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gateway.config import USE_CASES, ConfigError, GatewayConfig, ModelConfig, Price

# Bedrock cross-region inference profiles are the base model.
_BEDROCK_PREFIX = re.compile(r"^(us|eu|apac|jp|au|ca|us-gov|global)\.")
# Azure's global standard deployments list at OpenAI's prices.
_SAME_ROWS = {"azure_openai": "openai"}
# The model values the table can supply, in the order `llmgw models show` lists them.
FACT_FIELDS = ("capabilities", "context_window", "max_output_tokens", "price")
CONFIG, DEFAULT = "config", "default"


@dataclass(frozen=True)
class ModelFacts:
    """One known model's price, limits and capabilities, with where they come from.

    A field left out of the row is None: the table does not know it, and the config's default
    (or the config's own value) stands.
    """

    provider_type: str
    model: str
    price: Price | None
    context_window: int | None
    max_output_tokens: int | None
    capabilities: tuple[str, ...] | None
    source: str
    as_of: str

    @property
    def origin(self) -> str:
        """What `facts` records for a value taken from this row."""
        return f"table:{self.source} (as of {self.as_of})"

    def values(self) -> dict[str, Any]:
        """The fields this row knows, by ModelConfig field name."""
        known = {
            "capabilities": list(self.capabilities) if self.capabilities is not None else None,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "price": self.price,
        }
        return {name: value for name, value in known.items() if value is not None}

    def model_config(self, provider: str, name: str | None = None) -> ModelConfig:
        """A registry model for this row at one configured provider (discovery)."""
        chat = self.capabilities is None or "chat" in self.capabilities
        model = ModelConfig(
            name=name or self.model,
            provider=provider,
            upstream=self.model,
            use_cases=list(USE_CASES) if chat else [],
        )
        return fill(model, self)


def fill(model: ModelConfig, row: ModelFacts | None) -> ModelConfig:
    """`model` with every fact its config leaves out taken from `row`, and `facts` saying
    where each came from. Values taken from the table stay out of `model_fields_set`: they
    are not the config's, so a later apply (a newer table) may replace them."""
    explicit = model.model_fields_set
    known = row.values() if row is not None else {}
    taken = {name: value for name, value in known.items() if name not in explicit}
    table = row.origin if row is not None else DEFAULT
    facts = {
        name: CONFIG if name in explicit else (table if name in taken else DEFAULT)
        for name in FACT_FIELDS
    }
    filled = model.model_copy(update={**taken, "facts": facts})
    filled.__pydantic_fields_set__.difference_update({*taken, "facts"})
    return filled


class FactsTable:
    """Rows by provider type and upstream model id."""

    def __init__(self, rows: list[ModelFacts]) -> None:
        self._rows = {(row.provider_type, row.model): row for row in rows}

    def rows(self, provider_type: str) -> list[ModelFacts]:
        """Every row a provider of this type can serve."""
        wanted = _SAME_ROWS.get(provider_type, provider_type)
        return [row for (kind, _), row in self._rows.items() if kind == wanted]

    def lookup(self, provider_type: str, upstream: str) -> ModelFacts | None:
        kind = _SAME_ROWS.get(provider_type, provider_type)
        if kind == "bedrock":
            upstream = _BEDROCK_PREFIX.sub("", upstream.rsplit("/", 1)[-1])
        row = self._rows.get((kind, upstream))
        if row is None and kind == "ollama":
            # `llama3.1:8b`, `llama3.1:latest`: the family's row (sizes share their limits).
            row = self._rows.get((kind, upstream.split(":", 1)[0]))
        return row

    def price_for(self, model: ModelConfig, provider_type: str) -> Price:
        """The model's own price if its config sets one, else the table's, else zero."""
        if "price" in model.model_fields_set:
            return model.price
        row = self.lookup(provider_type, model.upstream_id)
        return row.price if row is not None and row.price is not None else model.price

    def apply(self, config: GatewayConfig) -> GatewayConfig:
        """The config with every fact a model leaves out taken from the table, and each
        model's `facts` saying where its values came from."""
        types = {p.name: p.type for p in config.providers}
        models = [
            fill(model, self.lookup(types[model.provider], model.upstream_id))
            for model in config.models
        ]
        return config.model_copy(update={"models": models})


def _price(data: dict[str, Any], where: str) -> Price | None:
    if "input" not in data and "output" not in data:
        return None
    try:
        return Price(
            input_per_mtok=float(data["input"]),
            output_per_mtok=float(data.get("output", 0.0)),
            cached_input_per_mtok=None
            if data.get("cached_input") is None
            else float(data["cached_input"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected numeric input/output/cached_input ({exc})") from None


def _row(provider_type: str, model: str, data: dict[str, Any], source: str) -> ModelFacts:
    where = f"{source}: {provider_type}.{model}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields")
    if not data.get("source") or not data.get("as_of"):
        raise ConfigError(f"{where}: expected `source` and `as_of` for every row")
    capabilities = data.get("capabilities")
    row = ModelFacts(
        provider_type=provider_type,
        model=model,
        price=_price(data, where),
        context_window=data.get("context_window"),
        max_output_tokens=data.get("max_output_tokens"),
        capabilities=tuple(capabilities) if capabilities is not None else None,
        source=str(data["source"]),
        as_of=str(data["as_of"]),
    )
    try:  # the row's values must make a valid model: capabilities spelled right, limits >= 1
        ModelConfig(name=model, provider=provider_type, **row.values())
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return row


def parse_model_facts(data: Any, source: str = "<models>") -> FactsTable:
    """A model table from its loaded YAML mapping; errors name the file and the row."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of provider types to models")
    rows = [
        _row(str(kind), str(model), fields, source)
        for kind, models in data.items()
        for model, fields in (models or {}).items()
    ]
    return FactsTable(rows)


@functools.lru_cache(maxsize=4)
def load_model_facts(path: str | Path | None = None) -> FactsTable:
    """The built-in table, or the one at `path`."""
    if path is None:
        text = resources.files("gateway").joinpath("data/models.yaml").read_text()
        return parse_model_facts(yaml.safe_load(text), "<built-in models.yaml>")
    return parse_model_facts(yaml.safe_load(Path(path).read_text()), str(path))
