"""Embedding vectors in the encoding the client asked for."""

from __future__ import annotations

import base64
import struct


def encode_embedding(vector: list[float], encoding_format: str | None) -> list[float] | str:
    """A vector as floats, or as base64 of little-endian float32 bytes (as OpenAI does)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return [float(v) for v in vector]
