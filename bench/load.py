"""Load tools: wrk (with a Lua script for the POST body and percentiles) for non-streaming,
and an asyncio/aiohttp client for streams that records TTFT and inter-token gaps.

Every loop here is bounded in time and count, and only ever sends to the target URL the
harness built (always 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

try:
    import orjson

    loads = orjson.loads
except ImportError:  # pragma: no cover
    loads = json.loads

from peers import Target

PROMPT = [{"role": "user", "content": "Say something short about benchmarks."}]
WRK_INSTALL_HINT = "apt-get install -y wrk"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 3)


def check_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing to load a non-loopback address: {url}")


def wrk_path() -> str | None:
    return shutil.which("wrk")


def body_for(target: Target, tokens: int, stream: bool = False) -> dict:
    b = {"model": target.model, "messages": PROMPT, "max_tokens": tokens}
    if stream:
        b["stream"] = True
    return b


# ---------------------------------------------------------------- non-streaming: wrk

LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"mean_us":%%.1f,' ..
    '"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


def _lua(target: Target, tokens: int) -> str:
    headers = {"Content-Type": "application/json", **target.headers}
    hl = "\n".join(f"wrk.headers[ [==[{k}]==] ] = [==[{v}]==]" for k, v in headers.items())
    return LUA % {"body": json.dumps(body_for(target, tokens)), "headers": hl}


def wrk_run(target: Target, conns: int, duration: float, tokens: int = 16) -> dict:
    """One wrk run (-t1); returns req/s, latency percentiles (ms) and error counts."""
    check_local(target.url)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_lua(target, tokens))
        script = f.name
    cmd = [wrk_path() or "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s"]
    cmd += ["--timeout", "10s", "-s", script, target.url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    finally:
        Path(script).unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        return {"tool": "wrk", "error": (out.stdout + out.stderr)[-500:], "ok": 0}
    r = json.loads(line[len("BENCHJSON ") :])
    secs = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    ok = r["requests"] - r["status"]
    return {
        "tool": "wrk",
        "conns": conns,
        "duration_s": round(secs, 2),
        "requests": r["requests"],
        "ok": ok,
        "errors": errors,
        "error_detail": {k: r[k] for k in ("connect", "read", "write", "status", "timeout")},
        "rps": round(ok / secs, 1) if secs else 0.0,
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "mean_ms": round(r["mean_us"] / 1000, 3),
        "max_ms": r["max_us"] / 1000,
    }


# ------------------------------------------------- non-streaming: asyncio fallback


async def async_run(
    target: Target, conns: int, duration: float, tokens: int = 16, max_requests: int = 2_000_000
) -> dict:
    """The fallback when wrk is missing: ``conns`` workers in a closed loop, bounded in time
    and count. Slower than wrk (the client itself costs CPU); said so in the results."""
    check_local(target.url)
    payload = json.dumps(body_for(target, tokens)).encode()
    headers = {"content-type": "application/json", **target.headers}
    lat: list[float] = []
    errors = 0
    sent = 0
    t_end = time.monotonic() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, sent
        while time.monotonic() < t_end and sent < max_requests:
            sent += 1
            t0 = time.monotonic()
            try:
                async with session.post(target.url, data=payload, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        lat.append(time.monotonic() - t0)
                    else:
                        errors += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1

    t0 = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=10)
    conn = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        await asyncio.gather(*(worker(s) for _ in range(conns)))
    secs = time.monotonic() - t0
    return {
        "tool": "asyncio",
        "conns": conns,
        "duration_s": round(secs, 2),
        "requests": len(lat) + errors,
        "ok": len(lat),
        "errors": errors,
        "rps": round(len(lat) / secs, 1) if secs else 0.0,
        "p50_ms": _ms(pct(lat, 50)),
        "p90_ms": _ms(pct(lat, 90)),
        "p99_ms": _ms(pct(lat, 99)),
        "mean_ms": _ms(sum(lat) / len(lat)) if lat else None,
        "max_ms": _ms(max(lat)) if lat else None,
    }


def nonstream(target: Target, conns: int, duration: float, tokens: int = 16) -> dict:
    if wrk_path():
        return wrk_run(target, conns, duration, tokens)
    return run_async(async_run(target, conns, duration, tokens))


async def header_sample(
    target: Target, header: str | None, n: int = 200, max_s: float = 60.0, tokens: int = 16
) -> dict:
    """``n`` requests one after another on one keep-alive connection (bounded by ``max_s``):
    the client-side latency p50/p99 and, when the gateway returns ``header`` (llmgw's
    ``x-llmgw-overhead-ms``), that header's p50/p99: what the gateway says it spent itself."""
    check_local(target.url)
    payload = json.dumps(body_for(target, tokens)).encode()
    headers = {"content-type": "application/json", **target.headers}
    lat: list[float] = []
    said: list[float] = []
    errors = 0
    t_end = time.monotonic() + max_s
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(10)) as s:
        for _ in range(n):
            if time.monotonic() > t_end:
                break
            t0 = time.monotonic()
            try:
                async with s.post(target.url, data=payload, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        continue
                    lat.append(time.monotonic() - t0)
                    value = r.headers.get(header) if header else None
                    if value is not None:
                        with contextlib.suppress(ValueError):
                            said.append(float(value) / 1000)
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1
    return {
        "requests": len(lat) + errors,
        "errors": errors,
        "p50_ms": _ms(pct(lat, 50)),
        "p99_ms": _ms(pct(lat, 99)),
        "header": header,
        "header_count": len(said),
        "header_p50_ms": _ms(pct(said, 50)),
        "header_p99_ms": _ms(pct(said, 99)),
    }


# ---------------------------------------------------------------- streaming


async def _one_stream(session, target: Target, payload: bytes, headers, deadline: float) -> dict:
    t0 = time.monotonic()
    rec = {"status": None, "ttft": None, "gaps": [], "events": 0, "done": False, "error": None}
    last = None
    try:
        async with asyncio.timeout(deadline):
            async with session.post(target.url, data=payload, headers=headers) as r:
                rec["status"] = r.status
                if r.status != 200:
                    rec["error"] = f"HTTP {r.status}: {(await r.text())[:200]}"
                    return rec
                async for line in r.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        rec["done"] = True
                        break
                    try:
                        ev = loads(data)
                    except ValueError:
                        continue
                    choices = ev.get("choices") or [{}]
                    if not (choices[0].get("delta") or {}).get("content"):
                        continue
                    now = time.monotonic()
                    if last is None:
                        rec["ttft"] = now - t0
                    else:
                        rec["gaps"].append(now - last)
                    last = now
                    rec["events"] += 1
    except TimeoutError:
        rec["error"] = "timeout"
    except (aiohttp.ClientError, OSError) as e:
        rec["error"] = f"{type(e).__name__}: {e}"[:200]
    rec["total"] = time.monotonic() - t0
    return rec


async def stream_run(
    target: Target, streams: int, tokens: int, deadline: float, arrival: float = 0.0
) -> dict:
    """Open ``streams`` SSE streams, all at once, or ``arrival`` a second (evenly spaced);
    each is cut off after ``deadline`` seconds, and its time to first token counts from its
    own opening."""
    check_local(target.url)
    payload = json.dumps(body_for(target, tokens, stream=True)).encode()
    headers = {"content-type": "application/json", "accept": "text/event-stream"}
    headers.update(target.headers)
    conn = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:

        async def opened(i: int) -> dict:
            if arrival > 0:
                await asyncio.sleep(i / arrival)
            return await _one_stream(s, target, payload, headers, deadline)

        recs = await asyncio.gather(*(opened(i) for i in range(streams)))
    wall = time.monotonic() - t0
    ok = [r for r in recs if r["error"] is None and r["done"] and r["events"] >= tokens]
    errs: dict[str, int] = {}
    for r in recs:
        if r not in ok:
            why = r["error"] or ("incomplete" if not r["done"] else f"{r['events']} tokens")
            key = why.split(":")[0]
            errs[key] = errs.get(key, 0) + 1
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    gaps = [g for r in ok for g in r["gaps"]]
    totals = [r["total"] for r in ok]
    first_err = next((r["error"] for r in recs if r["error"]), None)
    return {
        "streams": streams,
        "tokens": tokens,
        "ok": len(ok),
        "errors": streams - len(ok),
        "error_kinds": errs,
        "first_error": first_err,
        "wall_s": round(wall, 2),
        "ttft_p50_ms": _ms(pct(ttft, 50)),
        "ttft_p99_ms": _ms(pct(ttft, 99)),
        "gap_p50_ms": _ms(pct(gaps, 50)),
        "gap_p99_ms": _ms(pct(gaps, 99)),
        "gap_mean_ms": _ms(sum(gaps) / len(gaps)) if gaps else None,
        "total_p50_s": round(pct(totals, 50), 3) if totals else None,
        "total_p99_s": round(pct(totals, 99), 3) if totals else None,
    }


def run_async(coro):
    """Run a coroutine on uvloop when it is installed (the client then costs less CPU)."""
    try:
        import uvloop  # type: ignore[import-not-found]

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
            return r.run(coro)
    except ImportError:
        return asyncio.run(coro)
