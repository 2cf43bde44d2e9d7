"""The Ray metric sink: counters and gauges gathered in the replica and recorded once a flush,
histograms recorded as observed (fake Ray metrics stand in for `ray.util.metrics`)."""

from __future__ import annotations

from typing import Any

from deployments.observability import RaySink
from gateway.observability.catalogue import POOL_QUEUE, REQUEST_DURATION, REQUESTS


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, str]]] = []

    def inc(self, value: float, tags: dict[str, Any]) -> None:
        self.calls.append(("inc", value, tags))

    def set(self, value: float, tags: dict[str, Any]) -> None:
        self.calls.append(("set", value, tags))

    def observe(self, value: float, tags: dict[str, Any]) -> None:
        self.calls.append(("observe", value, tags))


def sink() -> tuple[RaySink, dict[str, Recorded]]:
    made = RaySink(flush_interval_s=3600)  # flushed by the test, not the thread
    fakes = {spec.name: Recorded() for spec in (REQUESTS, POOL_QUEUE, REQUEST_DURATION)}
    made._metrics.update(fakes)
    return made, fakes


def test_counters_are_summed_per_series_and_recorded_once_a_flush() -> None:
    made, fakes = sink()
    for tenant in ("a", "a", "b", "a"):
        made.emit(REQUESTS, 1.0, {"tenant": tenant})
    made.emit(REQUESTS, 0.0, {"tenant": "c"})  # Ray refuses a zero increment
    assert fakes[REQUESTS.name].calls == []
    made.flush()
    assert sorted(fakes[REQUESTS.name].calls, key=lambda c: c[2]["tenant"]) == [
        ("inc", 3.0, {"tenant": "a"}),
        ("inc", 1.0, {"tenant": "b"}),
    ]
    made.flush()  # nothing new: nothing recorded
    assert len(fakes[REQUESTS.name].calls) == 2


def test_a_gauge_records_its_last_value_and_a_histogram_every_observation() -> None:
    made, fakes = sink()
    for depth in (1.0, 2.0, 0.0):
        made.emit(POOL_QUEUE, depth, {"pool": "openai"})
    made.emit(REQUEST_DURATION, 0.25, {"model": "m"})
    made.emit(REQUEST_DURATION, 0.5, {"model": "m"})
    assert [c[1] for c in fakes[REQUEST_DURATION.name].calls] == [0.25, 0.5]
    made.flush()
    assert fakes[POOL_QUEUE.name].calls == [("set", 0.0, {"pool": "openai"})]
