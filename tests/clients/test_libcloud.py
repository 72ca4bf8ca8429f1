"""Apache libcloud's EC2 driver: GET requests with everything in the query string,
SigV2 by default (SigV4 on request), namespaced XPath over the answers (exactly
`http://ec2.amazonaws.com/doc/2016-11-15/`, `<item>` children) and `<return>true</return>`
for the actions without output.

`region=` must be one of libcloud's AWS region names; it picks the signing defaults and
the SigV4 scope, while host/port/secure point the driver at the gateway. libcloud also
lists only the availability zones whose `regionName` is that name, so the gateway under
test runs with `[gateway] region_name = "us-east-1"`, as a libcloud user's would.
"""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState, Provider, StorageVolumeState
from libcloud.http import LibcloudConnection

from tests.e2e.conftest import LiveGateway


@pytest.fixture
def wire(monkeypatch) -> list[tuple[str, str, str]]:
    """Every request libcloud sends, as (method, action, signature scheme)."""
    sent: list[tuple[str, str, str]] = []
    request = LibcloudConnection.request

    def recording(self, method, url, body=None, headers=None, **kwargs):
        query = parse_qs(urlsplit(url).query)
        authorization = (headers or {}).get("Authorization", "")
        scheme = (
            "4"
            if authorization.startswith("AWS4-HMAC-SHA256 ")
            else "2"
            if query.get("SignatureVersion") == ["2"]
            else "?"
        )
        sent.append((method, query.get("Action", ["?"])[0], scheme))
        return request(self, method, url, body=body, headers=headers, **kwargs)

    monkeypatch.setattr(LibcloudConnection, "request", recording)
    return sent


REGION = "us-east-1"


@pytest.fixture(scope="module")
def us_east_1(gateway: LiveGateway):
    with gateway.variant(gateway__region_name=REGION) as variant:
        yield variant


def _volume_state(driver, volume_id: str, state: StorageVolumeState, timeout: float = 30):
    """Poll list_volumes (libcloud has no volume waiter) until the volume is in `state`."""
    deadline = time.monotonic() + timeout
    while True:
        (volume,) = [v for v in driver.list_volumes() if v.id == volume_id]
        if volume.state == state:
            return volume
        assert time.monotonic() < deadline, f"{volume_id} still {volume.state}, wanted {state}"
        time.sleep(0.2)


def _node_state(driver, node_id: str, state: NodeState, timeout: float = 30) -> None:
    """Poll list_nodes until the node is in `state` (libcloud waits only for running)."""
    deadline = time.monotonic() + timeout
    while (current := driver.list_nodes(ex_node_ids=[node_id])[0].state) != state:
        assert time.monotonic() < deadline, f"{node_id} still {current}, wanted {state}"
        time.sleep(0.2)


def _driver(gateway: LiveGateway, key, signature_version: str):
    url = urlsplit(gateway.url)
    return get_driver(Provider.EC2)(
        key.access_key_id,
        key.secret,
        region=REGION,
        host=url.hostname,
        port=url.port,
        secure=False,
        signature_version=signature_version,
    )


