"""Faults: what a client, the usage table and the upstream see when the upstream or the
gateway's own processes fail.

The gateway's OpenAI provider talks to a scripted local OpenAI server (500, 502, 503, 429
with `Retry-After`, malformed JSON, a first byte later than the timeout, a stream cut or
stalled mid-way, a hang); a second OpenAI provider points at a closed port; a sim model is
the fallback. Each case has its own model, so one case's failures never open another's
circuit. Every failure a client gets must be OpenAI's error shape with the right status,
and every call has one usage row saying how it ended.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.store.store import Store
from gateway.usage.records import UsageRecord
from tests.integration.conftest import Deployed
from tests.openapi import validate
from tests.protocol_servers import Failure, OpenAIServer, Reply
from tests.protocol_servers.openai_server import ERRORS

pytestmark = pytest.mark.ray

KEY = "sk-llmgw-faults-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
# Pool replicas inherit the environment the session's Ray started with: set at collection.
os.environ.setdefault("LLMGW_FAULTS_OPENAI_KEY", "sk-faults-openai")

# One model per case (and a `-fb` twin falling back to the sim), so circuits stay apart.
CASES = [
    "s500", "s502", "s503", "s429", "s429-long", "malformed", "refused", "slow", "cut",
    "cut-early", "hang", "stall", "circuit", "load", *(f"leak{i}" for i in range(6)),
]  # fmt: skip
# Generous where time is not what a case tests (the suite shares two busy cores); tight for
# the cases about time: a first byte too late, a stall, a hang.
TIMEOUTS = {"connect_s": 5, "first_token_s": 10, "total_s": 15}
TIGHT = {
    "slow": {"connect_s": 1, "first_token_s": 1, "total_s": 15},
    "stall": {"connect_s": 1, "first_token_s": 2, "total_s": 3},
    "hang": {"connect_s": 1, "first_token_s": 1, "total_s": 1.5},
    **{f"leak{i}": {"connect_s": 1, "first_token_s": 1, "total_s": 3} for i in range(6)},
}


@dataclass
class Stall(Reply):
    """A stream that sends `stall_after` events, then keeps the connection open, silent."""

    stall_after: int = 2


async def _stalled(events: AsyncIterator[bytes], after: int) -> AsyncIterator[bytes]:
    sent = 0
    async for event in events:
        if sent >= after:
            await asyncio.sleep(3600)
        yield event
        sent += 1


class FaultServer(OpenAIServer):
    """OpenAI's protocol, plus a 502 and a stream that stalls (the base server has neither)."""

    errors = {**ERRORS, "bad_gateway": (502, "server_error", None, None)}

    def stream(self, body: dict[str, Any], reply: Reply, text: str, finish: str) -> Any:
        response = super().stream(body, reply, text, finish)
        if isinstance(reply, Stall):
            response.body_iterator = _stalled(response.body_iterator, reply.stall_after)
        return response


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(server: FaultServer, placement: str = "ingress") -> dict[str, Any]:
    key_env = "LLMGW_FAULTS_OPENAI_KEY"
    providers = [
        {"name": "up", "type": "openai", "base_url": f"{server.url}/v1", "api_key_env": key_env},
        {
            "name": "refused",
            "type": "openai",
            "base_url": f"http://127.0.0.1:{closed_port()}/v1",
            "api_key_env": key_env,
        },
        {"name": "sim", "type": "sim", "sim": {"seed": 3, "output_tokens": 6}},
    ]
    models: list[dict[str, Any]] = [{"name": "backup", "provider": "sim"}]
    for case in CASES:
        base = {
            "provider": "refused" if case == "refused" else "up",
            "upstream": "gpt-test",
            # A hang is cut at its own total_s, leaving the request's deadline time to fall back.
            "timeouts": TIGHT.get(case, TIMEOUTS),
        }
        models.append({"name": case, **base})
        models.append({"name": f"{case}-fb", **base, "fallbacks": ["backup"]})
    return {
        "providers": providers,
        "models": models,
        "routing": {
            "placement": placement,
            "request_timeout_s": 30,
            "retries": {
                "max_attempts": 2,
                "base_delay_s": 0.01,
                "max_delay_s": 0.05,
                "max_retry_after_s": 5,
            },
            "circuit": {"failure_threshold": 3, "open_s": 2, "min_requests": 1000},
        },
    }


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(os.environ["LLMGW_FAULTS_OPENAI_KEY"]) as started:
        yield started  # type: ignore[misc]


