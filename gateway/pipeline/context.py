"""The state of one request as it passes the pipeline's steps, and the services steps share."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.auth import KeyRing, Principal
from gateway.config import GatewayConfig, ModelConfig
from gateway.errors import GatewayError
from gateway.pipeline.invoker import Invocation, Invoker, StreamStart
from gateway.providers.framing import Completed
from gateway.quota.leases import LeaseBook
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing import RouteDecision, RouteRequest
from gateway.wire import ChatCompletionRequest, EmbeddingRequest, Usage

Endpoint = Literal["chat", "embeddings", "messages", "responses", "models", "health", "admin"]


class Recorder(Protocol):
    """Where metering and audit records go: a batching sink off the request path."""

    def usage(self, record: Any) -> None: ...

    def audit(self, event: Any) -> None: ...

    def sample(self, sample: Any) -> None: ...


@dataclass
class Services:
    """What steps need from the replica: config, the current snapshot, keys, the invoker."""

    config: GatewayConfig
    snapshot: Callable[[], RegistrySnapshot]
    keys: KeyRing
    invoker: Invoker
    recorder: Recorder
    # Quota leases; the default holds them in this process (one replica, no Ray).
    quotas: LeaseBook = field(default_factory=LeaseBook)


@dataclass
class RequestContext:
    """One request: what came in, what each step decided, and what went out."""

    endpoint: Endpoint
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    # filled in by steps
    chat: ChatCompletionRequest | None = None
    embedding: EmbeddingRequest | None = None
    principal: Principal | None = None
    snapshot: RegistrySnapshot | None = None
    route_request: RouteRequest | None = None
    decision: RouteDecision | None = None
    invocation: Invocation = field(default_factory=Invocation)
    completed: Completed | None = None
    stream: StreamStart | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    upstream_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error: GatewayError | None = None
    release: Callable[[], Any] | None = None  # frees the admit step's slot
    # Soft limits passed (e.g. "budget_exceeded:tenant:acme:day"): served, flagged, recorded.
    flags: list[str] = field(default_factory=list)
    # What an admin action changed ({"before": ..., "after": ...}), for the audit trail.
    audit_detail: dict[str, Any] = field(default_factory=dict)
    # Moments observers note, in ms since arrival (e.g. the first token's), for metrics.
    marks: dict[str, float] = field(default_factory=dict)
    trace: Any = None  # the request's spans, when tracing is on

    @property
    def model(self) -> ModelConfig | None:
        return self.invocation.model

    @property
    def streaming(self) -> bool:
        return bool(self.chat is not None and self.chat.stream)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def overhead_ms(self) -> float:
        """Time spent in the gateway so far, the provider's own time excluded."""
        return max(0.0, self.elapsed_ms() - self.upstream_ms)
