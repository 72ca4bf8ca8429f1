"""Logs and metrics: one structured line per request, Prometheus counters and histograms.

Log lines carry the request id returned to the client, the access key id (never a secret,
signature or session), the action, the status and the latency. `log_json` turns each line
into one JSON object.

Request lines are written in batches (`BufferedStreamHandler`): a write system call per
line cost more than making the line. Each is written within `FLUSH_SECONDS`, at the latest
with the next line of any other kind (those are written at once), and at exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_LOGGER = "ec2gw.request"
REQUEST_FIELDS = ("request_id", "access_key", "action", "status", "error", "latency_ms")
# Formatted by the handler only if a handler takes the line (logging's lazy `%` arguments).
REQUEST_MESSAGE = " ".join(f"{field}=%s" for field in REQUEST_FIELDS)

FLUSH_SECONDS = 0.2  # the longest a line waits in the buffer
FLUSH_BYTES = 64 * 1024  # a batch this large is written at once


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


_buffered: weakref.WeakSet[BufferedStreamHandler] = weakref.WeakSet()


def _flush_all() -> None:
    for handler in list(_buffered):
        handler.flush()


# A forked child would write its copy of the buffer again: empty it before forking.
os.register_at_fork(before=_flush_all)


class BufferedStreamHandler(logging.StreamHandler):
    """A `StreamHandler` that writes its lines in batches, like nginx's `access_log
    ... buffer= flush=`: a line waits at most `flush_seconds` (a thread wakes up to write
    it, and only when there is something to write), and a batch of `flush_bytes` is
    written at once. Records at `flush_level` or above, and those of loggers other than
    `buffered` (all are buffered if None), are written at once after the lines before
    them. `flush()` and `close()` write what is left: `logging.shutdown` calls them at exit.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        flush_bytes: int = FLUSH_BYTES,
        flush_level: int = logging.WARNING,
        buffered: frozenset[str] | None = None,
    ) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self.flush_bytes = flush_bytes
        self.flush_level = flush_level
        self.buffered = buffered
        self._lines: list[str] = []
        self._size = 0
        self._pending = threading.Event()
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        self._closed = False
        _buffered.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (`Handler.handle`).
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line)
        if (
            record.levelno >= self.flush_level
            or self._size >= self.flush_bytes
            or self._closed
            or (self.buffered is not None and record.name not in self.buffered)
        ):
            self.flush()
        elif len(self._lines) == 1:
            self._wake_flusher()

    def _wake_flusher(self) -> None:
        if self._flusher is None or self._flusher_pid != os.getpid():  # none in a fork
            self._pending = threading.Event()
            self._flusher = threading.Thread(
                target=self._flush_later, name="log-flush", daemon=True
            )
            self._flusher_pid = os.getpid()
            self._flusher.start()
        self._pending.set()

    def _flush_later(self) -> None:
        while not self._closed:
            self._pending.wait()
            if self._closed:
                return
            time.sleep(self.flush_seconds)
            self._pending.clear()  # before flushing: a line after the flush wakes us again
            self.flush()

    def flush(self) -> None:
        with self.lock:
            if not self._lines:
                return
            data = "".join(self._lines)
            self._lines.clear()
            self._size = 0
            try:
                self.stream.write(data)
                super().flush()
            except Exception:  # the lines are lost; say so, as `Handler.handleError` does
                if logging.raiseExceptions:
                    with contextlib.suppress(Exception):
                        traceback.print_exc(file=sys.stderr)

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._pending.set()
        super().close()


def _flush_and_die(signum: int, frame: object) -> None:
    """The default action of a terminating signal, after writing the buffered lines."""
    _flush_all()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _flush_on_termination() -> None:
    """SIGTERM's and SIGHUP's default action ends the process without running `atexit`,
    so without `logging.shutdown` writing the buffer: write it first. Only signals left at
    their default are taken. (uvicorn, on SIGTERM, shuts down, logs its last lines, puts
    back the handler it found and raises the signal again. Its lines are written at once,
    and so are the request lines before them; this covers the other cases.)"""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _flush_and_die)


def configure_logging(
    json_lines: bool, level: int = logging.INFO, *, flush_seconds: float = FLUSH_SECONDS
) -> None:
    handler = BufferedStreamHandler(
        sys.stderr, flush_seconds=flush_seconds, buffered=frozenset([REQUEST_LOGGER])
    )
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BufferedStreamHandler):
            old.close()  # writes its lines; its thread ends
    root.handlers[:] = [handler]
    root.setLevel(level)
    _flush_on_termination()
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
