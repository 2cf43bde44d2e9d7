"""Where a replica's pipeline records go: stats samples to the registry, usage and audit to the
writer, each buffered and shipped in batches off the request path."""

from __future__ import annotations

from typing import Any

from gateway.registry.stats import CallSample
from gateway.usage.records import AuditEvent, UsageRecord


class ReplicaRecorder:
    """The pipeline's `Recorder` in a Serve replica."""

    def __init__(self, feed: Any, sink: Any) -> None:
        self.feed = feed
        self.sink = sink

    def sample(self, sample: CallSample) -> None:
        self.feed.report(sample)

    def usage(self, record: UsageRecord) -> None:
        self.sink.usage(record)

    def audit(self, event: AuditEvent) -> None:
        self.sink.audit(event)
