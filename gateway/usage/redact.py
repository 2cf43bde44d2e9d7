"""Secrets out of what the audit trail keeps: bodies of tenants that opted in, admin changes.

Fields whose name says secret (api_key, authorization, password, key_hash, ...) lose their
value; strings anywhere that look like a credential (bearer tokens, `sk-...` keys, AWS access
keys, PEM private keys) are masked; long bodies are cut to a bound.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

REDACTED = "[redacted]"
# What one audit entry keeps of a body, at most (characters of its JSON).
MAX_BODY_CHARS = 64_000

_SECRET_NAMES = re.compile(
    r"^(x[-_])?(authorization|proxy[-_]authorization|api[-_]?key|key|secret|client[-_]secret"
    r"|password|passwd|key[-_]hash|access[-_]token|refresh[-_]token|session[-_]token"
    r"|aws[-_]secret[-_]access[-_]key|aws[-_]session[-_]token|private[-_]key|cookie)$",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's value
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"  # sk-llmgw-..., OpenAI and Anthropic style keys
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with secret fields and credential-looking strings masked."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_NAMES.match(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUES.sub(REDACTED, value)
    return value


def body_for_audit(body: bytes | None) -> Any:
    """A request or response body as the audit trail keeps it: parsed JSON, redacted, bounded
    (a body too long is kept as its redacted first characters)."""
    if not body:
        return None
    try:
        data = redact(orjson.loads(body))
    except orjson.JSONDecodeError:
        data = redact(body.decode("utf-8", "replace"))
    text = orjson.dumps(data).decode()
    if len(text) <= MAX_BODY_CHARS:
        return data
    return {"truncated": True, "chars": len(text), "head": text[:MAX_BODY_CHARS]}
