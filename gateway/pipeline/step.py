"""The one interface every pipeline step has."""

from __future__ import annotations

from typing import ClassVar

from gateway.pipeline.context import RequestContext, Services

# `messages` and `responses` are chat calls translated at the edge (gateway.apis).
ALL_ENDPOINTS = frozenset(
    {"chat", "embeddings", "messages", "responses", "models", "health", "admin"}
)
MODEL_CALLS = frozenset({"chat", "embeddings", "messages", "responses"})


class Step:
    """A pipeline step: `handle` runs on the way in (in order, stopping at the first error);
    `finish` runs once the response is done, for every step of the request, even after errors.
    """

    name: ClassVar[str]
    endpoints: ClassVar[frozenset[str]] = MODEL_CALLS

    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, ctx: RequestContext) -> None:
        """Do this step's work, or raise a `GatewayError` to answer the client with it."""

    async def finish(self, ctx: RequestContext) -> None:
        """Record what happened, after the response (streamed or not) is complete."""
