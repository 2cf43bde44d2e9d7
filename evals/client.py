"""The sweep's client of the gateway: chat calls with bounded concurrency, a request rate per
provider, retries on 429 and 5xx that honour `Retry-After`, and the calls scorers make."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


@dataclass
class CallResult:
    """One chat call as the row records it."""

    output: str | None
    served_model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    error: str | None
    attempts: int
    request_id: str


class RateLimiter:
    """At most `rate` starts a second (a token bucket of one second's burst)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        if start > now:
            await asyncio.sleep(start - now)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def model_request(model: str) -> tuple[str, dict[str, str]]:
    """The body's model and extra headers for a sweep's model name: `auto:<use case>` asks the
    gateway to route for that use case."""
    if model.startswith("auto:"):
        return "auto", {"x-llmgw-use-case": model[5:]}
    return model, {}


class GatewayError(RuntimeError):
    """A refused call, after retries: `status` and the gateway's message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class GatewayClient:
    """Calls one gateway with one key. `providers` maps a model name to its provider, for the
    per-provider rate; unknown models share one bucket."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        concurrency: int = 16,
        requests_per_second: float | None = None,
        retries: int = 5,
        timeout_s: float = 120.0,
        providers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.providers = providers or {}
        self._rps = requests_per_second
        self._limiters: dict[str, RateLimiter] = {}
        self._slots = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"authorization": f"Bearer {key}"},
            timeout=timeout_s,
            limits=limits,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _paced(self, model: str) -> None:
        if self._rps is None:
            return
        bucket = self.providers.get(model, "*")
        limiter = self._limiters.setdefault(bucket, RateLimiter(self._rps))
        await limiter.wait()

    async def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        model: str,
        request_id: str,
        first_attempt: int = 0,
    ) -> tuple[httpx.Response | None, str | None, int]:
        """POST with retries: (the last response, or None; the transport error; attempts).
        Each attempt carries its own request id (`<request_id>-<n>`), so that the gateway bills
        each attempt once however often a resumed sweep repeats it."""
        attempt = first_attempt
        error: str | None = None
        response: httpx.Response | None = None
        _, headers = model_request(model)
        while True:
            await self._paced(model)
            rid = f"{request_id}-{attempt}"
            async with self._slots:
                try:
                    response = await self._http.post(
                        path, json=body, headers=headers | {"x-request-id": rid}
                    )
                    error = None
                except httpx.HTTPError as exc:
                    response, error = None, f"{type(exc).__name__}: {exc}"
            attempt += 1
            retryable = response is None or response.status_code in RETRY_STATUSES
            if not retryable or attempt - first_attempt > self.retries:
                return response, error, attempt
            wait = retry_after(response) if response is not None else None
            if wait is None:
                wait = min(MAX_BACKOFF_S, 0.25 * 2 ** (attempt - first_attempt - 1))
                wait *= 0.5 + random.random()
            await asyncio.sleep(min(wait, MAX_BACKOFF_S))

    async def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        request_id: str,
        first_attempt: int = 0,
    ) -> CallResult:
        """One chat completion, never raising: failures are the result's `error`."""
        name, _ = model_request(model)
        body = {**params, "model": name, "messages": messages, "stream": False}
        started = time.perf_counter()
        response, error, attempts = await self.post(
            "/v1/chat/completions",
            body,
            model=model,
            request_id=request_id,
            first_attempt=first_attempt,
        )
        latency = (time.perf_counter() - started) * 1000
        rid = f"{request_id}-{attempts - 1}"
        if response is None or response.status_code != 200:
            message = error or _error_message(response)
            return CallResult(None, None, 0, 0, 0.0, latency, message, attempts, rid)
        data = response.json()
        usage = data.get("usage") or {}
        message = (data.get("choices") or [{}])[0].get("message") or {}
        output = message.get("content")
        if output is None and message.get("tool_calls"):
            output = json.dumps(message["tool_calls"])
        return CallResult(
            output=output or "",
            served_model=response.headers.get("x-llmgw-model") or data.get("model"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost_usd=float(response.headers.get("x-llmgw-cost-usd", 0.0)),
            latency_ms=latency,
            error=None,
            attempts=attempts,
            request_id=rid,
        )

    async def judge(
        self, model: str, system: str, user: str, schema: dict[str, Any], max_tokens: int
    ) -> tuple[dict[str, Any], float]:
        """A judge's verdict as JSON (structured output with `schema`), and its cost."""
        name, _ = model_request(model)
        body = {
            "model": name,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": schema, "strict": True},
            },
        }
        response = await self._ok("/v1/chat/completions", body, model)
        content = response.json()["choices"][0]["message"]["content"] or ""
        return json.loads(content), float(response.headers.get("x-llmgw-cost-usd", 0.0))

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], float]:
        """Embeddings of `texts` in order, and their cost."""
        response = await self._ok("/v1/embeddings", {"model": model, "input": texts}, model)
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        cost = float(response.headers.get("x-llmgw-cost-usd", 0.0))
        return [d["embedding"] for d in data], cost

    async def _ok(self, path: str, body: dict[str, Any], model: str) -> httpx.Response:
        rid = f"evs-{random.getrandbits(64):016x}"
        response, error, _ = await self.post(path, body, model=model, request_id=rid)
        if response is None:
            raise GatewayError(0, error or "no response")
        if response.status_code != 200:
            raise GatewayError(response.status_code, _error_message(response))
        return response


def _error_message(response: httpx.Response | None) -> str:
    if response is None:
        return "no response"
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    return f"HTTP {response.status_code}: {message}"