@pytest.fixture(scope="module")
def gateway(
    serve_gateway: Callable[..., Deployed],
    monkeypatch_module: pytest.MonkeyPatch,
    server: FaultServer,
) -> Deployed:
    monkeypatch_module.setenv("LLMGW_ADMIN_KEY", KEY)
    deployed = serve_gateway(config(server))
    warm = openai.OpenAI(base_url=f"{deployed.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    wait_serving(warm, "load")  # the pool's first upstream client is built here, not in a case
    return deployed


@pytest.fixture(scope="module")
def store(gateway: Deployed) -> Iterator[Store]:
    opened = Store(gateway.store_url)
    yield opened
    opened.close()


@pytest.fixture
def client(gateway: Deployed, server: FaultServer) -> openai.OpenAI:
    server.reset()
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30)


# ------------------------------------------------------------------------------ helpers

_ids = iter(range(1_000_000))


def rid(case: str) -> str:
    return f"faults-{case}-{os.getpid()}-{next(_ids)}"


def record(store: Store, request_id: str, timeout: float = 8.0) -> UsageRecord:
    """The usage row of one call (the writer flushes within a second or two)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in store.list_usage(limit=500):
            if row.request_id == request_id:
                return row
        time.sleep(0.2)
    raise AssertionError(f"no usage record for {request_id}")


def call(client: openai.OpenAI, model: str, request_id: str, **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=HELLO, extra_headers={"x-request-id": request_id}, **kw
    )


def failing(client: openai.OpenAI, model: str, request_id: str, **kw: Any) -> openai.APIStatusError:
    """The error a call ends with, checked to be OpenAI's shape."""
    with pytest.raises(openai.APIStatusError) as info:
        call(client, model, request_id, **kw)
    body = info.value.response.json()
    validate(body, "ErrorResponse")
    assert "Traceback" not in body["error"]["message"]
    return info.value


def chats(server: FaultServer) -> int:
    """Chat calls the upstream received (health probes, GET /v1/models, not counted)."""
    return sum(1 for r in server.received if r.path.endswith("/chat/completions"))


def fail(kind: str, retry_after: float | None = None) -> Reply:
    return Reply(failure=Failure(kind, "scripted upstream failure", retry_after=retry_after))


# ------------------------------------------------------------------------------ upstream statuses


@pytest.mark.parametrize(
    ("kind", "case", "status", "code"),
    [
        ("server", "s500", 502, "upstream_error"),
        ("bad_gateway", "s502", 502, "upstream_error"),
        ("unavailable", "s503", 503, "service_unavailable"),
    ],
)
def test_5xx_is_retried_then_reported_then_falls_back(
    client: openai.OpenAI,
    server: FaultServer,
    store: Store,
    kind: str,
    case: str,
    status: int,
    code: str,
) -> None:
    # One failure, then an answer: the retry serves the client; the row counts two attempts.
    server.script(fail(kind), Reply(text="second try"))
    raw = call(client, case, rid_ok := rid(case))
    assert raw.parse().choices[0].message.content == "second try"
    ok = record(store, rid_ok)
    assert (ok.status, ok.attempts, ok.fallbacks) == (200, 2, 0)

    # Failing every time, no fallback: a clean error with the status, billed as failed.
    server.script(fail(kind), fail(kind))
    error = failing(client, case, rid_bad := rid(case))
    assert error.status_code == status
    assert error.response.json()["error"]["code"] == code
    assert "scripted upstream failure" not in error.response.text  # upstream text kept out
    bad = record(store, rid_bad)
    assert (bad.status, bad.error_code, bad.attempts) == (status, code, 2)
    assert (bad.completion_tokens, bad.cost_usd) == (0, 0.0)

    # With a fallback: the sim answers, and the row says which model served and how.
    server.script(fail(kind), fail(kind))
    raw = call(client, f"{case}-fb", rid_fb := rid(case))
    assert raw.headers["x-llmgw-model"] == "backup"
    assert raw.parse().choices[0].message.content
    fb = record(store, rid_fb)
    assert (fb.status, fb.fallbacks, fb.attempts) == (200, 1, 3)
    assert chats(server) == 6


