"""Routing: which models serve a request, in what order, and when to retry or stop calling one.

Pure Python over a registry snapshot; no Ray. `plan` is the entry point.
"""

from gateway.routing.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBoard, CircuitBreaker
from gateway.routing.decision import Candidate, RouteDecision
from gateway.routing.request import AUTO, RouteRequest, TenantPolicy
from gateway.routing.retry import RetryPolicy
from gateway.routing.router import STRATEGIES, plan, prepare

__all__ = [
    "AUTO",
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "STRATEGIES",
    "Candidate",
    "CircuitBoard",
    "CircuitBreaker",
    "RetryPolicy",
    "RouteDecision",
    "RouteRequest",
    "TenantPolicy",
    "plan",
    "prepare",
]
