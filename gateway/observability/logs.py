"""Structured JSON logs: one object a line, each carrying the request id it was logged under.

The pipeline sets the request id for the task serving a request; `JsonFormatter` adds it to
every record logged there. Only what a record's message and fields say is written: bodies
and keys never reach a log through this module (the gateway logs none of them anyway, and
upstream text is redacted before it is logged).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "llmgw_request_id", default=None
)

# Attributes every LogRecord has: anything else was passed in `extra=` and is kept.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Gateway loggers: `llmgw.*` and the library's module loggers.
LOGGERS = ("llmgw", "gateway", "deployments")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_json_logs(level: int = logging.INFO) -> None:
    """Send the gateway's loggers to the process's own stderr as JSON lines (once per process).

    The real stderr (`sys.__stderr__`), not `sys.stderr`: in a Serve replica that runs
    throughput-optimized, `sys.stderr` is Serve's redirect into its replica log, which buffers
    up to 1,000 records in memory and wraps each of our lines in its own format. Ray writes a
    worker's real stderr to `logs/worker-*.err` on its node, line by line.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
            continue
        handler = logging.StreamHandler(sys.__stderr__)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