def test_429_retry_after_is_honoured(
    client: openai.OpenAI, server: FaultServer, store: Store
) -> None:
    server.script(fail("rate_limit", retry_after=1), Reply(text="after waiting"))
    start = time.monotonic()
    raw = call(client, "s429", rid_ok := rid("s429"))
    assert raw.parse().choices[0].message.content == "after waiting"
    assert time.monotonic() - start >= 0.95  # waited the upstream's Retry-After
    assert record(store, rid_ok).attempts == 2

    server.script(fail("rate_limit", retry_after=1), fail("rate_limit", retry_after=1))
    error = failing(client, "s429", rid_bad := rid("s429"))
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.response.json()["error"]["code"] == "rate_limit_exceeded"
    bad = record(store, rid_bad)
    assert (bad.status, bad.attempts) == (429, 2)


def test_429_beyond_the_retry_cap_is_not_waited_for(
    client: openai.OpenAI, server: FaultServer
) -> None:
    server.script(fail("rate_limit", retry_after=30))
    start = time.monotonic()
    error = failing(client, "s429-long", rid("s429-long"))
    assert time.monotonic() - start < 3
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "30"
    assert chats(server) == 1


def test_connection_refused(client: openai.OpenAI, store: Store) -> None:
    error = failing(client, "refused", rid_bad := rid("refused"))
    assert error.status_code == 503
    assert error.response.json()["error"]["code"] == "service_unavailable"
    # Two attempts, or none once a failed health probe holds the provider's circuits open.
    assert record(store, rid_bad).status == 503
    raw = call(client, "refused-fb", rid("refused"))
    assert raw.headers["x-llmgw-model"] == "backup"


def test_malformed_json(client: openai.OpenAI, server: FaultServer, store: Store) -> None:
    server.script(Reply(malformed=True), Reply(text="well formed"))
    assert call(client, "malformed", rid("malformed")).parse().choices[0].message.content == (
        "well formed"
    )
    server.script(Reply(malformed=True), Reply(malformed=True))
    error = failing(client, "malformed", rid_bad := rid("malformed"))
    assert error.status_code == 502
    assert error.response.json()["error"]["code"] == "malformed_upstream_response"
    assert record(store, rid_bad).status == 502
    # In a stream, a malformed event after the head is an error event the SDK raises on.
    server.script(Reply(malformed=True, text="some words here"))
    with pytest.raises(openai.APIError) as info:
        list(client.chat.completions.create(model="malformed", messages=HELLO, stream=True))
    validate({"error": info.value.body}, "ErrorResponse")


def test_first_byte_later_than_the_timeout(
    client: openai.OpenAI, server: FaultServer, store: Store
) -> None:
    server.default_reply = Reply(delay_s=6)
    start = time.monotonic()
    error = failing(client, "slow", rid_bad := rid("slow"), stream=True)
    elapsed = time.monotonic() - start
    assert error.status_code == 504
    assert error.response.json()["error"]["code"] == "upstream_timeout"
    assert elapsed < 5  # two attempts cut at the 1 s first-token budget, not one of 6 s
    assert record(store, rid_bad).status == 504
    start = time.monotonic()
    raw = call(client, "slow-fb", rid("slow"), stream=True)
    assert raw.headers["x-llmgw-model"] == "backup"
    assert list(raw.parse())


