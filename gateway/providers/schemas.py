"""The client's `response_format` JSON schema, checked without fetching and within bounds.

A client's schema is untrusted input run inside the replica: `jsonschema` would fetch a remote
`$ref` with a blocking `urlopen` (a request to any host, with the event loop stopped), raise
on an unresolvable one, and run `pattern` with `re`, whose backtracking can take exponential
time. Here nothing is ever fetched (only `#...` references, resolved in the document itself),
the schema's size and depth are capped, patterns run under the `regex` module's timeout, and
every keyword checks one deadline per validation. Every fault in the schema is a 400 naming
the field; an answer that does not satisfy it is an `OutputSchemaError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import jsonschema
import orjson
import referencing
import referencing.exceptions
import referencing.jsonschema
import regex
from jsonschema import ValidationError, validators
from jsonschema.protocols import Validator

from gateway.errors import InvalidRequestError, OutputSchemaError
from gateway.wire import ResponseFormat

FIELD = "response_format.json_schema.schema"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 32
# One answer's validation, all keywords and patterns together.
VALIDATION_SECONDS = 0.5

_DEADLINE: ContextVar[float] = ContextVar("llmgw_schema_deadline", default=float("inf"))


class _OutOfTime(Exception):
    """The validation's deadline passed."""


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)


# The metaschemas `jsonschema` ships with, and nothing else: never a network fetch.
_REGISTRY: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse_retrieval)


def _search(pattern: str, text: str) -> bool:
    remaining = _DEADLINE.get() - time.monotonic()
    if remaining <= 0:
        raise _OutOfTime
    try:
        return regex.search(pattern, text, timeout=remaining) is not None
    except TimeoutError:
        raise _OutOfTime from None


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Validator, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(extras)})")


def _timed(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def checked(validator: Validator, value: Any, instance: Any, schema: Any) -> Any:
        if time.monotonic() > _DEADLINE.get():
            raise _OutOfTime
        return keyword(validator, value, instance, schema)

    return checked


def _bounded(cls: type[Validator]) -> type[Validator]:
    keywords = dict(cls.VALIDATORS)
    keywords.update(
        pattern=_pattern,
        patternProperties=_pattern_properties,
        additionalProperties=_additional_properties,
    )
    return validators.extend(cls, {k: _timed(v) for k, v in keywords.items()})


_BOUNDED: dict[type[Validator], type[Validator]] = {}


def _fault(where: str, detail: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where} is not a usable JSON schema: {detail}", param="response_format"
    )


def _walk(node: Any, path: str, depth: int, seen: set[str]) -> None:
    """Refuse what cannot be checked safely: non-local refs, bad patterns, deep nesting."""
    if depth > MAX_DEPTH:
        raise _fault(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", depth + 1, seen)
        return
    if not isinstance(node, dict):
        return
    seen.update(k for k in node if isinstance(k, str))
    for key, value in node.items():
        where = f"{path}.{key}"
        is_ref = key in ("$ref", "$dynamicRef", "$recursiveRef") and isinstance(value, str)
        if is_ref and not value.startswith("#"):
            raise _fault(where, f"only local references ('#...') are allowed, not {value!r}")
        if key == "pattern" and isinstance(value, str):
            _compile(where, value)
        if key == "patternProperties" and isinstance(value, dict):
            for pattern in value:
                _compile(f"{where}.{pattern}", pattern)
        _walk(value, where, depth + 1, seen)


def _compile(where: str, pattern: str) -> None:
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise _fault(where, f"not a valid regular expression ({exc})") from None


@lru_cache(maxsize=256)
def _compiled(text: bytes) -> Validator:
    schema = orjson.loads(text)
    if not isinstance(schema, dict | bool):
        raise _fault(FIELD, "a schema is a JSON object")
    seen: set[str] = set()
    _walk(schema, FIELD, 0, seen)
    if "unevaluatedProperties" in seen and "patternProperties" in seen:
        # jsonschema matches patternProperties with `re` for unevaluatedProperties: unbounded.
        raise _fault(FIELD, "unevaluatedProperties with patternProperties is not supported")
    cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise _fault(f"{FIELD}{where}", exc.message) from None
    if cls not in _BOUNDED:
        _BOUNDED[cls] = _bounded(cls)
    root = referencing.Resource.from_contents(
        schema, default_specification=referencing.jsonschema.DRAFT202012
    )
    resolver = _REGISTRY.resolver_with_root(root)
    for ref in _local_refs(schema):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise _fault(FIELD, f"the reference {ref!r} points at nothing") from None
    return _BOUNDED[cls](schema, registry=_REGISTRY)


def _local_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _local_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _local_refs(item)


def output_schema(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    """The schema a response must satisfy: the client's, or any object for json_object."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema" and fmt.json_schema and fmt.json_schema.schema_ is not None:
        return fmt.json_schema.schema_
    return {"type": "object"}


def output_validator(fmt: ResponseFormat | None) -> Validator | None:
    """The checked, compiled validator for a request's `response_format` (a 400 if unusable)."""
    schema = output_schema(fmt)
    if schema is None:
        return None
    text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    if len(text) > MAX_SCHEMA_BYTES:
        raise _fault(FIELD, f"larger than {MAX_SCHEMA_BYTES // 1024} KiB")
    return _compiled(text)


def check_output_schema(fmt: ResponseFormat | None) -> None:
    """Refuse an unusable `response_format` schema with a 400 before any upstream call."""
    output_validator(fmt)


def validate_output(value: Any, fmt: ResponseFormat | None, provider: str) -> None:
    """`value` must satisfy the client's schema, checked within `VALIDATION_SECONDS`."""
    validator = output_validator(fmt)
    if validator is None:
        return
    token = _DEADLINE.set(time.monotonic() + VALIDATION_SECONDS)
    try:
        error = next(iter(validator.iter_errors(value)), None)
    except _OutOfTime:
        raise _fault(
            FIELD, f"checking an answer against it took over {VALIDATION_SECONDS:g}s"
        ) from None
    except (referencing.exceptions.Unresolvable, RecursionError) as exc:
        raise _fault(FIELD, type(exc).__name__) from None
    finally:
        _DEADLINE.reset(token)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise OutputSchemaError(
            f"provider '{provider}' answered with JSON that does not match the requested "
            f"schema at {where}: {error.message[:200]}",
            provider=provider,
        )
