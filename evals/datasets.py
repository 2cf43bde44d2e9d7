"""Cases from a JSONL, CSV or Parquet file (a path or a URI pyarrow can read), or one of the
built-in datasets shipped in `evals/data/` (chat, summarization, classification, extraction,
research)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

DATA = Path(__file__).with_name("data")
BUILTIN = ("chat", "summarization", "classification", "extraction", "research")


def builtin_path(name: str) -> Path | None:
    name = name.removeprefix("builtin:")
    return DATA / f"{name}.jsonl" if name in BUILTIN else None


def _format(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    lowered = path.lower()
    for suffix, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv")):
        if lowered.endswith(suffix):
            return kind
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of '{path}': name it .jsonl, .csv or .parquet")


def _open(path: str) -> Any:
    if "://" not in path:
        return open(path, "rb")
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    return filesystem.open_input_stream(inner)


def load_cases(path: str, fmt: str | None = None) -> list[dict[str, Any]]:
    """Every case as a dict of its fields, in file order."""
    local = builtin_path(path)
    source = str(local) if local is not None else path
    kind = "jsonl" if local is not None else _format(path, fmt)
    with _open(source) as stream:
        if kind == "jsonl":
            lines = stream.read().decode().splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        frame = (
            pd.read_csv(stream, dtype=str, keep_default_na=False)
            if kind == "csv"
            else (pd.read_parquet(stream))
        )
    return frame.to_dict(orient="records")


def fields_of(cases: list[dict[str, Any]]) -> list[str]:
    """The fields the cases hold, in first-seen order."""
    seen: dict[str, None] = {}
    for case in cases:
        seen.update(dict.fromkeys(case))
    return list(seen)
