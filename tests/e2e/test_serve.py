"""The newcomer's path: `ec2gw serve`, then the printed aws command, then `ec2gw keys`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.embedded_only  # `ec2gw serve` starts its own embedded OpenNebula

ROOT = Path(__file__).resolve().parents[2]


def _ec2gw(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ec2gw.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def _serving(
    port: int, data_dir: Path, env: dict[str, str], *options: str
) -> Iterator[subprocess.Popen]:
    """`ec2gw serve` as a newcomer runs it, stopped at the end."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ec2gw.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *options,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_healthy(port: int, deadline: float) -> None:
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the gateway did not come up"
        time.sleep(0.1)


def test_serve_prints_a_working_aws_command(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["EC2GW_EMBEDDED_SCHEDULE_DELAY"] = "0"
    with _serving(port, data_dir, env) as server:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            lines.append(line)
            if "aws --profile" in line:
                break
            assert server.poll() is None, "".join(lines)
        command = next(line.strip() for line in lines if "aws --profile" in line)
        assert (data_dir / "credentials").exists()
        _wait_healthy(port, deadline)
        # Run the printed line as a newcomer would, with the aws cli from PyPI.
        words = shlex.split(command)
        assignments = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
        argv = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
        assert Path(argv[0]).name == "aws"
        # the printed path of the aws cli installed beside ec2gw, run as printed
        runnable = argv if Path(argv[0]).is_file() else [sys.executable, "-m", "awscli", *argv[1:]]
        done = subprocess.run(
            [*runnable, "--output", "json"],
            env={**env, **assignments},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        names = sorted(i["Name"] for i in json.loads(done.stdout)["Images"])
        assert names == ["alpine-3.20", "debian-12", "ubuntu-24.04"]

        # keys: mint, list, revoke for the demo user, against the running cloud
        keys_env = {**env, "EC2GW_EMBEDDED_DATA_DIR": str(data_dir)}
        created = _ec2gw("keys", "create", "demo", "--json", env=keys_env)
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["AccessKey"]
        listed = _ec2gw("keys", "list", "demo", env=keys_env)
        assert key["AccessKeyId"] in listed.stdout and key["SecretAccessKey"] not in listed.stdout
        deleted = _ec2gw("keys", "delete", key["AccessKeyId"], env=keys_env)
        assert deleted.returncode == 0, deleted.stderr
        assert key["AccessKeyId"] not in _ec2gw("keys", "list", env=keys_env).stdout
        missing = _ec2gw("keys", "create", "nobody", env=keys_env)
        assert missing.returncode == 1 and "no such OpenNebula user" in missing.stderr
        credentials = (data_dir / "credentials").read_text()
        assert (data_dir / "endpoint").exists()

    # Stopped by SIGTERM (`_serving`): the process ends as the signal would, once its
    # embedded OpenNebula has stopped and the endpoint file it advertised is gone.
    assert server.returncode == -signal.SIGTERM
    assert not (data_dir / "endpoint").exists()

    # A second start finds its state and seeds nothing again.
    with _serving(port, data_dir, env):
        _wait_healthy(port, time.monotonic() + 60)
        assert (data_dir / "credentials").read_text() == credentials
        done = subprocess.run(
            [*runnable, "--output", "json"],
            env={**env, **assignments},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sorted(i["Name"] for i in json.loads(done.stdout)["Images"]) == names


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (/proc/net/tcp: state 0A is LISTEN)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"
    )


def test_serve_with_workers_spreads_requests_over_processes(tmp_path):
    import configparser

    import boto3

    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with _serving(port, data_dir, env, "--workers", "2") as server:
        _wait_healthy(port, time.monotonic() + 60)
        assert len(_children(server.pid)) >= 2
        # A socket per worker (SO_REUSEPORT), not one shared: the kernel deals new
        # connections out evenly instead of to whichever worker wakes first.
        deadline = time.monotonic() + 30
        while _listening_sockets(port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listening_sockets(port) == 2
        credentials = configparser.ConfigParser()
        credentials.read(data_dir / "credentials")
        profile = credentials["ec2gw"]
        for _ in range(40):  # a new connection each: the kernel spreads them over workers
            ec2 = boto3.client(
                "ec2",
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="opennebula",
                aws_access_key_id=profile["aws_access_key_id"],
                aws_secret_access_key=profile["aws_secret_access_key"],
            )
            assert ec2.describe_regions()["Regions"][0]["RegionName"] == "opennebula"
            ec2.close()
        # Each worker counts its own requests: a single process would report all 40.
        counted = re.compile(r'ec2gw_requests_total\{action="DescribeRegions",status="200"\} (\S+)')
        totals = set()
        for _ in range(100):  # /metrics on new connections, until a second process answers
            reply = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Connection": "close"})
            match = counted.search(reply.text)
            totals.add(float(match.group(1)) if match else 0.0)
            if min(totals) < 40:
                break
        assert min(totals) < 40, totals


def test_sim_command_serves_opennebula_alone(tmp_path):
    import xmlrpc.client

    port = free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ec2gw.cli",
            "sim",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")
        deadline = time.monotonic() + 30
        while True:
            try:
                session = (tmp_path / "one_auth").read_text().strip()
                reply = proxy.one.system.version(session)
                break
            except (OSError, FileNotFoundError):
                assert time.monotonic() < deadline and sim.poll() is None
                time.sleep(0.1)
        assert reply[0] is True and reply[1].startswith("6.10")
        assert proxy.one.system.version("oneadmin:wrong")[0] is False
    finally:
        sim.terminate()
        sim.wait(timeout=30)