def test_stream_cut_before_the_first_token_is_retried(
    client: openai.OpenAI, server: FaultServer, store: Store
) -> None:
    server.script(Reply(cut_after=1), Reply(text="whole answer", chunk_chars=3))
    raw = call(client, "cut-early", rid_ok := rid("cut-early"), stream=True)
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "whole answer"
    )
    assert record(store, rid_ok).attempts == 2


def test_stream_cut_mid_way(client: openai.OpenAI, server: FaultServer, store: Store) -> None:
    server.script(Reply(text="a long answer cut short", chunk_chars=2, cut_after=4))
    raw = call(client, "cut-fb", rid_cut := rid("cut"), stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in raw.parse():
            received += [c.delta.content or "" for c in chunk.choices]
    # Tokens had reached the client: no fallback, an error event in OpenAI's shape.
    assert "".join(received) and raw.headers["x-llmgw-model"] == "cut-fb"
    validate({"error": info.value.body}, "ErrorResponse")
    assert info.value.body["code"] == "upstream_stream_cut"
    row = record(store, rid_cut)
    assert (row.status, row.stream) == (502, True)
    assert row.completion_tokens > 0  # what was sent is billed


def test_stream_stalled_mid_way_ends_at_the_total_timeout(
    client: openai.OpenAI, server: FaultServer, store: Store
) -> None:
    server.script(Stall(text="tokens then silence", chunk_chars=2, stall_after=3))
    start = time.monotonic()
    raw = call(client, "stall", rid_stall := rid("stall"), stream=True)
    with pytest.raises(openai.APIError) as info:
        list(raw.parse())
    assert 2.5 < time.monotonic() - start < 8  # cut at the model's total_s of 3 s
    assert info.value.body["code"] == "upstream_timeout"
    assert record(store, rid_stall).status == 504


def test_upstream_that_hangs(client: openai.OpenAI, server: FaultServer, store: Store) -> None:
    server.default_reply = Reply(delay_s=60)
    start = time.monotonic()
    error = failing(client, "hang", rid_bad := rid("hang"))
    assert error.status_code == 504
    # Cut at the model's own total_s (1.5 s), which its retries share: a model that hangs is
    # not waited on twice, and a fallback would get the rest of the request's time.
    assert 1.4 < time.monotonic() - start < 4
    bad = record(store, rid_bad)
    assert (bad.status, bad.attempts, bad.error_code) == (504, 1, "upstream_timeout")
    raw = call(client, "hang-fb", rid_fb := rid("hang"))
    assert raw.headers["x-llmgw-model"] == "backup"
    assert record(store, rid_fb).fallbacks == 1


# ------------------------------------------------------------------------------ circuits


def test_circuit_opens_and_closes_again(client: openai.OpenAI, server: FaultServer) -> None:
    server.default_reply = fail("unavailable")
    for _ in range(2):  # 2 calls x 2 attempts: past the threshold of 3 consecutive failures
        failing(client, "circuit", rid("circuit"))
    sent = chats(server)
    error = failing(client, "circuit", rid("circuit"))
    assert error.status_code == 503 and "circuit open" in error.message
    assert "retry-after" in error.response.headers
    assert chats(server) == sent  # the open circuit spared the upstream
    # Open, the fallback twin still serves (its own circuit is closed; the sim answers).
    server.default_reply = Reply(text="healthy again")
    time.sleep(2.2)  # open_s: half-open, one probe goes through and closes it
    assert call(client, "circuit", rid("circuit")).parse().choices[0].message.content == (
        "healthy again"
    )
    for _ in range(3):
        call(client, "circuit", rid("circuit"))
    assert chats(server) == sent + 4


# ------------------------------------------------------------------------------ leaks


def upstream_connections(port: int) -> dict[str, int]:
    """TCP sockets on loopback to the upstream's port, by state, from both ends."""
    states = {"01": "established", "08": "close_wait", "06": "time_wait"}
    counts = {"server_established": 0, "client_established": 0, "client_close_wait": 0}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], states.get(fields[3])
            if int(local.rsplit(":", 1)[1], 16) == port and state == "established":
                counts["server_established"] += 1
            if int(remote.rsplit(":", 1)[1], 16) == port and state in ("established", "close_wait"):
                counts[f"client_{state}"] += 1
    return counts


