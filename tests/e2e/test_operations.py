"""What an operator runs: `ec2gw check`, and several gateway processes on one OpenNebula."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.e2e.conftest import free_port


def _env(gateway, **extra: str) -> dict[str, str]:
    settings = gateway.settings
    return {
        **os.environ,
        "EC2GW_OPENNEBULA_ENDPOINT": settings.opennebula.endpoint,
        "EC2GW_OPENNEBULA_SERVER_USER": settings.opennebula.server_user,
        "EC2GW_OPENNEBULA_SERVER_SECRET": settings.opennebula.server_secret,
        **extra,
    }


def test_check_reports_what_the_gateway_offers(gateway):
    done = subprocess.run(
        [sys.executable, "-m", "ec2gw.cli", "check"],
        env=_env(gateway),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok      OpenNebula 6.10" in done.stdout
    assert "auth driver server_cipher" in done.stdout
    assert "instance types: " in done.stdout and "t3.micro" in done.stdout
    assert "region: opennebula" in done.stdout
    # the cloud's own AMIs by name (a real cloud also holds many of its users', only counted)
    (images,) = [line for line in done.stdout.splitlines() if "OS images" in line]
    assert images.startswith("ok      OS images (AMIs) of the cloud (owner amazon): ")
    assert all(name in images for name in ("alpine-3.20", "debian-12", "ubuntu-24.04"))
    assert "users' own AMIs: " in images


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"EC2GW_OPENNEBULA_SERVER_SECRET": "wrong"}, "refused the server account"),
        ({"EC2GW_OPENNEBULA_ENDPOINT": "http://127.0.0.1:9/RPC2"}, "not reachable"),
        ({"EC2GW_GATEWAY_PORT": "many"}, "configuration error"),
    ],
)
def test_check_explains_problems(gateway, extra, expected):
    done = subprocess.run(
        [sys.executable, "-m", "ec2gw.cli", "check"],
        env=_env(gateway, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert expected in done.stdout + done.stderr
    assert gateway.settings.opennebula.server_secret not in done.stdout + done.stderr


@contextmanager
def gateway_process(gateway) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ec2gw.cli", "serve", "--port", str(port)],
        env=_env(gateway, EC2GW_GATEWAY_RATE_LIMIT="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_two_gateway_processes_serve_one_user_consistently(gateway):
    import dataclasses

    with gateway_process(gateway) as first, gateway_process(gateway) as second:
        a = dataclasses.replace(gateway, url=first).client()
        b = dataclasses.replace(gateway, url=second).client()
        ami = a.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        launched = a.run_instances(ImageId=ami, MinCount=1, MaxCount=1, ClientToken="two-procs")
        retried = b.run_instances(ImageId=ami, MinCount=1, MaxCount=1, ClientToken="two-procs")
        assert retried["ReservationId"] == launched["ReservationId"]
        instance_id = launched["Instances"][0]["InstanceId"]
        b.create_tags(Resources=[instance_id], Tags=[{"Key": "seen-by", "Value": "b"}])
        seen = a.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert {"Key": "seen-by", "Value": "b"} in seen["Tags"]
        b.terminate_instances(InstanceIds=[instance_id])
        a.get_waiter("instance_terminated").wait(
            InstanceIds=[instance_id], WaiterConfig={"Delay": 1}
        )
