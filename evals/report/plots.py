"""The report's plots as inline SVG strings (matplotlib's SVG backend, text kept as text)."""

from __future__ import annotations

import io
import re

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

_STYLE = {
    "svg.fonttype": "none",  # <text>, not glyph paths: smaller, selectable, searchable
    "svg.hashsalt": "llmgw",  # stable ids, so the same data gives the same file
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_ACCENT = "#2563eb"
_MUTED = "#94a3b8"


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    # A bare Figure, not pyplot: no global backend or figure registry shared with the caller.
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _svg(fig: Figure, prefix: str) -> str:
    """The figure as an <svg> element fit to be inlined in HTML: no XML prolog, DOCTYPE,
    metadata or namespace URLs, and ids prefixed so several figures share one page."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return svg.replace("<svg", f'<svg role="img" class="plot" data-plot="{prefix}"', 1)


def scores_with_intervals(models: pd.DataFrame, scorer: str) -> str:
    """Each system's mean score on `scorer` with its confidence interval as a bar."""
    rows = models[models["scorer"] == scorer].sort_values("mean")
    with mpl.rc_context(_STYLE):
        fig, ax = _figure(6.4, 0.45 * len(rows) + 1.0)
        y = np.arange(len(rows))
        ax.errorbar(
            rows["mean"],
            y,
            xerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]],
            fmt="o",
            color=_ACCENT,
            ecolor=_ACCENT,
            capsize=4,
        )
        ax.set_yticks(y, rows["system"])
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(f"mean {scorer} (95% CI)")
        ax.grid(axis="x", alpha=0.3)
        return _svg(fig, f"scores-{scorer}")


def cost_quality(models: pd.DataFrame, scorer: str) -> str:
    """Cost per 1,000 cases against quality, the Pareto frontier drawn through its points."""
    rows = models[models["scorer"] == scorer]
    with mpl.rc_context(_STYLE):
        fig, ax = _figure(6.4, 4.0)
        on = rows[rows["on_frontier"]].sort_values("cost_per_1k_cases")
        ax.errorbar(
            rows["cost_per_1k_cases"],
            rows["mean"],
            yerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]],
            fmt="o",
            color=_MUTED,
            ecolor=_MUTED,
            capsize=3,
        )
        ax.plot(on["cost_per_1k_cases"], on["mean"], "-o", color=_ACCENT, label="Pareto frontier")
        for _, row in rows.iterrows():
            ax.annotate(
                row["system"],
                (row["cost_per_1k_cases"], row["mean"]),
                textcoords="offset points",
                xytext=(6, 4),
            )
        costs = rows["cost_per_1k_cases"].dropna()
        if len(costs) and costs.min() > 0 and costs.max() / costs.min() > 20:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel("cost per 1,000 cases (USD)")
        ax.set_ylabel(f"mean {scorer}")
        ax.legend(loc="lower right", frameon=False)
        ax.grid(alpha=0.3)
        return _svg(fig, "cost-quality")


def latency_distributions(rows: pd.DataFrame, systems: list[str]) -> str:
    """Each system's latency per call as a box plot (whiskers at the 5th and 95th centiles)."""
    data = [rows.loc[rows["system"] == s, "latency_ms"].dropna().to_numpy() for s in systems]
    with mpl.rc_context(_STYLE):
        fig, ax = _figure(6.4, 0.45 * len(systems) + 1.0)
        ax.boxplot(
            data,
            orientation="horizontal",
            whis=(5, 95),
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "#dbeafe", "edgecolor": _ACCENT},
            medianprops={"color": _ACCENT},
        )
        ax.set_yticks(np.arange(1, len(systems) + 1), systems)
        ax.set_xlabel("latency per call (ms)")
        ax.grid(axis="x", alpha=0.3)
        return _svg(fig, "latency")


def win_rate_matrix(table: pd.DataFrame) -> str:
    """How often the row system beats the column system (ties count half)."""
    values = table.to_numpy(dtype=float)
    with mpl.rc_context(_STYLE):
        size = 0.6 * len(table) + 2.0
        fig, ax = _figure(size + 1.0, size)
        image = ax.imshow(values, cmap="RdBu", vmin=0, vmax=1)
        ax.set_xticks(np.arange(len(table.columns)), table.columns, rotation=30, ha="right")
        ax.set_yticks(np.arange(len(table.index)), table.index)
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xlabel("against")
        fig.colorbar(image, ax=ax, label="win rate of the row")
        return _svg(fig, "win-rate")