def replica_pids(deployment: str) -> list[int]:
    """Pids of a deployment's live replica processes in this session's Ray (Ray titles them
    ServeReplica:app:name; the session's LLMGW_HOME tells them from another cluster's)."""
    needle = f"ServeReplica:llmgw:{deployment}".encode()
    home = f"LLMGW_HOME={os.environ['LLMGW_HOME']}\0".encode()
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                proc = Path("/proc") / name
                if (
                    needle in (proc / "cmdline").read_bytes()
                    and home in (proc / "environ").read_bytes()
                ):
                    pids.append(int(name))
            except OSError:
                continue
    return pids


def fds_and_threads(pids: list[int]) -> tuple[int, int]:
    fds = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)
    threads = sum(len(os.listdir(f"/proc/{pid}/task")) for pid in pids)
    return fds, threads


def test_faults_leak_no_connections_fds_or_threads(
    client: openai.OpenAI, server: FaultServer
) -> None:
    pool = replica_pids("OpenAIPool")
    ingress = replica_pids("Ingress")
    assert len(pool) == 1 and len(ingress) == 1
    call(client, "leak0", rid("leak"))  # warm: a keep-alive connection exists
    time.sleep(1)
    before = upstream_connections(server.port), fds_and_threads(pool + ingress)

    # Streams that each leave their connection mid-response: a hang before the headers, a
    # stall after a few events, a cut. Six callers, each on its own model, until its circuit
    # opens (3 failures): about 18 abandoned upstream connections.
    for _ in range(6):
        server.script(
            Reply(delay_s=60),
            Stall(text="x" * 40, stall_after=2),
            Reply(text="y" * 40, chunk_chars=2, cut_after=3),
        )
    server.default_reply = Reply(text="z" * 40, chunk_chars=2, cut_after=3)

    def one(i: int) -> None:
        for _ in range(3):
            with pytest.raises(openai.APIError):
                list(call(client, f"leak{i}", rid("leak"), stream=True).parse())

    with ThreadPoolExecutor(6) as executor:
        list(executor.map(one, range(6)))
    abandoned = chats(server) - 1
    time.sleep(3)  # closes settle; the circuit (3 failures) stops further upstream calls
    server.reset()
    after = upstream_connections(server.port), fds_and_threads(pool + ingress)

    # At most the keep-alive connections the pool keeps (6 callers at once; an idle one the
    # server closed waits in CLOSE_WAIT for its next use), never one per abandoned call.
    def client(counts: dict[str, int]) -> int:
        return counts["client_established"] + counts["client_close_wait"]

    assert client(after[0]) <= client(before[0]) + 6, (before, after)
    assert after[0]["server_established"] <= client(after[0]), (before, after)
    assert after[1][0] <= before[1][0] + 8, (before, after)  # fds
    assert after[1][1] <= before[1][1] + 2, (before, after)  # threads
    assert abandoned >= 12


# ------------------------------------------------------------------------------ kills under load


@dataclass
class Outcome:
    status: int
    model: str | None
    body: dict[str, Any] | None
    request_id: str


def load(url: str, model: str, seconds: float, workers: int = 4) -> list[Outcome]:
    """Calls from `workers` threads for `seconds`, each outcome recorded; never raises."""
    outcomes: list[Outcome] = []
    stop = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop:
                request_id = rid(model)
                try:
                    response = http.post(
                        f"{url}/v1/chat/completions",
                        json={"model": model, "messages": HELLO},
                        headers={"authorization": f"Bearer {KEY}", "x-request-id": request_id},
                    )
                except httpx.HTTPError as exc:
                    outcomes.append(Outcome(0, None, {"transport": repr(exc)}, request_id))
                    continue
                body = response.json() if response.content else None
                model_served = response.headers.get("x-llmgw-model")
                outcomes.append(Outcome(response.status_code, model_served, body, request_id))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return outcomes


