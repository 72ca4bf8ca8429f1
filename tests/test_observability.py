"""The request log line: its text and JSON forms, the levels, and a real server's lines
(promptly, and up to the last one when it is stopped)."""

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
from ec2gw.observability import JsonFormatter, TextFormatter, log_request
from tests.e2e.conftest import free_port

REQUEST_ID = "c0a8e5b2-3b0e-4c1e-9a2f-0123456789ab"
KEY = "AKIAAAAAAAAAAAAAAAAA"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler]]:
    """A logger of its own with a handler on a StringIO (not the root's)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
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
        config = configparser.ConfigParser()
        config.read(data_dir / "config")
        client = boto3.client(
            "ec2",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=config[f"profile {PROFILE}"]["region"],  # another is refused
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
