"""The HTML report as a file: self-contained, its plots inline, model outputs escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import evals
from evals.report import render_html
from tests.unit.evals.compare_fixtures import write_run

HOSTILE = (
    '</td></tr></table><script>document.title="PWNED"</script>'
    '<img src=x onerror="document.body.dataset.pwned=1"> & "quotes"'
)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("runs")
    write_run(
        root,
        "r1",
        {"small": 0.45, "big": 0.75, "mid": 0.6},
        cases=30,
        cost={"big": 0.01, "small": 0.0005},
        outputs={"mid": HOSTILE},
        errors={"small": 2},
        prompts=("plain", "cot"),
    )
    return render_html(evals.compare([str(root / "r1")], resamples=200))


def test_the_page_needs_no_network(page: str) -> None:
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page, flags=re.I)
    assert not re.search(r"<(link|iframe|object|embed)\b", page)
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r'\b(src|href)="(?!#|data:)', page)  # data: URIs are inline
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing


def test_plots_are_inline_svg(page: str) -> None:
    plots = re.findall(r'<svg role="img" class="plot" data-plot="([^"]+)"', page)
    assert plots == ["scores-exact", "scores-judge", "cost-quality", "latency", "win-rate"]
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "ids repeat across plots"


def test_model_outputs_are_escaped(page: str) -> None:
    assert HOSTILE not in page
    assert "&lt;script&gt;document.title=&quot;PWNED&quot;&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert page.count("<script") == 1  # the page's own filter script, nothing else


def test_every_case_shows_every_model_side_by_side(page: str) -> None:
    body = page[page.index('<table id="cases">') :]
    assert body.count("<tr data-category=") == 30 * 2 * 2  # cases x prompts x repeats
    header = body[: body.index("</thead>")]
    assert [h for h in ("small", "big", "mid") if f"<th>{h}</th>" in header] == [
        "small",
        "big",
        "mid",
    ]
    assert 'data-error="1"' in body and "[error] upstream_error: 502" in body
    for label in ("By prompt", "By category", "Bradley-Terry", "Pairs"):
        assert label in page


def test_write_html_writes_utf8(tmp_path: Path, page: str) -> None:
    from evals.report import write_html

    write_run(tmp_path, "one", {"solo": 0.5}, cases=5, outputs={"solo": "héllo ✓"})
    path = write_html(evals.compare([str(tmp_path / "one")], resamples=50), tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert "héllo ✓" in text and "win-rate" not in text  # one model: no win-rate matrix
