"""An OTLP/HTTP trace receiver for tests: protobuf at /v1/traces, decoded with
opentelemetry-proto, as a collector would receive it; a module-scoped fixture of one, and a
client's W3C traceparent for requests whose trace the tests follow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

# The caller's trace and span: every span of the request carries TRACE_ID, its root has
# PARENT_ID as parent.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Receiver:
    """An OTLP/HTTP trace receiver on a free local port."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.paths.append(self.path)
                receiver.payloads.append(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def spans(self) -> list[dict[str, Any]]:
        found = []
        for payload in self.payloads:
            request = ExportTraceServiceRequest.FromString(payload)
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attributes = {}
                        for a in span.attributes:
                            v = a.value
                            attributes[a.key] = getattr(v, v.WhichOneof("value"))
                        found.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "attributes": attributes,
                                "status": span.status.code,
                                "service": service.get("service.name"),
                                "start": span.start_time_unix_nano,
                                "end": span.end_time_unix_nano,
                            }
                        )
        return found


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A receiver for the module's tests (clear `payloads` between them)."""
    started = Receiver()
    yield started
    started.server.shutdown()
