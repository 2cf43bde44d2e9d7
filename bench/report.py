"""Turns one run's raw figures into a markdown section of bench/RESULTS.md and a JSON file
in bench/results/. Tables: one per scenario, a column per gateway (direct is the floor, then
llmgw and its variants, then the peers, then the Python floors), then the ratios llmgw/LiteLLM,
llmgw/Portkey, llmgw/direct and llmgw/Python floor (always of the headline ``llmgw`` column)."""

from __future__ import annotations

import json
from pathlib import Path

from peers import FLOORS, LLMGW_VARIANTS, NOSDK

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_DIR = HERE / "results"
VARIANTS = (*LLMGW_VARIANTS, *NOSDK)
ORDER = ("direct", "llmgw", *VARIANTS, "litellm", "portkey", *FLOORS)
NAMES = {"direct": "direct", "llmgw": "llmgw", "litellm": "LiteLLM", "portkey": "Portkey"}
NAMES.update({v: v for v in (*VARIANTS, *FLOORS)})
RATIOS = (
    ("litellm", "llmgw/LiteLLM"),
    ("portkey", "llmgw/Portkey"),
    ("direct", "llmgw/direct"),
    ("python-floor", "llmgw/Python floor"),
)
HEADER = """# Benchmark results

Each section below is one run of `bench/run.py` (see bench/README.md), appended in order.
Absolute figures vary between runs and machines; compare ratios within one section. A
section marked *quick* is a smoke test with tiny counts, not a measurement.
"""


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, int):
        return f"{x:,}"
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def ratio(a, b) -> str:
    """a/b, for positive figures only (a ratio of a negative 'added' delay means nothing)."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or a <= 0 or b <= 0:
        return "-"
    return f"{a / b:.3g}x"


def get(res: dict, gw: str, key: str, field: str):
    g = res["gateways"].get(gw)
    if not g:
        return None
    if g.get("status") != "ok":
        return g.get("status")
    r = g.get("scenarios", {}).get(key) or {}
    if "skipped" in r:
        return "n/a"
    if "failed" in r:
        return "failed"
    if "." in field:  # memory.peak_mb, sampled.header_p50_ms
        part, field = field.split(".", 1)
        return (r.get(part) or {}).get(field)
    return r.get(field)


def minus(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return round(a - b, 3)
    return None


class Table:
    def __init__(self, res: dict) -> None:
        self.res = res
        self.cols = [g for g in ORDER if g in res["gateways"]]
        # ratios of the headline llmgw column, to the gateways this run has
        self.ratios = [(o, n) for o, n in RATIOS if "llmgw" in self.cols and o in self.cols]
        head = ["", *(NAMES[g] for g in self.cols), *(name for _, name in self.ratios)]
        self.lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(self, label: str, values: dict, ratios: bool = True) -> None:
        cells = [label, *(fmt(values.get(g)) for g in self.cols)]
        for other, _ in self.ratios:
            cells.append(ratio(values.get("llmgw"), values.get(other)) if ratios else "-")
        self.lines.append("| " + " | ".join(cells) + " |")

    def metric(self, label: str, key: str, field: str, ratios: bool = True) -> dict:
        vals = {g: get(self.res, g, key, field) for g in self.cols}
        self.row(label, vals, ratios)
        return vals

    def added(self, label: str, vals: dict) -> None:
        """The same metric minus the floor (direct's figure)."""
        floor = vals.get("direct")
        added = {g: minus(v, floor) for g, v in vals.items() if g != "direct"}
        added["direct"] = 0.0 if isinstance(floor, (int, float)) else None
        cells = {**added}
        self.lines.append(
            "| "
            + " | ".join(
                [label, *(fmt(cells.get(g)) for g in self.cols)]
                + [
                    ratio(cells.get("llmgw"), cells.get(o)) if o != "direct" else "-"
                    for o, _ in self.ratios
                ]
            )
            + " |"
        )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def section(res: dict) -> str:
    m = res["machine"]
    kind = "quick smoke test" if m["quick"] else "full run"
    out = [f"## {res['stamp']} ({kind})", ""]
    out.append(
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}; Python {m['python']}; "
        f"load average at start {m['load_avg']}; load tool: {m['load_tool']}."
    )
    out += ["", f"Command: `.venv/bin/python {m['command']}`", ""]
    out += [
        "| gateway | version | status | install s | ready s | HTTP mode | hot path | handle hops |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for g in ORDER:
        e = res["gateways"].get(g)
        if not e:
            continue
        out.append(
            f"| {NAMES[g]} | {e.get('version') or '-'} | {e['status']} | "
            f"{fmt(e.get('install_s')) if e.get('install_s') else 'cached'} | "
            f"{fmt(e.get('ready_s'))} | {e.get('http_mode') or '-'} | "
            f"{e.get('hot_path') or '-'} | {fmt(e.get('hops'))} |"
        )
        if e.get("reason"):
            notes.append(f"- {NAMES[g]} {e['status']}: " + e["reason"].splitlines()[0][:300])
        if e.get("config_extra"):
            notes.append(f"- {NAMES[g]}: gateway config adds `{e['config_extra']}`")
    out += ["", *notes, ""] if notes else [""]

    sc = {k for e in res["gateways"].values() for k in e.get("scenarios", {})}
    if "s1_c1" in sc:
        t = Table(res)
        p50 = t.metric("p50 ms", "s1_c1", "p50_ms")
        p99 = t.metric("p99 ms", "s1_c1", "p99_ms")
        t.added("overhead p50 ms (minus direct)", p50)
        t.added("overhead p99 ms (minus direct)", p99)
        t.metric("req/s", "s1_c1", "rps")
        t.metric("errors", "s1_c1", "errors", ratios=False)
        hops = {g: e.get("hops") for g, e in res["gateways"].items()}
        if any(v is not None for v in hops.values()):
            t.row("handle hops on the hot path", hops, ratios=False)
        said = {}
        if any(get(res, g, "s1_c1", "sampled.p50_ms") for g in t.cols):
            said = t.metric("x-llmgw-overhead-ms p50 (header)", "s1_c1", "sampled.header_p50_ms")
            t.metric("x-llmgw-overhead-ms p99 (header)", "s1_c1", "sampled.header_p99_ms")
            t.row("header p50 / overhead p50", header_share(said, p50), ratios=False)
            sp50 = t.metric("sampled p50 ms (200 requests)", "s1_c1", "sampled.p50_ms")
            t.added("sampled overhead p50 ms (minus direct)", sp50)
        out += ["### 1. Non-streaming, 1 connection, zero-latency upstream", "", t.text()]
        if said:
            out += [
                "The header rows: `x-llmgw-overhead-ms`, what llmgw says it spent itself, read "
                "from 200 requests sent one at a time after the wrk run (aiohttp, one keep-alive "
                "connection; the sampled rows are that loop's own latency). The header is the "
                "ingress's clock (from building the request context to writing the headers) "
                "minus the provider's time: on the wire for the httpx2-based SDKs (openai, "
                "azure, anthropic: the SDK's own CPU counts as the gateway's), the whole adapter "
                "call for the others (sim, boto3, ollama). Handle hops count in it; the HTTP "
                "front (HAProxy or Serve's proxy) and Serve's handling before the ingress's "
                "handler do not. Its share of the measured overhead (gateway minus direct, wrk) "
                "says how much of the real cost it sees.",
                "",
            ]

    conc = [
        k
        for k in sorted(sc, key=lambda k: int(k[4:]) if k[4:].isdigit() else 0)
        if k.startswith("s2_c")
    ]
    if conc:
        t = Table(res)
        for k in conc:
            c = k[4:]
            t.metric(f"c={c} req/s", k, "rps")
            t.metric(f"c={c} p50 ms", k, "p50_ms")
            t.metric(f"c={c} p99 ms", k, "p99_ms")
            t.metric(f"c={c} errors", k, "errors", ratios=False)
        out += ["### 2. Non-streaming throughput, zero-latency upstream", "", t.text()]

    streams = stream_keys(sc, "s3")
    for prefix in ("s3", "s3a"):
        if stream_keys(sc, prefix):
            out += stream_section(res, stream_keys(sc, prefix), prefix)

    if "routing" in res:
        r = res["routing"]
        out += ["### 4. Routing decision with 1,000 registered models", ""]
        if "skipped" in r:
            out += [f"Not run: {r['skipped'].splitlines()[0]}", ""]
        elif isinstance(r["raw"].get("summary"), dict):
            raw = r["raw"]
            builds = raw.get("table_build_ms") or []
            out += [
                f"`{r.get('command', 'bench/bench_routing.py')}`: {raw.get('models')} models, "
                f"{raw.get('calls')} decisions a scenario"
                + (
                    f"; routing table build {fmt(sorted(builds)[len(builds) // 2])} ms (median)"
                    if builds
                    else ""
                )
                + ".",
                "",
                "| scenario | p50 µs | p99 µs | max µs | CPU p50 µs | CPU p99 µs |",
                "|---|---|---|---|---|---|",
            ]
            for name, v in raw["summary"].items():
                # bench_routing reports wall-clock and CPU time per decision; older files
                # had the wall-clock figures at the top level.
                wall, cpu = v.get("wall", v), v.get("cpu", {})
                out.append(
                    f"| {name} | {fmt(wall.get('p50_us'))} | {fmt(wall.get('p99_us'))} | "
                    f"{fmt(wall.get('max_us'))} | {fmt(cpu.get('p50_us'))} | "
                    f"{fmt(cpu.get('p99_us'))} |"
                )
            out.append("")
        else:
            out += ["| figure | value |", "|---|---|"]
            out += [f"| {k} | {fmt(v)} |" for k, v in percentiles(r["raw"])] + [""]

    if any("idle" in e for e in res["gateways"].values()):
        t = Table(res)

        def idle(field: str) -> dict:
            return {g: (e.get("idle") or {}).get(field) for g, e in res["gateways"].items()}

        t.row("idle RSS MB", idle("rss_mb"))
        t.row("idle PSS MB", idle("pss_mb"))
        t.row("processes", idle("processes"), ratios=False)
        for k in conc + streams:
            label = f"c={k[4:]}" if k.startswith("s2") else f"{k[4:]} streams"
            t.metric(f"peak RSS MB under {label}", k, "memory.peak_mb")
            t.metric(f"peak PSS MB under {label}", k, "memory.peak_pss_mb")
        out += [
            "### 5. Memory: RSS summed over all of a gateway's processes",
            "",
            "direct is the mock upstream. llmgw counts every Ray process (GCS, raylet, "
            "workers, proxies, HAProxy). RSS counts pages shared between processes once per "
            "process; PSS splits them among their sharers, so its sum is the real footprint. "
            "Per-process figures at idle are in the JSON (`idle.rss_mb_by_process`).",
            "",
            t.text(),
        ]
    return "\n".join(out) + "\n"


def stream_keys(sc: set[str], prefix: str) -> list[str]:
    """Scenario 3's keys of one shape (`s3_n100`: opened at once; `s3a_n100`: arriving)."""
    keys = (k for k in sc if k.startswith(prefix + "_n"))
    return sorted(keys, key=lambda k: int(k.split("_n")[1]))


def stream_section(res: dict, streams: list[str], prefix: str) -> list[str]:
    """The table of scenario 3 (every stream opened at once) or 3a (streams arriving)."""
    m = res["machine"]
    t = Table(res)
    for k in streams:
        n = k.split("_n")[1]
        t.metric(f"{n} streams: completed", k, "ok", ratios=False)
        ttft50 = t.metric(f"{n}: TTFT p50 ms", k, "ttft_p50_ms")
        ttft99 = t.metric(f"{n}: TTFT p99 ms", k, "ttft_p99_ms")
        t.added(f"{n}: added TTFT p50 ms", ttft50)
        t.added(f"{n}: added TTFT p99 ms", ttft99)
        gap50 = t.metric(f"{n}: inter-token gap p50 ms", k, "gap_p50_ms")
        gap99 = t.metric(f"{n}: inter-token gap p99 ms", k, "gap_p99_ms")
        t.added(f"{n}: added gap p50 ms", gap50)
        t.added(f"{n}: added gap p99 ms", gap99)
        t.metric(f"{n}: stream total p50 s", k, "total_p50_s")
        t.metric(f"{n}: errors", k, "errors", ratios=False)
        t.metric(f"{n}: RSS peak MB", k, "memory.peak_mb")
    shape = (
        f"the streams opening {fmt(m.get('stream_arrival'))} a second (evenly spaced; TTFT "
        "counts from each stream's own opening)"
        if prefix == "s3a"
        else "all streams opened at once"
    )
    out = [
        f"### 3{'a' if prefix == 's3a' else ''}. Streaming, {m['stream_tokens']} tokens at "
        f"{fmt(m['stream_rate'])} tokens/s a stream, {shape}",
        "",
        "The direct column is the floor: the mock and this client alone. Where the floor "
        "itself is far from the nominal stream time "
        f"({m['stream_tokens'] / m['stream_rate']:.1f} s), the machine is saturated and "
        "the gateway figures measure contention; rerun with a lower `--stream-rate`.",
        "",
        t.text(),
    ]
    errs = []
    for g in ORDER:
        for k in streams:
            r = (res["gateways"].get(g) or {}).get("scenarios", {}).get(k) or {}
            if r.get("errors"):
                errs.append(
                    f"- {NAMES[g]} {k.split('_n')[1]} streams: {r['error_kinds']}; first: "
                    f"{str(r.get('first_error'))[:200]}"
                )
    if errs:
        out += ["Stream errors:", "", *errs, ""]
    skipped = [
        f"- {NAMES[g]}: {note}"
        for g in ORDER
        for note in (res["gateways"].get(g) or {}).get("notes", [])
        if note.startswith("scenario 3")
    ]
    if skipped:
        out += ["Not run (n/a above):", "", *skipped, ""]
    return out


def header_share(said: dict, p50: dict) -> dict:
    """What share of the measured p50 overhead (gateway minus direct) the header reports."""
    floor = p50.get("direct")
    out = {}
    for g, h in said.items():
        over = minus(p50.get(g), floor)
        if isinstance(h, (int, float)) and isinstance(over, (int, float)) and over > 0:
            out[g] = f"{100 * h / over:.0f}%"
    return out


def percentiles(raw, path: str = "") -> list[tuple[str, float]]:
    """Every numeric field whose name mentions p50 or p99, anywhere in bench_routing's JSON."""
    found = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            p = f"{path}.{k}" if path else str(k)
            if isinstance(v, (int, float)) and ("p50" in str(k) or "p99" in str(k)):
                found.append((p, v))
            elif isinstance(v, (dict, list)):
                found += percentiles(v, p)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            found += percentiles(v, f"{path}[{i}]")
    return found


def write(res: dict, write_md: bool = True) -> dict:
    RESULTS_DIR.mkdir(exist_ok=True)
    js = RESULTS_DIR / f"{res['stamp']}.json"
    js.write_text(json.dumps(res, indent=1, default=str) + "\n")
    md = None
    if write_md:
        text = RESULTS_MD.read_text() if RESULTS_MD.exists() else HEADER
        RESULTS_MD.write_text(text.rstrip("\n") + "\n\n" + section(res))
        md = RESULTS_MD
    return {"json": js, "md": md}


if __name__ == "__main__":  # re-render a run's section: python bench/report.py results/X.json
    import sys

    for path in sys.argv[1:]:
        print(section(json.loads(Path(path).read_text())))
