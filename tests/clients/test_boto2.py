"""boto 2.49 (legacy `boto`, still on Python 3.11): a script of the euca2ools era.

boto 2 sends `Version=2014-10-01`, sorts its parameters, uses GET for some actions
(RebootInstances) and signs SigV4 with the region and service parsed from the host name
— `127.0.0.1` gives the scope `0/127/aws4_request`. It is run three ways: that scope as
is, the scope set explicitly (`auth_region_name`/`auth_service_name`), and SigV2 (the
`ec2` auth capability, what euca2ools-era subclasses asked for).
"""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import urlsplit

import boto
import pytest
from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo
from boto.exception import EC2ResponseError
from boto.utils import RequestHook

from tests.e2e.conftest import LiveGateway


class SigV2Connection(EC2Connection):
    """EC2Connection signing with SigV2, as boto 2 did before it defaulted to SigV4."""

    def _required_auth_capability(self) -> list[str]:
        return ["ec2"]


class Signatures(RequestHook):
    """Records how each request was sent and signed: (method, "region/service" or "v2")."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def handle_request_data(self, request, response, error=False) -> None:
        scope = re.search(
            r"Credential=[^/]+/\d{8}/([^/]+/[^/]+)/", request.headers.get("Authorization", "")
        )
        signed = f"{request.path}&{request.body or ''}"
        self.seen.add(
            (
                request.method,
                scope.group(1) if scope else "v2" if "SignatureVersion=2" in signed else "?",
            )
        )


def _connect(gateway: LiveGateway, key, mode: str) -> EC2Connection:
    url = urlsplit(gateway.url)
    cls = SigV2Connection if mode == "sigv2" else EC2Connection
    conn = cls(
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret,
        region=RegionInfo(name=gateway.region, endpoint=url.hostname),
        port=url.port,
        is_secure=False,
    )
    if mode == "sigv4-explicit-scope":
        conn.auth_region_name = gateway.region
        conn.auth_service_name = "ec2"
    return conn


@pytest.fixture(autouse=True)
def _no_boto_retries(monkeypatch):
    """boto 2 retries a 5xx six times with growing pauses; a failure should fail now."""
    if not boto.config.has_section("Boto"):
        boto.config.add_section("Boto")
    monkeypatch.setattr(boto.config, "get", _config_without_retries(boto.config.get))


def _config_without_retries(get):
    def patched(section, name, default=None):
        if (section, name) == ("Boto", "num_retries"):
            return "0"
        return get(section, name, default)

    return patched


def _wait_for_state(conn: EC2Connection, ids: list[str], state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {i.id: i.state for i in conn.get_only_instances(instance_ids=ids)}
        if set(states.values()) == {state}:
            return
        assert time.monotonic() < deadline, f"still {states}, wanted {state}"
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["sigv4-host-scope", "sigv4-explicit-scope", "sigv2"])
def test_boto2_workflow(gateway: LiveGateway, mode: str):
    key = gateway.new_user(f"client-boto2-{mode}")
    conn = _connect(gateway, key, mode)
    signatures = Signatures()
    conn.set_request_hook(signatures)

    assert [r.name for r in conn.get_all_regions()] == [gateway.region]
    zones = conn.get_all_zones()
    assert zones and {z.state for z in zones} == {"available"}
    images = conn.get_all_images(owners=["amazon"], filters={"name": "ubuntu-*"})
    assert len(images) == 1 and images[0].state == "available"
    ami = images[0].id
    key_pair = conn.create_key_pair("boto2-key")
    assert key_pair.material.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert [k.name for k in conn.get_all_key_pairs()] == ["boto2-key"]

    with pytest.raises(EC2ResponseError) as err:
        conn.run_instances(ami, instance_type="t3.micro", dry_run=True)
    assert (err.value.status, err.value.error_code) == (412, "DryRunOperation")
    reservation = conn.run_instances(
        ami,
        min_count=2,
        max_count=2,
        key_name="boto2-key",
        instance_type="t3.micro",
        user_data="#!/bin/sh\necho boto2\n",
    )
    ids = sorted(i.id for i in reservation.instances)
    assert len(ids) == 2 and reservation.id.startswith("r-")
    _wait_for_state(conn, ids, "running")

    assert conn.create_tags(ids, {"Name": "b2", "suite": "boto2"}) is True
    found = conn.get_all_reservations(
        filters={
            "tag:suite": "boto2",
            "instance-state-name": "running",
            "instance-type": "t3.micro",
        }
    )
    assert [r.id for r in found] == [reservation.id]
    instances = sorted(found[0].instances, key=lambda i: i.id)
    assert [i.id for i in instances] == ids
    assert instances[0].tags == {"Name": "b2", "suite": "boto2"}
    assert instances[0].key_name == "boto2-key" and instances[0].image_id == ami
    assert instances[0].private_ip_address.startswith("10.")
    assert conn.get_all_reservations(filters={"tag:suite": "nobody"}) == []
    tags = conn.get_all_tags(filters={"resource-id": ids[0]})
    assert sorted((t.name, t.value) for t in tags) == [("Name", "b2"), ("suite", "boto2")]
    attribute = conn.get_instance_attribute(ids[0], "userData")
    assert base64.b64decode(attribute["userData"]) == b"#!/bin/sh\necho boto2\n"

    assert conn.reboot_instances([ids[0]]) is True
    stopped = conn.stop_instances([ids[1]])
    assert [(i.id, i.state) for i in stopped] == [(ids[1], "stopping")]
    _wait_for_state(conn, [ids[1]], "stopped")
    started = conn.start_instances([ids[1]])
    assert [(i.id, i.state) for i in started] == [(ids[1], "pending")]
    _wait_for_state(conn, [ids[1]], "running")
    terminated = conn.terminate_instances(ids)
    assert sorted((i.id, i.state) for i in terminated) == [(i, "shutting-down") for i in ids]
    _wait_for_state(conn, ids, "terminated")

    with pytest.raises(EC2ResponseError) as err:
        conn.get_all_reservations(instance_ids=["i-0fffffff"])
    assert (err.value.status, err.value.error_code) == (400, "InvalidInstanceID.NotFound")
    assert conn.delete_key_pair("boto2-key") is True
    assert conn.get_all_key_pairs() == []
    scheme = {
        "sigv4-host-scope": "0/127",  # what boto 2 makes of 127.0.0.1
        "sigv4-explicit-scope": f"{gateway.region}/ec2",
        "sigv2": "v2",
    }[mode]
    assert signatures.seen == {("POST", scheme), ("GET", scheme)}  # GET: RebootInstances