def check_outcomes(outcomes: list[Outcome], store: Store, allowed: set[int]) -> None:
    assert outcomes
    for outcome in outcomes:
        assert outcome.status in {200} | allowed, outcome
        if outcome.status != 200:
            validate(outcome.body, "ErrorResponse")
    # Every call, served or not, is billed once with the status its client got.
    rows = {row.request_id: row for row in store.list_usage(limit=5000)}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not all(o.request_id in rows for o in outcomes):
        time.sleep(0.3)
        rows = {row.request_id: row for row in store.list_usage(limit=5000)}
    for outcome in outcomes:
        assert rows[outcome.request_id].status == outcome.status, outcome


def named_actors(prefix: str) -> list[tuple[str, str]]:
    import ray

    return [
        (a["namespace"], a["name"])
        for a in ray.util.list_named_actors(all_namespaces=True)
        if prefix in a["name"]
    ]


def kill_during(load_call: Callable[[], list[Outcome]], kill: Callable[[], None]) -> list[Outcome]:
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(load_call)
        time.sleep(1.5)
        kill()
        return future.result()


def wait_serving(client: openai.OpenAI, model: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            call(client, model, rid(model))
            return
        except openai.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_pool_replica_killed_under_load(
    client: openai.OpenAI, gateway: Deployed, store: Store
) -> None:
    import ray

    (replica,) = named_actors("OpenAIPool")

    def kill() -> None:
        ray.kill(ray.get_actor(replica[1], namespace=replica[0]), no_restart=True)

    outcomes = kill_during(lambda: load(gateway.url, "load-fb", 6), kill)
    # The fallback (the sim, on its own pool) serves whatever the dead pool cannot.
    # Calls in flight on the dead replica fall back; later ones wait for the new replica.
    check_outcomes(outcomes, store, allowed=set())
    # Serve replaces the replica, and the model is served by it again.
    wait_serving(client, "load")
    assert named_actors("OpenAIPool") != [replica]


def test_registry_actor_killed_under_load(
    client: openai.OpenAI, gateway: Deployed, store: Store
) -> None:
    import ray

    from deployments.registry_actor import NAMESPACE, REGISTRY_NAME

    def kill() -> None:
        ray.kill(ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE), no_restart=False)

    # Replicas serve from their snapshot: calls never need the registry.
    outcomes = kill_during(lambda: load(gateway.url, "load", 5), kill)
    check_outcomes(outcomes, store, allowed=set())
    # It restarts, restores from the store, and takes changes that reach the replicas again.
    admin = {"authorization": f"Bearer {KEY}"}
    # The admin call waits for the restarted actor (seconds on two busy cores).
    response = httpx.patch(
        f"{gateway.url}/admin/models/load", json={"quality": 0.77}, headers=admin, timeout=90
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        model = httpx.get(f"{gateway.url}/admin/models/load", headers=admin, timeout=10).json()
        if model.get("quality") == 0.77:
            break
        time.sleep(0.5)
    assert model.get("quality") == 0.77, model


def test_router_replica_killed_under_load(
    gateway: Deployed,
    serve_gateway: Callable[..., Deployed],
    server: FaultServer,
    store: Store,
) -> None:
    """Fallback chains in a Router deployment: its replica killed, calls meet a clean 503
    (the chain ran in the dead process) or are served; the Router comes back."""
    import ray

    from deployments.app import teardown

    teardown()
    routed = serve_gateway(config(server, placement="router"))
    routed_store = Store(routed.store_url)
    client = openai.OpenAI(base_url=f"{routed.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    wait_serving(client, "load-fb")
    (replica,) = named_actors("#Router#")

    def kill() -> None:
        ray.kill(ray.get_actor(replica[1], namespace=replica[0]), no_restart=True)

    try:
        outcomes = kill_during(lambda: load(routed.url, "load-fb", 6), kill)
        check_outcomes(outcomes, routed_store, allowed={503})
        wait_serving(client, "load-fb")
        assert named_actors("#Router#") != [replica]
    finally:
        routed_store.close()
