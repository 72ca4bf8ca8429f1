"""A live gateway on a real socket, backed by an OpenNebula on another socket.

The OpenNebula is the embedded one, started in this process (in a thread) for speed, or a
real oned when `EC2GW_TEST_OPENNEBULA` names its XML-RPC endpoint (see `tests/backend.py`).
`test_serve.py` also runs the real `ec2gw serve` command as a subprocess.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import boto3
import pytest
import uvicorn
from botocore.config import Config

from ec2gw.app import create_app
from ec2gw.auth.keys import AccessKey
from ec2gw.config import Settings
from tests.backend import Backend, start_backend

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.2) -> T:
    """`probe()` once it is truthy, polled as a client of an asynchronous cloud would (a
    real oned takes its time); fails with its last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"still {value!r} after {timeout} s"
        time.sleep(interval)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveGateway:
    url: str
    region: str
    key: AccessKey
    backend: Backend
    data_dir: Path

    @property
    def settings(self) -> Settings:
        return self.backend.settings

    def client(self, key: AccessKey | None = None, **config: object):
        key = key or self.key
        return boto3.client(
            "ec2",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret,
            config=Config(retries={"max_attempts": 1}, **config),
        )

    def aws(self, *args: str, key: AccessKey | None = None) -> subprocess.CompletedProcess:
        """Run the aws cli (v1, from PyPI) against the gateway."""
        key = key or self.key
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": key.access_key_id,
            "AWS_SECRET_ACCESS_KEY": key.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_MAX_ATTEMPTS": "1",
        }
        command = [sys.executable, "-m", "awscli", "--endpoint-url", self.url, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    def aws_json(self, *args: str, key: AccessKey | None = None) -> dict:
        done = self.aws(*args, "--output", "json", key=key)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    @contextmanager
    def variant(self, **overrides: object) -> Iterator[LiveGateway]:
        """Another gateway process-alike on the same OpenNebula, with changed settings,
        e.g. `variant(gateway__rate_limit=2, opennebula__timeout=1)`."""
        settings = copy.deepcopy(self.settings)
        settings.gateway.rate_limit = 0
        for name, value in overrides.items():
            section, option = name.split("__")
            setattr(getattr(settings, section), option, value)
        with serving(settings) as url:
            yield dataclasses.replace(self, url=url)

    def one(self, method: str, *args: object) -> object:
        """Call the OpenNebula as oneadmin (test set-up and read-backs only)."""
        return self.backend.one(method, *args)

    def _with_keystore(self, work):
        """Run `work(keystore)` against the OpenNebula (test set-up only)."""
        return asyncio.run(self.backend.with_keystore(work))

    def new_user(self, name: str, group: int = 1) -> AccessKey:
        """Another OpenNebula user with an EC2 key (on a real oned, `name` gets a suffix
        unique to this test run: its users outlive the run)."""
        name = self.backend.user_name(name)
        self.one("one.user.allocate", name, "pw-" + name, "core", [group])
        return self._with_keystore(lambda keys: keys.create(name))

    def delete_key(self, access_key_id: str) -> bool:
        return self._with_keystore(lambda keys: keys.delete(access_key_id))


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Run a gateway with these settings on a free port in a thread; yield its URL."""
    settings.gateway.port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.gateway.port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.gateway.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    data_dir = tmp_path_factory.mktemp("ec2gw-data")
    settings = Settings()
    settings.gateway.port = free_port()
    settings.gateway.rate_limit = 0  # throttling has its own test; clients here are busy
    backend = start_backend(settings, data_dir)
    try:
        with serving(settings) as url:
            yield LiveGateway(
                url=url, region=backend.region, key=backend.key, backend=backend, data_dir=data_dir
            )
    finally:
        backend.stop()


@pytest.fixture(scope="session")
def ec2(gateway: LiveGateway):
    return gateway.client()


@pytest.fixture(scope="session")
def ami(ec2) -> str:
    """The small public AMI of the seeded cloud (modules may use another)."""
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["alpine-*"]}])["Images"]
    return images[0]["ImageId"]


@pytest.fixture(scope="session")
def zone(ec2) -> str:
    return ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
