"""One owner per data directory (issue 18): a second `ec2gw serve` (or `sim`) on the data
directory of a running one is refused, and leaves the running one whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.test_serve import _ec2gw

pytestmark = pytest.mark.embedded_only  # `ec2gw serve` starts its own embedded OpenNebula


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2GW_"))}
    env["EC2GW_EMBEDDED_DATA_DIR"] = str(data_dir)
    return env


def _healthy(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, server.communicate()[0]
        assert time.monotonic() < deadline, "the gateway did not come up"
        time.sleep(0.1)


def test_second_serve_on_the_same_data_dir_is_refused(tmp_path):
    data_dir = tmp_path / "data"
    env = _env(data_dir)
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "ec2gw.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _healthy(port, first)
        endpoint = (data_dir / "endpoint").read_text()

        for command in (["serve", "--port", str(free_port())], ["sim", "--port", "0"]):
            second = _ec2gw(*command, env=env)
            assert second.returncode == 1, second.stdout + second.stderr
            assert f"already served by PID {first.pid} on port {port}" in second.stderr
            assert "Traceback" not in second.stderr
            assert "EC2 endpoint" not in second.stdout  # no success banner

        # the running one is whole: its endpoint file stays, `keys` uses its OpenNebula
        assert (data_dir / "endpoint").read_text() == endpoint
        created = _ec2gw("keys", "create", "demo", env=env)
        assert created.returncode == 0, created.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)

    # released with the process: the next serve owns the directory
    port = free_port()
    again = subprocess.Popen(
        [sys.executable, "-m", "ec2gw.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _healthy(port, again)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)


def test_serve_on_a_taken_port_refuses_before_the_banner(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _ec2gw("serve", "--port", str(port), env=_env(tmp_path / "data"))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "EC2 endpoint" not in done.stdout and "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "endpoint").exists()
