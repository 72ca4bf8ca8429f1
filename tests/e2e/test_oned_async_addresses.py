"""Elastic IPs on oned's asynchronous NIC detach and network delete (issue 15).

oned accepts `one.vm.detachnic` and `one.vn.delete` at once and finishes them later (the VM
in HOTPLUG_NIC, the reservation in LOCK_DELETE). EC2 clients release right after they
disassociate, and move an address between running instances: those calls must work. The
embedded OpenNebula detaches at once and deletes after `Lifecycle.delete` seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from ec2gw.ec2 import ids
from ec2gw.one import documents
from tests.e2e.conftest import eventually
from tests.e2e.test_first_actions import error_of
from tests.e2e.test_network import _instance, _running


@contextmanager
def slow_deletes(gateway, seconds: float = 1.0) -> Iterator[None]:
    """On the embedded OpenNebula, deletes take `seconds` (oned: its drivers' time)."""
    sim = gateway.backend.sim
    if sim is None:
        yield
        return
    before = sim.cloud.lifecycle
    sim.cloud.lifecycle = dataclasses.replace(before, delete=seconds)
    try:
        yield
    finally:
        sim.cloud.lifecycle = before


def _vm(gateway, instance_id: str) -> documents.Element:
    return documents.parse(gateway.one("one.vm.info", ids.INSTANCE.decode(instance_id)))


def test_released_address_is_gone_at_once(gateway, ec2):
    allocation = ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "k", "Value": "v"}]}],
    )["AllocationId"]
    with slow_deletes(gateway):
        ec2.release_address(AllocationId=allocation)
        with pytest.raises(ClientError) as err:
            ec2.release_address(AllocationId=allocation)
        assert error_of(err) == ("InvalidAllocationID.NotFound", 400)
        with pytest.raises(ClientError) as err:
            ec2.describe_addresses(AllocationIds=[allocation])
        assert error_of(err) == ("InvalidAllocationID.NotFound", 400)
        listed = [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]]
        assert allocation not in listed
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [allocation]}])
        assert tags["Tags"] == []


def _outcome(call, **kwargs) -> str:
    try:
        call(**kwargs)
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "ok"


def test_address_released_twice_at_once(gateway, ec2):
    """A retried release racing the first (oned: the second one.vn.delete is refused in
    LOCK_DELETE) is EC2's answer for an unknown allocation, not InvalidIPAddress.InUse."""
    allocations = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(4)]
    clients = [gateway.client(), gateway.client()]
    with slow_deletes(gateway, 0.2), ThreadPoolExecutor(8) as pool:
        outcomes = [
            sorted(pool.map(lambda c, a=a: _outcome(c.release_address, AllocationId=a), clients))
            for a in allocations
        ]
    assert outcomes == [["InvalidAllocationID.NotFound", "ok"]] * len(allocations)


def test_release_right_after_disassociate(gateway, ec2, ami):
    """What libcloud, Terraform and Ansible do: oned still holds the lease while the VM is
    in HOTPLUG_NIC, so the release was refused (InvalidIPAddress.InUse)."""
    instance_id = _running(ec2, ami)
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    association = ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)[
        "AssociationId"
    ]
    ec2.disassociate_address(AssociationId=association)
    ec2.release_address(AllocationId=allocation)
    assert view_elastic_nic(gateway, instance_id) is None
    ec2.terminate_instances(InstanceIds=[instance_id])


def view_elastic_nic(gateway, instance_id: str) -> documents.Element | None:
    vm = _vm(gateway, instance_id)
    return next(
        (n for n in vm.iterfind("TEMPLATE/NIC") if documents.text(n, "EC2_ELASTIC_IP") == "YES"),
        None,
    )


def test_reassociation_between_running_instances(gateway, ec2, ami):
    """The detach from the first instance is asynchronous: the attach to the second could
    not get the lease (oned: 'Cannot get IP/MAC lease from virtual network N')."""
    first, second = _running(ec2, ami), _running(ec2, ami)
    allocation = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=first)
    moved = ec2.associate_address(
        AllocationId=allocation["AllocationId"], InstanceId=second, AllowReassociation=True
    )
    (address,) = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"]
    assert address["InstanceId"] == second
    assert address["AssociationId"] == moved["AssociationId"]
    assert "PublicIpAddress" not in _instance(ec2, first)
    ec2.disassociate_address(AssociationId=moved["AssociationId"])
    ec2.release_address(AllocationId=allocation["AllocationId"])
    ec2.terminate_instances(InstanceIds=[first, second])


def test_elastic_ip_is_in_the_instances_groups(gateway, ec2, ami):
    """oned puts a reservation in group 0 (allow all): the public address's NIC must be in
    the instance's groups only, as EC2 filters traffic to the public address."""
    group_id = ec2.create_security_group(
        GroupName=f"eip-{gateway.backend.user_name('sg')}", Description="only ssh"
    )["GroupId"]
    instance_id = _running(ec2, ami, SecurityGroupIds=[group_id])
    primary_groups = {g["GroupId"] for g in _instance(ec2, instance_id)["SecurityGroups"]}
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    reservation = documents.parse(gateway.one("one.vn.info", ids.ALLOCATION.decode(allocation)))
    assert "0" not in documents.text(reservation, "TEMPLATE/SECURITY_GROUPS").split(",")
    association = ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)[
        "AssociationId"
    ]
    vm = _vm(gateway, instance_id)
    primary, elastic = vm.findall("TEMPLATE/NIC")
    assert documents.text(elastic, "EC2_ELASTIC_IP") == "YES"
    assert set(documents.text(elastic, "SECURITY_GROUPS").split(",")) == set(
        documents.text(primary, "SECURITY_GROUPS").split(",")
    )
    assert {g["GroupId"] for g in _instance(ec2, instance_id)["SecurityGroups"]} == primary_groups
    ec2.disassociate_address(AssociationId=association)
    ec2.release_address(AllocationId=allocation)
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_allocate_a_given_address(gateway, ec2):
    """oned reserves a given IP only with the AR_ID of its address range."""
    first = ec2.allocate_address(Domain="vpc")
    ec2.release_address(AllocationId=first["AllocationId"])

    def again() -> dict | None:  # the lease is back in the public network once deleted
        try:
            return ec2.allocate_address(Domain="vpc", Address=first["PublicIp"])
        except ClientError as err:
            assert err.response["Error"]["Code"] == "InvalidIPAddress.InUse"
            return None

    chosen = eventually(again, timeout=15)
    assert chosen["PublicIp"] == first["PublicIp"]
    with pytest.raises(ClientError) as err:
        ec2.allocate_address(Domain="vpc", Address=first["PublicIp"])
    assert error_of(err) == ("InvalidIPAddress.InUse", 400)
    with pytest.raises(ClientError) as err:
        ec2.allocate_address(Domain="vpc", Address="192.0.2.250")
    assert error_of(err) == ("InvalidAddress.NotFound", 400)
    ec2.release_address(AllocationId=chosen["AllocationId"])
