"""Logs and metrics: one structured line per request, Prometheus counters and histograms.

Log lines carry the request id returned to the client, the access key id (never a secret,
signature or session), the action, the status and the latency. `log_json` turns each line
into one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_LOGGER = "ec2gw.request"
REQUEST_FIELDS = ("request_id", "access_key", "action", "status", "error", "latency_ms")
# Formatted by the handler only if a handler takes the line (logging's lazy `%` arguments).
REQUEST_MESSAGE = " ".join(f"{field}=%s" for field in REQUEST_FIELDS)


def log_request(
    logger: logging.Logger,
    request_id: str,
    access_key: str,
    action: str,
    status: int,
    error: str | None,
    seconds: float,
) -> None:
    """The one INFO line of a request: `k=v` words, and the same fields on the record."""
    if logger.isEnabledFor(logging.INFO):
        values = (request_id, access_key, action, status, error or "-", round(seconds * 1000, 1))
        # What `logger.info(REQUEST_MESSAGE, *values, extra=...)` does, without checking
        # `extra`'s names against the record's (ours are fixed) or looking for the caller
        # (no line of ours shows it).
        record = logging.getLogRecordFactory()(
            logger.name, logging.INFO, "(unknown file)", 0, REQUEST_MESSAGE, values, None
        )
        record.__dict__.update(zip(REQUEST_FIELDS, values, strict=True))
        logger.handle(record)


class _SecondCache:
    """`time.strftime` of a record's second, made once per second rather than per line."""

    def __init__(self, datefmt: str) -> None:
        self._datefmt = datefmt
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime(self._datefmt, time.localtime(second))
            self._second = second
        return self._text


class TextFormatter(logging.Formatter):
    """`%(asctime)s %(levelname)s %(name)s %(message)s`, the time formatted once a second."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._seconds = _SecondCache(self.default_time_format)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.default_msec_format % (self._seconds(record.created), record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # The format string above, without `logging.Formatter`'s general machinery.
        record.message = record.getMessage()
        return f"{self.formatTime(record)} {record.levelname} {record.name} {record.message}"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._seconds = _SecondCache("%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self._seconds(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        entry.update({f: fields[f] for f in REQUEST_FIELDS if f in fields})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No line of ours shows the caller, thread or process: not gathering them saves about
    # a third of every log call (the logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # httpx (the `keys` command's probe of a running gateway) logs every request at INFO.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))


class Metrics:
    """The gateway's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ec2gw_requests_total",
            "EC2 requests answered, by action and HTTP status",
            ["action", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ec2gw_errors_total",
            "EC2 error answers, by action and error code",
            ["action", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ec2gw_request_seconds",
            "Time to answer an EC2 request, by action",
            ["action"],
            registry=self.registry,
        )
        self.one_latency = Histogram(
            "ec2gw_opennebula_call_seconds",
            "Time of OpenNebula XML-RPC calls, by method and outcome",
            ["method", "ok"],
            registry=self.registry,
        )

        # Labelled children by label values: `labels()` validates and locks on every call.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_one_call(self, method: str, seconds: float, ok: bool) -> None:
        self._child(self.one_latency, method, "true" if ok else "false").observe(seconds)

    def observe_request(self, action: str, status: int, error: str | None, seconds: float) -> None:
        self._child(self.requests, action, str(status)).inc()
        self._child(self.latency, action).observe(seconds)
        if error:
            self._child(self.errors, action, error).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
