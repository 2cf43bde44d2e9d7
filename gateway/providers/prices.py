"""The built-in price table (`gateway/data/prices.yaml`): what known models cost and can do.

A model config's explicit `price` always wins; a model without one is priced from the row for
its provider type and upstream id. Discovery also builds model configs from these rows.
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

# Bedrock cross-region inference profiles price as the base model.
_BEDROCK_PREFIX = re.compile(r"^(us|eu|apac|jp|au|ca|us-gov|global)\.")
# Azure's global standard deployments list at OpenAI's prices.
_SAME_ROWS = {"azure_openai": "openai"}


@dataclass(frozen=True)
class PriceRow:
    """One model's list price and limits, with where they come from."""

    provider_type: str
    model: str
    price: Price
    context_window: int | None
    max_output_tokens: int | None
    capabilities: tuple[str, ...]
    source: str
    as_of: str

    def model_config(self, provider: str, name: str | None = None) -> ModelConfig:
        """A registry model for this row at one configured provider."""
        chat = "chat" in self.capabilities
        fields: dict[str, Any] = {
            "name": name or self.model,
            "provider": provider,
            "upstream": self.model,
            "capabilities": list(self.capabilities),
            "use_cases": list(USE_CASES) if chat else [],
            "price": self.price,
        }
        if self.context_window:
            fields["context_window"] = self.context_window
        if self.max_output_tokens:
            fields["max_output_tokens"] = self.max_output_tokens
        elif self.context_window:
            fields["max_output_tokens"] = min(self.context_window, 4096)
        return ModelConfig(**fields)


class PriceTable:
    """Rows by provider type and upstream model id."""

    def __init__(self, rows: list[PriceRow]) -> None:
        self._rows = {(row.provider_type, row.model): row for row in rows}

    def rows(self, provider_type: str) -> list[PriceRow]:
        """Every row a provider of this type can serve."""
        wanted = _SAME_ROWS.get(provider_type, provider_type)
        return [row for (kind, _), row in self._rows.items() if kind == wanted]

    def lookup(self, provider_type: str, upstream: str) -> PriceRow | None:
        kind = _SAME_ROWS.get(provider_type, provider_type)
        if kind == "bedrock":
            upstream = _BEDROCK_PREFIX.sub("", upstream.rsplit("/", 1)[-1])
        return self._rows.get((kind, upstream))

    def price_for(self, model: ModelConfig, provider_type: str) -> Price:
        """The model's own price if its config sets one, else the table's, else zero."""
        if "price" in model.model_fields_set:
            return model.price
        row = self.lookup(provider_type, model.upstream_id)
        return row.price if row is not None else model.price

    def apply(self, config: GatewayConfig) -> GatewayConfig:
        """The config with every model that sets no price priced from the table."""
        types = {p.name: p.type for p in config.providers}
        models = []
        for model in config.models:
            if "price" in model.model_fields_set:
                models.append(model)
                continue
            row = self.lookup(types[model.provider], model.upstream_id)
            models.append(model if row is None else _with_price(model, row.price))
        return config.model_copy(update={"models": models})


def _with_price(model: ModelConfig, price: Price) -> ModelConfig:
    # model_copy would leave `price` out of model_fields_set; the table's price is not explicit.
    priced = model.model_copy(update={"price": price})
    priced.__pydantic_fields_set__.discard("price")
    return priced


def _row(provider_type: str, model: str, data: dict[str, Any], source: str) -> PriceRow:
    where = f"{source}: {provider_type}.{model}"
    try:
        price = Price(
            input_per_mtok=float(data["input"]),
            output_per_mtok=float(data.get("output", 0.0)),
            cached_input_per_mtok=None
            if data.get("cached_input") is None
            else float(data["cached_input"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected numeric input/output/cached_input ({exc})") from None
    if not data.get("source") or not data.get("as_of"):
        raise ConfigError(f"{where}: expected `source` and `as_of` for every price")
    return PriceRow(
        provider_type=provider_type,
        model=model,
        price=price,
        context_window=data.get("context_window"),
        max_output_tokens=data.get("max_output_tokens"),
        capabilities=tuple(data.get("capabilities") or ("chat", "streaming")),
        source=str(data["source"]),
        as_of=str(data["as_of"]),
    )


def parse_price_table(data: Any, source: str = "<prices>") -> PriceTable:
    """A price table from its loaded YAML mapping; errors name the file and the row."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of provider types to models")
    rows = [
        _row(str(kind), str(model), fields, source)
        for kind, models in data.items()
        for model, fields in (models or {}).items()
    ]
    return PriceTable(rows)


@functools.lru_cache(maxsize=4)
def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The built-in table, or the one at `path`."""
    if path is None:
        text = resources.files("gateway").joinpath("data/prices.yaml").read_text()
        return parse_price_table(yaml.safe_load(text), "<built-in prices.yaml>")
    return parse_price_table(yaml.safe_load(Path(path).read_text()), str(path))
