"""A run on disk: `<output>/<run_id>/manifest.json`, `results.parquet` (one row per case,
prompt, model and repeat), `pairwise.parquet`, and `parts/` (batches written as they finish,
compacted into results.parquet at the end). The layout is documented in the README; results
made elsewhere in the same layout can be loaded and compared too."""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

KEY = ["case_id", "prompt", "model", "repeat"]
BASE_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.string(),
    "case_id": pa.string(),
    "category": pa.string(),
    "prompt": pa.string(),
    "model": pa.string(),
    "served_model": pa.string(),
    "repeat": pa.int64(),
    "input": pa.string(),
    "reference": pa.string(),
    "output": pa.string(),
    "error": pa.string(),
    "prompt_tokens": pa.int64(),
    "completion_tokens": pa.int64(),
    "cost_usd": pa.float64(),
    "latency_ms": pa.float64(),
    "ttft_ms": pa.float64(),
    "request_id": pa.string(),
    "attempts": pa.int64(),
    "cached": pa.bool_(),
    "score_cost_usd": pa.float64(),
}
PAIRWISE_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.string(),
    "scorer": pa.string(),
    "case_id": pa.string(),
    "prompt": pa.string(),
    "repeat": pa.int64(),
    "model_a": pa.string(),
    "model_b": pa.string(),
    "winner": pa.string(),
    "reason": pa.string(),
    "cost_usd": pa.float64(),
}


def schema_for(scorers: list[str], labels: list[str], reasons: list[str]) -> pa.Schema:
    """results.parquet's schema: the base columns, then `score.<s>` and `score_error.<s>` per
    scorer, `label.<s>` for label scorers and `reason.<s>` for judges."""
    fields = [pa.field(name, kind) for name, kind in BASE_COLUMNS.items()]
    for name in scorers:
        fields += [
            pa.field(f"score.{name}", pa.float64()),
            pa.field(f"score_error.{name}", pa.string()),
        ]
    fields += [pa.field(f"label.{name}", pa.string()) for name in labels]
    fields += [pa.field(f"reason.{name}", pa.string()) for name in reasons]
    return pa.schema(fields)


class RunFolder:
    """One run's folder, local or at a URI pyarrow's filesystems can write (s3://, gs://...)."""

    def __init__(self, output: str, run_id: str) -> None:
        self.run_id = run_id
        if "://" in output:
            self.fs, root = fs.FileSystem.from_uri(output)
        else:
            self.fs, root = fs.LocalFileSystem(), os.path.abspath(output)
        self.root = posixpath.join(root, run_id)
        self.location = output.rstrip("/") + "/" + run_id

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != fs.FileType.NotFound

    def _write_bytes(self, name: str, data: bytes) -> None:
        """Written whole, then renamed over `name`: a reader never sees half a file."""
        target = self.path(name)
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        temporary = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(data)
        if isinstance(self.fs, fs.LocalFileSystem):
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        self.fs.move(temporary, target)

    def write_table(self, name: str, table: pa.Table) -> None:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        self._write_bytes(name, sink.getvalue())

    def read_table(self, name: str) -> pa.Table:
        with self.fs.open_input_file(self.path(name)) as handle:
            return pq.read_table(handle)

    # ------------------------------------------------------------------ manifest

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.exists("manifest.json"):
            return None
        with self.fs.open_input_stream(self.path("manifest.json")) as stream:
            return json.loads(stream.read())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self._write_bytes("manifest.json", json.dumps(manifest, indent=2).encode())

    # ------------------------------------------------------------------ rows

    def parts(self) -> list[str]:
        selector = fs.FileSelector(self.path("parts"), allow_not_found=True)
        names = [i.base_name for i in self.fs.get_file_info(selector)]
        return sorted(n for n in names if n.endswith(".parquet"))

    def write_part(self, table: pa.Table, sequence: int) -> None:
        self.write_table(f"parts/{sequence:08d}-{uuid.uuid4().hex[:6]}.parquet", table)

    def rows(self) -> pd.DataFrame:
        """Every row written so far: results.parquet, then the parts after it; a row written
        again (a failed row retried) replaces the earlier one."""
        frames = []
        if self.exists("results.parquet"):
            frames.append(self.read_table("results.parquet").to_pandas())
        frames += [self.read_table(f"parts/{name}").to_pandas() for name in self.parts()]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=list(BASE_COLUMNS))
        rows = pd.concat(frames, ignore_index=True)
        return rows.drop_duplicates(subset=KEY, keep="last").reset_index(drop=True)

    def compact(self, schema: pa.Schema, order: list[tuple[str, str, str, int]]) -> pd.DataFrame:
        """results.parquet from every row, in the sweep's order; parts removed after."""
        rows = self.rows()
        rank = {key: i for i, key in enumerate(order)}
        keys = list(
            zip(rows["case_id"], rows["prompt"], rows["model"], rows["repeat"], strict=True)
        )
        rows = rows.assign(_rank=[rank.get(k, len(rank)) for k in keys])
        rows = rows.sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)
        self.write_table("results.parquet", to_table(rows, schema))
        for name in self.parts():
            self.fs.delete_file(self.path(f"parts/{name}"))
        return rows


def to_table(rows: pd.DataFrame | list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows conformed to `schema`: missing columns null, extra columns kept after."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    columns = {}
    for field in schema:
        values = frame[field.name] if field.name in frame else [None] * len(frame)
        columns[field.name] = pa.array(
            [None if _missing(v) else v for v in values], type=field.type
        )
    extra = [c for c in frame.columns if c not in columns]
    table = pa.table(columns)
    for name in extra:
        table = table.append_column(name, pa.array(frame[name].tolist()))
    return table


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def load_run(location: str, run_id: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A run's rows as a DataFrame, and its manifest: `load_run(folder)` or
    `load_run(output, run_id)`. A run still going (or killed) gives the rows written so far."""
    folder = _folder(location, run_id)
    manifest = folder.read_manifest()
    if manifest is None:
        raise FileNotFoundError(f"no manifest.json in {folder.location}")
    return folder.rows(), manifest


def load_pairwise(location: str, run_id: str | None = None) -> pd.DataFrame | None:
    """A run's pairwise verdicts, or None when no pairwise judge ran."""
    folder = _folder(location, run_id)
    return (
        folder.read_table("pairwise.parquet").to_pandas()
        if folder.exists("pairwise.parquet")
        else None
    )


def _folder(location: str, run_id: str | None) -> RunFolder:
    if run_id is None:
        location = location.rstrip("/")
        output, run_id = posixpath.split(location) if "://" in location else os.path.split(location)
        return RunFolder(output or ".", run_id)
    return RunFolder(location, run_id)