@pytest.mark.parametrize("signature_version", ["2", "4"])
def test_libcloud_workflow(us_east_1: LiveGateway, wire, signature_version: str):
    key = us_east_1.new_user(f"client-libcloud-v{signature_version}")
    driver = _driver(us_east_1, key, signature_version)

    locations = driver.list_locations()
    assert locations and {loc.availability_zone.region_name for loc in locations} == {REGION}
    images = driver.list_images(ex_owner="amazon")
    assert len(images) >= 3 and all(isinstance(i, NodeImage) for i in images)
    image = next(i for i in images if i.name.startswith("ubuntu-"))
    assert image.id.startswith("ami-") and image.extra["state"] == "available"
    sizes = {s.id: s for s in driver.list_sizes()}  # libcloud's own table, not a request
    size: NodeSize = sizes["t3.micro"]

    # Key pairs: create, import, list, delete.
    created = driver.create_key_pair("lc-key")
    assert created.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert created.fingerprint
    public = _public_key()
    imported = driver.import_key_pair_from_string("lc-imported", public)
    assert imported.name == "lc-imported" and imported.fingerprint
    assert sorted(k.name for k in driver.list_key_pairs()) == ["lc-imported", "lc-key"]
    assert driver.get_key_pair("lc-key").fingerprint == created.fingerprint
    assert driver.delete_key_pair(imported) is True
    assert [k.name for k in driver.list_key_pairs()] == ["lc-key"]

    # Two nodes; libcloud names them with a Name tag in the TagSpecification.
    node = driver.create_node(
        name="lc-web",
        size=size,
        image=image,
        ex_keyname="lc-key",
        ex_userdata="#!/bin/sh\necho libcloud\n",
        ex_metadata={"suite": "libcloud"},
    )
    # A security group with one rule, for the second node.
    group_id = driver.ex_create_security_group("lc-db", "libcloud database")["group_id"]
    assert group_id.startswith("sg-")
    assert (
        driver.ex_authorize_security_group_ingress(group_id, 5432, 5432, cidr_ips=["10.0.0.0/8"])
        is True
    )
    (group,) = driver.ex_get_security_groups(group_ids=[group_id])
    assert group.name == "lc-db"
    assert [
        (r["protocol"], r["from_port"], r["to_port"], r["cidr_ips"]) for r in group.ingress_rules
    ] == [("tcp", "5432", "5432", ["10.0.0.0/8"])]  # libcloud keeps the ports as text
    subnet = driver.ex_list_subnets()[0]  # libcloud wants a subnet with group ids
    assert subnet.id.startswith("subnet-") and subnet.extra["vpc_id"].startswith("vpc-")
    other = driver.create_node(
        name="lc-db", size=size, image=image, ex_security_group_ids=[group_id], ex_subnet=subnet
    )
    assert node.id.startswith("i-") and node.name == "lc-web"
    ready = driver.wait_until_running(
        [node, other], wait_period=0.2, timeout=30, ssh_interface="private_ips"
    )
    assert sorted(n.id for n, _ in ready) == sorted([node.id, other.id])

    nodes = {n.id: n for n in driver.list_nodes()}  # also calls DescribeAddresses
    assert set(nodes) == {node.id, other.id}
    web = nodes[node.id]
    assert web.name == "lc-web" and web.state == NodeState.RUNNING
    assert web.extra["tags"] == {"Name": "lc-web", "suite": "libcloud"}
    assert web.extra["key_name"] == "lc-key" and web.extra["image_id"] == image.id
    assert web.extra["instance_type"] == "t3.micro"
    assert web.private_ips and web.private_ips[0].startswith("10.")
    db = nodes[other.id]
    assert db.extra["groups"] == [{"group_id": group_id, "group_name": "lc-db"}]
    assert db.extra["subnet_id"] == subnet.id
    by_filter = driver.list_nodes(ex_filters={"tag:suite": "libcloud"})
    assert [n.id for n in by_filter] == [node.id]
    user_data = driver.connection.request(
        "/",
        params={
            "Action": "DescribeInstanceAttribute",
            "InstanceId": node.id,
            "Attribute": "userData",
        },
    ).object
    encoded = user_data.findtext(
        "{http://ec2.amazonaws.com/doc/2016-11-15/}userData/"
        "{http://ec2.amazonaws.com/doc/2016-11-15/}value"
    )
    assert base64.b64decode(encoded) == b"#!/bin/sh\necho libcloud\n"

    # Tags (libcloud numbers them from 0: Tag.0.Key=…).
    assert driver.ex_create_tags(web, {"role": "frontend", "env": "test"}) is True
    assert driver.ex_describe_tags(web) == {
        "Name": "lc-web",
        "suite": "libcloud",
        "role": "frontend",
        "env": "test",
    }
    assert driver.ex_delete_tags(web, {"env": "test"}) is True
    assert "env" not in driver.ex_describe_tags(web)

    # An elastic IP on the node, seen by list_nodes' DescribeAddresses.
    address = driver.ex_allocate_address(domain="vpc")
    assert address.ip and address.extra["allocation_id"].startswith("eipalloc-")
    assert driver.ex_associate_address_with_node(web, address, domain="vpc")
    assert driver.ex_describe_addresses([web]) == {node.id: [address.ip]}
    assert address.ip in driver.list_nodes(ex_node_ids=[node.id])[0].public_ips
    (associated,) = driver.ex_describe_all_addresses(only_associated=True)
    assert (associated.ip, associated.instance_id) == (address.ip, node.id)
    assert associated.extra["association_id"].startswith("eipassoc-")
    assert driver.ex_disassociate_address(associated, domain="vpc") is True
    assert driver.ex_release_address(address, domain="vpc") is True
    assert driver.ex_describe_all_addresses() == []

    # A volume: create (libcloud names it with a tag), attach, detach, snapshot, delete.
    volume = driver.create_volume(2, "lc-data", location=locations[0], ex_volume_type="gp3")
    assert volume.id.startswith("vol-") and volume.size == 2
    assert volume.extra["tags"] == {"Name": "lc-data"}
    _volume_state(driver, volume.id, StorageVolumeState.AVAILABLE)
    assert driver.attach_volume(web, volume, "/dev/sdf") is True
    attached = _volume_state(driver, volume.id, StorageVolumeState.INUSE)
    assert attached.extra["instance_id"] == node.id and attached.name == "lc-data"
    assert [v.id for v in driver.list_volumes(node=web)] == [volume.id]
    assert driver.detach_volume(volume) is True
    _volume_state(driver, volume.id, StorageVolumeState.AVAILABLE)
    snapshot = driver.create_volume_snapshot(volume, name="lc-data-1")
    assert snapshot.id.startswith("snap-") and snapshot.size == 2
    assert [s.id for s in driver.list_volume_snapshots(volume)] == [snapshot.id]
    assert driver.destroy_volume_snapshot(snapshot) is True
    assert driver.destroy_volume(volume) is True
    assert driver.list_volumes() == []

    # Lifecycle.
    assert driver.reboot_node(web) is True
    assert driver.stop_node(nodes[other.id]) is True
    _node_state(driver, other.id, NodeState.STOPPED)  # stopping first, as on EC2
    assert driver.start_node(nodes[other.id]) is True
    driver.wait_until_running(
        [nodes[other.id]], wait_period=0.2, timeout=30, ssh_interface="private_ips"
    )
    assert driver.destroy_node(web) is True
    assert driver.destroy_node(nodes[other.id]) is True
    for gone in (node.id, other.id):  # shutting down first, as on EC2
        _node_state(driver, gone, NodeState.TERMINATED)
    assert driver.delete_key_pair(driver.get_key_pair("lc-key")) is True
    assert driver.ex_delete_security_group_by_id(group_id) is True

    # Every request was a GET signed the way this driver was told to sign.
    assert {(method, scheme) for method, _, scheme in wire} == {("GET", signature_version)}
    assert {"DescribeAddresses", "CreateTags", "RebootInstances"} <= {a for _, a, _ in wire}


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
