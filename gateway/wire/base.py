"""What every wire model shares: the strict base of request bodies (an unknown parameter is
refused), the open base of nested and response objects, fields OpenAI omits when empty, and
free-form JSON bounded in depth.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


def omitted() -> Any:
    """A field OpenAI leaves out of its JSON when it has no value, rather than sending null."""
    return Field(default=None, exclude_if=lambda value: value is None)


class StrictModel(BaseModel):
    """A request body: a parameter it does not define is a 400, as OpenAI answers."""

    model_config = ConfigDict(extra="forbid")


class OpenModel(BaseModel):
    """Response-side and nested objects: tolerate fields newer SDKs send."""

    model_config = ConfigDict(extra="allow")
