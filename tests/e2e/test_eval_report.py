"""`llmgw eval report` as a user runs it, the page opened in headless Chromium (Debian's
`chromium` package): it renders, its plots are there, its script runs without a console error,
a hostile model output stays text, and the filter works. The screenshot is kept under the
test's tmp path and copied to tests/artifacts/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import llmgw
from tests.unit.evals.compare_fixtures import write_run

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = (
    '<script>document.title="PWNED"</script><img src=x onerror="document.body.dataset.pwned=1">'
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="SKIPPED LOUDLY: /usr/bin/chromium is absent, so the HTML report was NOT checked in "
    "a browser (apt-get install chromium, as .ci/run does)",
)


def _chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console(stderr: str) -> list[str]:
    return re.findall(r":CONSOLE[^\]]*\] (.*)", stderr)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(
        root,
        "base",
        {"small": 0.45, "big": 0.75, "mid": 0.6},
        cases=40,
        cost={"big": 0.01, "mid": 0.002, "small": 0.0005},
        outputs={"mid": HOSTILE},
        errors={"small": 2},
    )
    write_run(root, "next", {"big": 0.6, "tiny": 0.3}, cases=40, seed=4)
    html = root / "report.html"
    result = llmgw(
        "eval", "report", "next", "--baseline", "base", "--runs-dir", str(root), "--html", str(html)
    )
    assert "report:" in result.stdout
    return html


def test_the_report_renders_with_its_plots_and_no_console_error(
    report: Path, tmp_path: Path
) -> None:
    screenshot = tmp_path / "report.png"
    shot = _chromium(tmp_path, report.as_uri(), f"--screenshot={screenshot}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.exists() and screenshot.stat().st_size > 50_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "eval-report.png")

    dump = _chromium(tmp_path, report.as_uri(), "--dump-dom")
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom, console = dump.stdout, _console(dump.stderr)
    # The page's script ran (and logged only its own line): no error, no CSP refusal.
    assert console and all('"llmgw-report-ready"' in line for line in console), console
    assert 'data-ready="1"' in dom
    assert dom.count('class="plot"') == 5
    for plot in ("scores-exact", "scores-judge", "cost-quality", "latency", "win-rate"):
        assert f'data-plot="{plot}"' in dom
    # The hostile output is text on the page, not markup that ran.
    assert "PWNED" not in re.search(r"<title>(.*?)</title>", dom, flags=re.S).group(1)
    assert "data-pwned" not in dom
    assert "&lt;script&gt;" in dom


def test_the_filter_hides_rows(report: Path, tmp_path: Path) -> None:
    every = _chromium(tmp_path, report.as_uri(), "--dump-dom").stdout
    total = int(re.search(r'data-shown="(\d+)"', every).group(1))
    assert total == 40 * 2  # cases x repeats
    one = _chromium(tmp_path, report.as_uri() + "#q=case-007", "--dump-dom").stdout
    assert re.search(r'data-shown="(\d+)"', one).group(1) == "2"
    errors = _chromium(tmp_path, report.as_uri() + "#errors=1", "--dump-dom").stdout
    assert re.search(r'data-shown="(\d+)"', errors).group(1) == "2"
