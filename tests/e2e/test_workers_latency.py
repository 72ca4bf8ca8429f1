"""Issue 20: `ec2gw serve --workers N` answered every small request 40 ms late.

The sockets the workers bound themselves had `proto` 0, so asyncio did not recognise their
connections as TCP and left Nagle's algorithm on: uvicorn writes an answer's head and body
separately, and the body waited for the client's delayed ACK of the head (DescribeRegions
p50 44 ms with 2 workers, 1.2 ms with one). See `ec2gw.workers.tcp_listener`.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import re
import socket
import statistics
import time
from pathlib import Path

import boto3
import pytest
import uvicorn
from botocore.config import Config

from ec2gw import workers
from tests.e2e.conftest import free_port
from tests.e2e.test_serve import ROOT, _serving, _wait_healthy

ROUNDS = 6  # the two servers take turns, so that the machine's drift weighs on both alike
PER_ROUND = 4  # sequential requests on the client's one keep-alive connection
SLOWER_AT_MOST = 3.0  # a 40 ms stall on every answer of about 2 ms is 20 times slower


def _nodelay_of_accepted(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted through `listener` by asyncio, as uvicorn does."""

    async def accept_one() -> int:
        seen: dict[str, int] = {}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(handle, sock=listener)
        try:
            reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            await reader.read()
            writer.close()
            return seen["nodelay"]
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(accept_one())


def test_worker_sockets_accept_connections_without_nagle():
    # The socket each worker binds itself (SO_REUSEPORT), as the worker unpickles it.
    listener = workers.ReusePortListener("127.0.0.1", 0)
    func, args = listener.__reduce__()
    assert _nodelay_of_accepted(func(*args)) == 1
    # uvicorn's own shared socket (where SO_REUSEPORT does not spread connections).
    config = uvicorn.Config("ec2gw.app:create_from_environment", host="127.0.0.1", port=0)
    assert _nodelay_of_accepted(workers.tcp_listener(config.bind_socket())) == 1


def _client(port: int, data_dir: Path):
    credentials = configparser.ConfigParser()
    credentials.read(data_dir / "credentials")
    profile = credentials["ec2gw"]
    return boto3.client(
        "ec2",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="opennebula",
        aws_access_key_id=profile["aws_access_key_id"],
        aws_secret_access_key=profile["aws_secret_access_key"],
        config=Config(retries={"max_attempts": 1}, max_pool_connections=1),
    )


def _dockerfile_environment(data_dir: Path) -> dict[str, str]:
    """The image's ENV, its paths replaced by this checkout's config and `data_dir`."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = " ".join(line for line in text.splitlines() if line.startswith("ENV "))
    env = dict(re.findall(r"(EC2GW_[A-Z_]+)=(\S+)", lines))
    assert env.pop("EC2GW_CONFIG") == "/etc/ec2gw/ec2gw.toml"  # `COPY config/ec2gw.toml` there
    return {
        **env,
        "EC2GW_CONFIG": str(ROOT / "config" / "ec2gw.toml"),
        "EC2GW_EMBEDDED_DATA_DIR": str(data_dir),  # the image's volume
    }


def _serve_workers(workers: int, data_dir: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    return {}, ("--workers", str(workers))


def _dockerfile_workers(workers: int, data_dir: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """The image's command (`ec2gw serve`), its workers set as a container's would be."""
    return {**_dockerfile_environment(data_dir), "EC2GW_GATEWAY_WORKERS": str(workers)}, ()


@pytest.mark.embedded_only  # `ec2gw serve` starts its own embedded OpenNebula
@pytest.mark.parametrize(
    "way",
    [_serve_workers, _dockerfile_workers],
    ids=["serve --workers N", "Dockerfile command, EC2GW_GATEWAY_WORKERS=N"],
)
def test_serve_with_workers_answers_as_fast_as_one_worker(tmp_path, way):
    """Sequential DescribeRegions on one keep-alive connection: with 2 workers as fast as
    with one, measured side by side (a stall per answer would make them ~20 times slower)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    (env_one, options_one), (env_two, options_two) = (
        way(n, tmp_path / name) for n, name in ((1, "one"), (2, "two"))
    )
    one, two = free_port(), free_port()
    with (
        _serving(one, tmp_path / "one", {**base, **env_one}, *options_one),
        _serving(two, tmp_path / "two", {**base, **env_two}, *options_two),
    ):
        deadline = time.monotonic() + 60
        _wait_healthy(one, deadline)
        _wait_healthy(two, deadline)
        clients = {1: _client(one, tmp_path / "one"), 2: _client(two, tmp_path / "two")}
        for ec2 in clients.values():
            ec2.describe_regions()  # connects; the timed requests reuse the connection
        seconds: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(ROUNDS):
            for count in sorted(clients, reverse=bool(round_ % 2)):
                for _ in range(PER_ROUND):
                    start = time.perf_counter()
                    clients[count].describe_regions()
                    seconds[count].append(time.perf_counter() - start)
        for ec2 in clients.values():
            ec2.close()
    one_worker, two_workers = (statistics.median(seconds[n]) for n in (1, 2))
    ms = {n: [round(s * 1000, 1) for s in seconds[n]] for n in seconds}
    assert two_workers < SLOWER_AT_MOST * one_worker, (
        f"2 workers p50 {two_workers * 1000:.1f} ms against {one_worker * 1000:.1f} ms "
        f"for one: {ms}"
    )
