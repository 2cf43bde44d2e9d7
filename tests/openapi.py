"""Validate what we serve against OpenAI's published OpenAPI document.

The repository carries its own copy (`tests/spec/openai-openapi.json`: openai/openai-openapi,
commit f85dbe2, 2026-08-21), so a clone alone can run the tests.

The document is OpenAPI 3.x with `nullable: true` on fields that may be null; JSON Schema has
no such keyword, so each schema is rewritten to allow null where the document says so.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "openai-openapi.json"


def _spec_path() -> Path:
    if SPEC_PATH.exists():
        return SPEC_PATH
    raise FileNotFoundError(f"OpenAI's OpenAPI document is not at {SPEC_PATH}")


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@cache
def _registry() -> tuple[Registry, dict[str, Any]]:
    spec = _nullable(json.loads(_spec_path().read_text()))
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    return Registry().with_resource("spec", resource), spec


def validate(instance: Any, schema_name: str) -> None:
    """Raise `jsonschema.ValidationError` unless `instance` matches the named component schema."""
    registry, spec = _registry()
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(schema_name)
    schema = {"$ref": f"spec#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        raise errors[0]
