"""`llmgw eval report` as a user runs it, the page opened in headless Chromium (Debian's
`chromium` package): it renders, its plots are there, its script runs without a console error,
a hostile model output stays text, and the filter works. The screenshot is kept under the
test's tmp path and copied to tests/artifacts/.

And the whole loop against a running gateway: a sweep, a compare, a report, a publish, and
routed requests that go where the published figures say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import llmgw
from tests.unit.evals.compare_fixtures import write_run

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = (
    '<script>document.title="PWNED"</script><img src=x onerror="document.body.dataset.pwned=1">'
)

if not CHROMIUM.exists():
    # A skip alone hides in `-q` output; a warning is printed in every run's summary.
    warnings.warn(
        "/usr/bin/chromium is absent: the HTML report's browser tests are SKIPPED", stacklevel=1
    )
needs_chromium = pytest.mark.skipif(
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


@needs_chromium
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


@needs_chromium
def test_the_filter_hides_rows(report: Path, tmp_path: Path) -> None:
    every = _chromium(tmp_path, report.as_uri(), "--dump-dom").stdout
    total = int(re.search(r'data-shown="(\d+)"', every).group(1))
    assert total == 40 * 2  # cases x repeats
    one = _chromium(tmp_path, report.as_uri() + "#q=case-007", "--dump-dom").stdout
    assert re.search(r'data-shown="(\d+)"', one).group(1) == "2"
    errors = _chromium(tmp_path, report.as_uri() + "#errors=1", "--dump-dom").stdout
    assert re.search(r'data-shown="(\d+)"', errors).group(1) == "2"


# ---------------------------------------------------------------- the loop, on a gateway

ADMIN_KEY = "sk-llmgw-e2e-eval-report-admin-0123456789ab"
# Two sim models whose quality on the sweep's scorer differs by construction: an answer
# "contains 't'" for about half of one-word answers and nearly all eight-word ones.
CONFIG = {
    "providers": [{"name": "sim", "type": "sim", "sim": {"seed": 3}}],
    "models": [
        {
            "name": "loop-cheap",
            "provider": "sim",
            "use_cases": ["chat"],
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
            "sim": {"seed": 3, "output_tokens": 1},
        },
        {
            "name": "loop-good",
            "provider": "sim",
            "use_cases": ["chat"],
            "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
            "sim": {"seed": 3, "output_tokens": 8},
        },
    ],
}


@pytest.fixture(scope="module")
def gateway(
    ray_cluster: None,
    serve_port: int,
    monkeypatch_module: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    config = tmp_path_factory.mktemp("gateway") / "gateway.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", ADMIN_KEY)
    llmgw("up", "--port", str(serve_port), "--config", str(config), "--detach")
    yield f"http://127.0.0.1:{serve_port}"
    llmgw("down", "--keep-ray")


@pytest.mark.ray
def test_sweep_compare_report_publish_then_route_by_the_published_figures(
    gateway: str, tmp_path: Path
) -> None:
    llmgw("tenants", "create", "evaluators")
    key = json.loads(llmgw("keys", "create", "--tenant", "evaluators", "--json").stdout)["key"]
    runs = tmp_path / "runs"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "loop",
                "dataset": {"path": "chat", "id": "id", "input": "input", "reference": "reference"},
                "prompts": [{"name": "plain", "template": "{input}"}],
                "models": ["loop-cheap", "loop-good"],
                "params": {"max_tokens": 16},
                "scorers": [{"type": "contains", "name": "has_t", "value": "t"}],
                "output": str(runs),
            }
        )
    )
    ran = llmgw("eval", "run", str(sweep), "--gateway", gateway, "--key", key, "--no-progress")
    run_id = re.search(r"run id: (\S+)", ran.stdout).group(1)

    compared = json.loads(
        llmgw("eval", "compare", run_id, "--runs-dir", str(runs), "--format", "json").stdout
    )
    figures = {m["system"]: m for m in compared["models"]}
    cheap, good = figures["loop-cheap"], figures["loop-good"]
    assert cheap["n"] == good["n"] == 50 and cheap["ci_method"] == "wilson"
    assert good["ci_low"] > cheap["ci_high"]
    assert compared["pairs"][0]["p_value"] < 0.001

    html = tmp_path / "loop.html"
    llmgw("eval", "report", run_id, "--runs-dir", str(runs), "--html", str(html))
    assert "loop-good" in html.read_text()

    published = llmgw("eval", "publish", run_id, "--runs-dir", str(runs)).stdout
    assert "loop-good: chat has_t" in published and "loop-cheap: chat has_t" in published
    shown = yaml.safe_load(llmgw("models", "show", "loop-good").stdout)
    figure = shown["published_quality"]["chat"]
    assert figure["run_id"] == run_id and figure["n"] == 50
    assert figure["ci_low"] == pytest.approx(good["ci_low"])

    between = round((cheap["ci_low"] + good["ci_low"]) / 2, 3)
    explained = json.loads(
        llmgw(
            "route", "explain", "--use-case", "chat", "--strategy", "quality",
            "--min-quality", str(between), "--json",
        ).stdout
    )  # fmt: skip
    first = explained["candidates"][0]
    assert first["model"] == "loop-good" and f"run {run_id}" in first["reason"]

    def routed(min_quality: float) -> str:
        response = httpx.post(
            f"{gateway}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "auto",
                "use_case": "chat",
                "route": {"strategy": "quality", "min_quality": min_quality},
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 8,
            },
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.headers["x-llmgw-model"]

    # The cheaper model while its lower bound clears the threshold; the better one above it.
    assert routed(round(cheap["ci_low"] - 0.001, 3)) == "loop-cheap"
    assert routed(between) == "loop-good"
