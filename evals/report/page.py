"""The comparison as one self-contained HTML page: inline CSS, SVG and a little JS, no URL.

Model outputs are untrusted text: every value goes through `html.escape`, and a Content
Security Policy lets only this page's own script run (by its hash) and fetch nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from evals.compare import Comparison
from evals.report import plots

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #0f172a;
       margin: 0 auto; max-width: 1400px; padding: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 32px 0 8px; }
.meta { color: #475569; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e2e8f0; padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f8fafc; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
.plots figure { margin: 0; border: 1px solid #e2e8f0; border-radius: 6px; padding: 8px; }
.plots figcaption { font-size: 13px; color: #475569; margin-bottom: 4px; }
svg.plot { max-width: 100%; height: auto; }
.yes { color: #15803d; font-weight: 600; } .no { color: #b91c1c; }
#controls { display: flex; gap: 16px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
#controls input[type=search] { width: 320px; padding: 4px 8px; }
#cases { table-layout: fixed; width: 100%; }
#cases td { white-space: pre-wrap; word-break: break-word; max-height: 12em; }
#cases td .score { display: block; font-size: 12px; color: #475569; margin-top: 4px; }
#cases td.err { background: #fef2f2; }
.cases-wrap { overflow-x: auto; }
"""

_JS = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#cases tbody tr"));
  var text = rows.map(function (r) { return r.textContent.toLowerCase(); });
  var q = document.getElementById("q"), cat = document.getElementById("category");
  var dis = document.getElementById("disagree"), err = document.getElementById("errors");
  var count = document.getElementById("count");
  function apply() {
    var needle = q.value.toLowerCase().trim(), shown = 0;
    rows.forEach(function (r, i) {
      var ok = (!needle || text[i].indexOf(needle) >= 0) &&
        (!cat.value || r.dataset.category === cat.value) &&
        (!dis.checked || r.dataset.disagree === "1") &&
        (!err.checked || r.dataset.error === "1");
      r.hidden = !ok;
      if (ok) { shown++; }
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
    document.body.dataset.shown = String(shown);
  }
  [q, cat, dis, err].forEach(function (el) { el.addEventListener("input", apply); });
  var params = new URLSearchParams(location.hash.slice(1));
  if (params.has("q")) { q.value = params.get("q"); }
  if (params.has("category")) { cat.value = params.get("category"); }
  dis.checked = params.get("disagree") === "1";
  err.checked = params.get("errors") === "1";
  apply();
  document.body.dataset.ready = "1";
  console.log("llmgw-report-ready");
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return _e(value)


def _table(frame: pd.DataFrame, columns: dict[str, tuple[str, int | None]]) -> str:
    """A plain table: `columns` maps a column to (header, digits or None for text)."""
    head = "".join(f"<th>{_e(title)}</th>" for title, _ in columns.values())
    body = []
    for record in frame.to_dict("records"):
        cells = []
        for column, (_, digits) in columns.items():
            value = record.get(column)
            if digits is None:
                cells.append(f"<td>{_e(value)}</td>")
            else:
                cells.append(f'<td class="num">{_num(value, digits)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _interval(frame: pd.DataFrame, digits: int = 3) -> pd.Series:
    return frame.apply(
        lambda r: f"[{_num(r['ci_low'], digits)}, {_num(r['ci_high'], digits)}]", axis=1
    )


_SUMMARY = {
    "system": ("system", None),
    "scorer": ("scorer", None),
    "n": ("cases", 0),
    "mean": ("mean", 3),
    "interval": ("95% CI", None),
    "ci_method": ("CI method", None),
    "pass_rate": ("pass rate", 3),
    "pass_at_k": ("pass@k", 3),
    "pass_hat_k": ("pass^k", 3),
    "k": ("k", 0),
    "cost_usd": ("cost USD", 4),
    "cost_per_1k_cases": ("USD / 1k cases", 4),
    "latency_p50_ms": ("p50 ms", 0),
    "latency_p95_ms": ("p95 ms", 0),
    "prompt_tokens": ("tokens in", 0),
    "completion_tokens": ("tokens out", 0),
    "errors": ("errors", 0),
}


def _summary(frame: pd.DataFrame, first: dict[str, tuple[str, int | None]]) -> str:
    frame = frame.assign(interval=_interval(frame))
    columns = {**first, **{k: v for k, v in _SUMMARY.items() if k not in ("system",)}}
    if "on_frontier" in frame:
        frame = frame.assign(frontier=frame["on_frontier"].map({True: "yes", False: ""}))
        columns["frontier"] = ("Pareto", None)
    return _table(frame, columns)


def _pairs(pairs: pd.DataFrame) -> str:
    frame = pairs.assign(
        interval=_interval(pairs, 3),
        verdict=pairs["significant"].map({True: "significant", False: "not significant"}),
    )
    return _table(
        frame,
        {
            "a": ("a", None),
            "b": ("b", None),
            "scorer": ("scorer", None),
            "diff": ("b - a", 3),
            "interval": ("95% CI", None),
            "p_value": ("p", 4),
            "p_adjusted": ("p (Holm)", 4),
            "verdict": ("", None),
            "test": ("test", None),
            "n": ("cases", 0),
            "wins": ("b wins", 0),
            "ties": ("ties", 0),
            "losses": ("b loses", 0),
        },
    )


def _cases(comparison: Comparison) -> tuple[str, list[str]]:
    """The per-case table: one row per (case, prompt, repeat), each system's output side by
    side with its scores. Returns the table and the categories for the filter."""
    rows = comparison.rows
    systems = comparison.systems
    primary = f"score.{comparison.primary}"
    score_columns = [f"score.{s}" for s in comparison.scorers]
    by_key: dict[tuple, dict[str, dict[str, Any]]] = {}
    info: dict[tuple, dict[str, Any]] = {}
    for record in rows.to_dict("records"):
        key = (record["case_id"], record["prompt"], record["repeat"])
        by_key.setdefault(key, {})[record["system"]] = record
        info.setdefault(key, record)
    head = "".join(
        f"<th>{_e(t)}</th>" for t in ["case", "category", "prompt", "input", "reference"]
    )
    head += "".join(f"<th>{_e(s)}</th>" for s in systems)
    width = f'<col style="width:{max(10, 60 // max(len(systems), 1))}%">'
    colgroup = '<col style="width:8%"><col style="width:6%"><col style="width:6%">'
    colgroup += '<col style="width:10%"><col style="width:10%">' + width * len(systems)
    body = []
    for key in sorted(by_key, key=lambda k: (str(k[0]), str(k[1]), k[2])):
        answers = by_key[key]
        first = info[key]
        primaries = {a.get(primary) for a in answers.values() if not pd.isna(a.get(primary))}
        errored = any(
            a.get("error") is not None and not pd.isna(a.get("error")) for a in answers.values()
        )
        cells = [
            f"<td>{_e(key[0])}<br><small>repeat {_e(key[2])}</small></td>",
            f"<td>{_e(first.get('category'))}</td>",
            f"<td>{_e(key[1])}</td>",
            f"<td>{_e(first.get('input'))}</td>",
            f"<td>{_e(first.get('reference'))}</td>",
        ]
        for system in systems:
            answer = answers.get(system)
            if answer is None:
                cells.append("<td>-</td>")
                continue
            error = answer.get("error")
            has_error = error is not None and not pd.isna(error)
            text = f"[error] {error}" if has_error else answer.get("output")
            scores = " · ".join(f"{c[6:]} {_num(answer.get(c), 2)}" for c in score_columns)
            css = ' class="err"' if has_error else ""
            cells.append(f'<td{css}>{_e(text)}<span class="score">{_e(scores)}</span></td>')
        body.append(
            f'<tr data-category="{_e(first.get("category"))}" '
            f'data-disagree="{int(len(primaries) > 1)}" data-error="{int(errored)}">'
            + "".join(cells)
            + "</tr>"
        )
    table = (
        f'<table id="cases"><colgroup>{colgroup}</colgroup><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    categories = sorted({str(c) for c in rows["category"].dropna().unique()})
    return table, categories


def _runs(comparison: Comparison) -> str:
    frame = pd.DataFrame(
        [
            {
                "run_id": run.run_id,
                "name": run.manifest.get("name"),
                "git_revision": run.manifest.get("git_revision"),
                "registry_version": run.manifest.get("registry_version"),
                "started_at": run.manifest.get("started_at"),
                "ended_at": run.manifest.get("ended_at"),
                "rows": len(run.rows),
                "baseline": "baseline" if run.run_id == comparison.baseline else "",
            }
            for run in comparison.runs
        ]
    )
    return _table(frame, {c: (c.replace("_", " "), None) for c in frame.columns})


def render_html(comparison: Comparison, title: str | None = None) -> str:
    """The whole report as one HTML string that opens offline in any browser."""
    title = title or "Model comparison: " + ", ".join(r.run_id for r in comparison.runs)
    primary = comparison.primary
    figures = [
        (
            f"Mean {name} with 95% confidence intervals",
            plots.scores_with_intervals(comparison.models, name),
        )
        for name in comparison.scorers
    ]
    figures.append(
        (
            f"Cost against {primary}, Pareto frontier in blue",
            plots.cost_quality(comparison.models, primary),
        )
    )
    figures.append(
        ("Latency per call", plots.latency_distributions(comparison.rows, comparison.systems))
    )
    source = "the pairwise judge" if not comparison.pairwise.empty else f"per-case {primary}"
    if len(comparison.systems) > 1:
        figures.append(
            (
                f"Win rate of the row against the column ({source})",
                plots.win_rate_matrix(comparison.win_rates()),
            )
        )
    figure_html = "".join(
        f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>" for caption, svg in figures
    )
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Generated {_e(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))}'
        f" · primary scorer <b>{_e(primary)}</b> · intervals: bootstrap over cases (a case's "
        "repeats and prompts move together), Wilson for one pass/fail outcome per case · "
        "pairs: paired bootstrap, sign-flip or McNemar test, Holm-adjusted</p>",
        "<h2>Runs</h2>",
        _runs(comparison),
        "<h2>Models</h2>",
        _summary(comparison.models, {"system": ("system", None)}),
        '<h2>Plots</h2><div class="plots">' + figure_html + "</div>",
    ]
    if not comparison.pairs.empty:
        sections += ["<h2>Pairs</h2>", _pairs(comparison.pairs)]
    if not comparison.ratings.empty:
        sections += [
            "<h2>Bradley-Terry ratings (pairwise judge; one scale per run)</h2>",
            _table(
                comparison.ratings.assign(interval=_interval(comparison.ratings, 0)),
                {
                    "scorer": ("judge", None),
                    "run_id": ("run", None),
                    "model": ("system", None),
                    "rating": ("rating", 0),
                    "interval": ("95% CI", None),
                    "games": ("games", 0),
                    "wins": ("wins", 0),
                    "ties": ("ties", 0),
                    "losses": ("losses", 0),
                },
            ),
        ]
    if comparison.rows["prompt"].nunique() > 1:
        sections += [
            "<h2>By prompt</h2>",
            _summary(
                comparison.by_prompt, {"system": ("system", None), "prompt": ("prompt", None)}
            ),
        ]
    if comparison.rows["category"].nunique() > 1:
        sections += [
            "<h2>By category</h2>",
            _summary(
                comparison.by_category, {"system": ("system", None), "category": ("category", None)}
            ),
        ]
    cases, categories = _cases(comparison)
    options = '<option value="">all categories</option>' + "".join(
        f'<option value="{_e(c)}">{_e(c)}</option>' for c in categories
    )
    sections += [
        "<h2>Cases</h2>",
        '<div id="controls"><input id="q" type="search" placeholder="filter cases by any text">'
        f'<select id="category">{options}</select>'
        '<label><input id="disagree" type="checkbox"> only where the models disagree</label>'
        '<label><input id="errors" type="checkbox"> only errors</label>'
        '<span id="count"></span></div>',
        f'<div class="cases-wrap">{cases}</div>',
    ]
    digest = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + f"<script>{_JS}</script></body></html>\n"
    )
