"""The comparison as one self-contained HTML file (`llmgw eval report`)."""

from __future__ import annotations

from pathlib import Path

from evals.compare import Comparison
from evals.report.page import render_html


def write_html(comparison: Comparison, path: str | Path, title: str | None = None) -> Path:
    """Write the report to `path` (UTF-8) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(comparison, title), encoding="utf-8")
    return path


__all__ = ["render_html", "write_html"]
