"""Logs and metrics: one structured line per request, Prometheus counters and histograms.

Log lines carry the request id returned to the client, the access key id (never a secret,
signature or session), the action, the status and the latency. `log_json` turns each line
into one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_FIELDS = ("request_id", "access_key", "action", "status", "error", "latency_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({f: getattr(record, f) for f in REQUEST_FIELDS if hasattr(record, f)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
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
