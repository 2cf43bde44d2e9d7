"""JSON output: answers to JSON-mode requests checked (parse, then schema), and `json_object`
emulated where a provider has no mode for it (Anthropic, Bedrock)."""

from __future__ import annotations

import json
import re

from gateway.errors import OutputSchemaError
from gateway.providers.schemas import output_schema, validate_output
from gateway.wire import ChatCompletionRequest, ResponseFormat

# `json_object` where a provider has no JSON-object mode (Anthropic, Bedrock): an instruction,
# and the answer checked. Not a forced tool: current Claude models refuse forced tool use
# (Sonnet 5.5 always, others with adaptive thinking on), and native structured outputs cannot
# express "any object" (every object must close its properties).
JSON_INSTRUCTION = (
    "Answer with a single JSON object and nothing else: no prose before or after it and no "
    "Markdown code fences."
)
_FENCE = re.compile(r"^\s*```(?:json)?[ \t]*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def check_json_output(content: str | None, fmt: ResponseFormat | None, provider: str) -> None:
    """A JSON-mode answer must parse and satisfy the schema; otherwise an `OutputSchemaError`
    (a 502 that neither opens the model's circuit nor moves on to other models)."""
    if output_schema(fmt) is None:
        return
    try:
        value = json.loads(content or "")
    except ValueError:
        raise OutputSchemaError(
            f"provider '{provider}' answered a JSON-mode request with text that is not JSON",
            provider=provider,
        ) from None
    validate_output(value, fmt, provider)


def wants_json_object(request: ChatCompletionRequest) -> bool:
    """Whether the request asks for any JSON object (the mode some providers emulate)."""
    fmt = request.response_format
    return fmt is not None and fmt.type == "json_object"


def unfenced(text: str) -> str:
    """An emulated JSON answer without the Markdown fence a model may still wrap it in."""
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text.strip()
