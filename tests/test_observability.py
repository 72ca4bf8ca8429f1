"""The request log line: its text and JSON forms, the levels, and the buffered handler
(lines arrive promptly with no further traffic, at once from WARNING up, and at exit)."""

from __future__ import annotations

import configparser
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from ec2gw.embedded import PROFILE
from ec2gw.observability import (
    BufferedStreamHandler,
    JsonFormatter,
    TextFormatter,
    log_request,
)
from tests.e2e.conftest import free_port

REQUEST_ID = "c0a8e5b2-3b0e-4c1e-9a2f-0123456789ab"
KEY = "AKIAAAAAAAAAAAAAAAAA"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, BufferedStreamHandler]]:
    """A logger of its own with a buffered handler on a StringIO (not the root's)."""
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, flush_seconds=0.05)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("test.observability")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log, stream, handler
    handler.close()
    log.handlers.clear()


def wait_for(condition: Callable[[], bool], seconds: float = 2.0) -> float:
    """How long `condition` took to hold (fails after `seconds`)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "timed out"
        time.sleep(0.005)
    return time.monotonic() - start


def test_the_request_line_in_text(logger):
    log, stream, handler = logger
    log_request(log, REQUEST_ID, KEY, "DescribeRegions", 200, None, 0.00123)
    handler.flush()
    line = stream.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO test.observability "
        f"request_id={REQUEST_ID} access_key={KEY} action=DescribeRegions status=200 "
        r"error=- latency_ms=1.2\n",
        line,
    ), line
    # The same words as the standard formatter would make of the record.
    standard = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    record = logging.LogRecord("x", logging.INFO, "f", 1, "a %s", ("b",), None)
    assert TextFormatter().format(record) == standard.format(record)


def test_the_request_line_in_json(logger):
    log, stream, handler = logger
    handler.setFormatter(JsonFormatter())
    log_request(log, REQUEST_ID, KEY, "RunInstances", 400, "InvalidAMIID.Malformed", 0.0456)
    handler.flush()
    entry = json.loads(stream.getvalue())
    assert entry.pop("time")
    assert entry == {
        "level": "INFO",
        "logger": "test.observability",
        "message": f"request_id={REQUEST_ID} access_key={KEY} action=RunInstances "
        "status=400 error=InvalidAMIID.Malformed latency_ms=45.6",
        "request_id": REQUEST_ID,
        "access_key": KEY,
        "action": "RunInstances",
        "status": 400,
        "error": "InvalidAMIID.Malformed",
        "latency_ms": 45.6,
    }


def test_records_carry_the_fields_and_levels_are_the_operators(logger, caplog):
    log, stream, handler = logger
    log.propagate = True  # to caplog's handler, as any handler an operator adds
    with caplog.at_level(logging.INFO, logger=log.name):
        log_request(log, REQUEST_ID, KEY, "DescribeRegions", 200, None, 0.001)
    record = caplog.records[-1]
    assert (record.request_id, record.access_key, record.status, record.error) == (
        REQUEST_ID,
        KEY,
        200,
        "-",
    )
    log.setLevel(logging.WARNING)
    log_request(log, REQUEST_ID, KEY, "DescribeRegions", 200, None, 0.001)
    log.setLevel(logging.INFO)
    handler.setLevel(logging.WARNING)
    log_request(log, REQUEST_ID, KEY, "DescribeRegions", 200, None, 0.001)
    handler.flush()
    assert stream.getvalue().count("request_id=") == 1  # only the first, captured one


def test_lines_wait_in_the_buffer_but_arrive_promptly_without_more_traffic(logger):
    log, stream, handler = logger
    log.info("first")
    assert stream.getvalue() == ""  # no write per line
    waited = wait_for(lambda: "first" in stream.getvalue())
    assert waited < 1.0
    # Again, after the flusher went back to sleep.
    time.sleep(0.1)
    log.info("second")
    wait_for(lambda: "second" in stream.getvalue())
    assert stream.getvalue().endswith("INFO test.observability second\n")


def test_a_warning_is_written_at_once_after_the_lines_before_it(logger):
    log, stream, handler = logger
    handler.flush_seconds = 60
    log.info("before")
    log.warning("trouble")
    assert [line.split()[-1] for line in stream.getvalue().splitlines()] == ["before", "trouble"]


def test_only_the_request_lines_wait(logger):
    log, stream, handler = logger
    handler.flush_seconds = 60
    handler.buffered = frozenset([log.name])
    log.info("request line")
    assert stream.getvalue() == ""
    logging.getLogger("test.other").addHandler(handler)
    try:
        logging.getLogger("test.other").error("server line")  # e.g. uvicorn's
    finally:
        logging.getLogger("test.other").removeHandler(handler)
    words = [line.split(maxsplit=3)[-1] for line in stream.getvalue().splitlines()]
    assert words == ["test.observability request line", "test.other server line"]


def test_a_full_buffer_is_written_at_once(logger):
    log, stream, handler = logger
    handler.flush_seconds = 60
    handler.flush_bytes = 1000
    for i in range(40):
        log.info("line %d of the batch", i)
    written = stream.getvalue().count("\n")
    assert 0 < written < 40
    handler.close()
    assert stream.getvalue().count("\n") == 40


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("ending", ["", "raise SystemExit(3)", "raise RuntimeError('boom')"])
def test_every_line_is_written_at_exit(ending):
    done = _python(
        "import logging\n"
        "from ec2gw.observability import configure_logging\n"
        "configure_logging(json_lines=True, flush_seconds=600)\n"
        "for i in range(1000):\n"
        "    logging.getLogger('ec2gw.request').info('line %d', i)\n" + ending
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [entry["message"] for entry in lines] == [f"line {i}" for i in range(1000)]


def test_configuring_again_writes_the_lines_of_the_handler_it_replaces():
    done = _python(
        "import logging, os\n"
        "from ec2gw.observability import configure_logging\n"
        "configure_logging(json_lines=False, flush_seconds=600)\n"
        "logging.getLogger('ec2gw.request').info('under the first')\n"
        "configure_logging(json_lines=False, flush_seconds=600)\n"
        "logging.getLogger('ec2gw.request').info('under the second')\n"
        "os._exit(0)  # no flush at exit: only what was written already\n"
    )
    assert "under the first" in done.stderr and "under the second" not in done.stderr


def test_a_forked_child_does_not_write_the_parents_lines_again():
    done = _python(
        "import logging, os\n"
        "from ec2gw.observability import configure_logging\n"
        "configure_logging(json_lines=False, flush_seconds=600)\n"
        "logging.getLogger('ec2gw.request').info('parent line')\n"
        "pid = os.fork()\n"
        "logging.getLogger('ec2gw.request').info('child line' if pid == 0 else 'parent again')\n"
        "if pid:\n"
        "    os.waitpid(pid, 0)\n"
    )
    assert done.stderr.count("parent line") == 1
    assert done.stderr.count("child line") == 1 and done.stderr.count("parent again") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_the_server_writes_request_lines_promptly_and_all_at_exit(tmp_path: Path, workers):
    """`ec2gw serve`: one request, then no traffic; its line arrives well within a
    second. Then a request and at once SIGTERM: its line and the shutdown lines logged just
    before each process exits are written."""
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "ec2gw.cli", "serve", "--port", str(port)]
        + ["--data-dir", str(data_dir), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(server.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: "".join(output).count("Application startup complete") == workers, 60)
        credentials = configparser.ConfigParser()
        credentials.read(data_dir / "credentials")
        client = boto3.client(
            "ec2",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=credentials[PROFILE]["aws_access_key_id"],
            aws_secret_access_key=credentials[PROFILE]["aws_secret_access_key"],
        )
        first = client.describe_regions()["ResponseMetadata"]["RequestId"]
        assert wait_for(lambda: f"request_id={first}" in "".join(output)) < 1.0
        last = client.describe_regions()["ResponseMetadata"]["RequestId"]
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        reader.join(timeout=10)
        text = "".join(output)
        assert f"request_id={last}" in text
        assert text.count("Finished server process") == workers
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_lines_are_written_when_a_signal_ends_the_process(signum):
    done = _python(
        "import logging, os, signal, time\n"
        "from ec2gw.observability import configure_logging\n"
        "configure_logging(json_lines=False, flush_seconds=600)\n"
        "logging.getLogger('ec2gw.request').info('last words')\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "time.sleep(5)\n"
        "logging.getLogger('ec2gw.request').info('never')\n"
    )
    assert done.returncode == -signum  # still the signal's default end
    assert "last words" in done.stderr and "never" not in done.stderr


def test_a_stream_that_fails_loses_the_lines_but_never_raises(logger):
    log, stream, handler = logger
    stream.close()
    log.info("lost")
    log.warning("lost too")  # written at once: the failure is met inside the log call
    handler.flush()
