"""Security group 0: what an instance shows is what OpenNebula enforces on its NIC.

oned adds a network's SECURITY_GROUPS to every NIC on it, and `one.vn.allocate` puts
OpenNebula's group 0 (`default`, all traffic allowed in) into every network's. So an
instance is in the groups its NIC asks for plus its network's: DescribeInstances shows
all of them, RunInstances without groups asks for group 0 itself, the seed takes 0 out of
its networks (the operator's fix), and `ec2gw check` warns about subnets still carrying it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from ec2gw.ec2 import ids
from ec2gw.one import documents

DEFAULT_GROUP = "sg-00000000"
RUN = secrets.token_hex(3)


def _network(gateway, name: str, keep_group_0: bool) -> int:
    """A network of this run that every user may use, with or without group 0 in its
    SECURITY_GROUPS (taken out as an operator would: one.vn.update in merge mode)."""
    octet = secrets.randbelow(200) + 20
    template = (
        f'NAME = "{name}-{RUN}"\nVN_MAD = "dummy"\nBRIDGE = "br{octet}"\n'
        f'NETWORK_ADDRESS = "10.{octet}.0.0"\nNETWORK_MASK = "255.255.255.0"\n'
        f'AR = [ TYPE = "IP4", IP = "10.{octet}.0.10", SIZE = "20" ]\n'
        'SECURITY_GROUPS = "0"'
    )
    vnet_id = gateway.one("one.vn.allocate", template, -1)
    gateway.one("one.vn.chmod", vnet_id, 1, 1, 0, 1, 0, 0, 1, 0, 0)
    if not keep_group_0:
        gateway.one("one.vn.update", vnet_id, 'SECURITY_GROUPS = ""', 1)
    return vnet_id


def _delete_network(gateway, vnet_id: int) -> None:
    """Delete it once the leases of the terminated instances are back (bounded wait)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            gateway.one("one.vn.delete", vnet_id)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                return  # left for the operator; its name says which run made it
            time.sleep(1)


@pytest.fixture(scope="module")
def networks(gateway) -> Iterator[dict[str, str]]:
    """Subnet ids: `open` keeps group 0 in its SECURITY_GROUPS, `closed` does not."""
    made = {
        "open": _network(gateway, "sg0-open", keep_group_0=True),
        "closed": _network(gateway, "sg0-closed", keep_group_0=False),
    }
    yield {kind: ids.SUBNET.encode(vnet_id) for kind, vnet_id in made.items()}
    for vnet_id in made.values():
        _delete_network(gateway, vnet_id)


@pytest.fixture(scope="module")
def restrictive(ec2) -> str:
    """A group letting in only SSH from 10.0.0.0/8."""
    group = ec2.create_security_group(GroupName=f"ssh-only-{RUN}", Description="SSH from 10/8")
    ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            }
        ],
    )
    return group["GroupId"]


@pytest.fixture(scope="module")
def ami(ec2) -> str:
    return ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def _nic_groups(gateway, instance_id: str) -> list[str]:
    """The groups of the instance's NIC as OpenNebula reports them (read as oneadmin)."""
    vm = documents.parse(gateway.one("one.vm.info", ids.INSTANCE.decode(instance_id)))
    (nic,) = vm.iterfind("TEMPLATE/NIC")
    value = documents.text(nic, "SECURITY_GROUPS")
    return sorted(ids.SECURITY_GROUP.encode(int(g)) for g in value.split(",") if g)


def _launch(ec2, gateway, ami: str, **params: object) -> tuple[str, list[list[str]]]:
    """Launch one instance; its id and the group ids RunInstances, DescribeInstances and
    DescribeNetworkInterfaces show, and its NIC's in OpenNebula, each sorted."""
    launched = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **params)["Instances"][0]
    instance_id = launched["InstanceId"]
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    (interface,) = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    shown = [
        sorted(g["GroupId"] for g in launched["SecurityGroups"]),
        sorted(g["GroupId"] for g in described["Instances"][0]["SecurityGroups"]),
        sorted(g["GroupId"] for g in interface["Groups"]),
        _nic_groups(gateway, instance_id),
    ]
    ec2.terminate_instances(InstanceIds=[instance_id])
    return instance_id, shown


def test_with_a_group_on_the_seeded_subnet_the_instance_is_in_exactly_that_group(
    ec2, gateway, ami, restrictive
):
    # The default subnet is the seed's network: group 0 was taken out of it.
    _, shown = _launch(ec2, gateway, ami, SecurityGroupIds=[restrictive])
    assert shown == [[restrictive]] * 4


def test_on_a_network_carrying_group_0_the_instance_shows_every_group_its_nic_has(
    ec2, gateway, ami, restrictive, networks
):
    _, shown = _launch(ec2, gateway, ami, SubnetId=networks["open"], SecurityGroupIds=[restrictive])
    nic = shown[-1]
    assert restrictive in nic
    if gateway.backend.real:  # oned adds the network's groups to the NIC
        assert nic == sorted([DEFAULT_GROUP, restrictive])
    assert shown == [nic] * 4  # nothing OpenNebula applies is hidden


@pytest.mark.parametrize("where", ["closed", "open", "seeded"])
def test_without_groups_the_instance_is_in_group_0(ec2, gateway, ami, networks, where):
    subnet = {} if where == "seeded" else {"SubnetId": networks[where]}
    _, shown = _launch(ec2, gateway, ami, **subnet)
    assert shown == [[DEFAULT_GROUP]] * 4


def test_the_elastic_ips_nic_groups_show_on_the_instance(ec2, gateway, ami, restrictive):
    # The Elastic IP's NIC is on a reservation network, to which oned adds group 0 (as to
    # every network it allocates): AllocateAddress takes 0 out of the reservation and
    # AssociateAddress gives the NIC the primary NIC's groups, so the public address is
    # filtered by the instance's own groups (read back as oneadmin: what oned enforces).
    (launched,) = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, SecurityGroupIds=[restrictive]
    )["Instances"]
    instance_id = launched["InstanceId"]
    ec2.get_waiter("instance_running").wait(
        InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    allocation_id = ec2.allocate_address(Domain="vpc")["AllocationId"]
    association_id = ec2.associate_address(AllocationId=allocation_id, InstanceId=instance_id)[
        "AssociationId"
    ]
    try:
        vm = documents.parse(gateway.one("one.vm.info", ids.INSTANCE.decode(instance_id)))

        def groups(nic: documents.Element) -> list[str]:
            listed = documents.text(nic, "SECURITY_GROUPS").split(",")
            return sorted({ids.SECURITY_GROUP.encode(int(g)) for g in listed if g})

        elastic = [n for n in vm.iterfind("TEMPLATE/NIC") if documents.text(n, "EC2_ELASTIC_IP")]
        primary = [
            n for n in vm.iterfind("TEMPLATE/NIC") if not documents.text(n, "EC2_ELASTIC_IP")
        ]
        assert len(elastic) == 1 and len(primary) == 1
        assert groups(elastic[0]) == groups(primary[0]) == [restrictive]
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"
        ][0]
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [restrictive]
        (shown,) = instance["NetworkInterfaces"]
        assert [g["GroupId"] for g in shown["Groups"]] == [restrictive]
    finally:
        ec2.disassociate_address(AssociationId=association_id)
        _release(ec2, allocation_id)
        ec2.terminate_instances(InstanceIds=[instance_id])


def _release(ec2, allocation_id: str) -> None:
    """Release the address once oned has detached its NIC (a hotplug it finishes later)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            ec2.release_address(AllocationId=allocation_id)
            return
        except ClientError as err:
            if err.response["Error"]["Code"] != "InvalidIPAddress.InUse":
                raise
            assert time.monotonic() < deadline, "the address stayed in use"
            time.sleep(1)


def _check(gateway) -> list[str]:
    """The WARNING lines of `ec2gw check` on this OpenNebula."""
    settings = gateway.settings
    env = {
        **os.environ,
        "EC2GW_OPENNEBULA_ENDPOINT": settings.opennebula.endpoint,
        "EC2GW_OPENNEBULA_SERVER_USER": settings.opennebula.server_user,
        "EC2GW_OPENNEBULA_SERVER_SECRET": settings.opennebula.server_secret,
        "EC2GW_GATEWAY_PUBLIC_NETWORK": settings.gateway.public_network,
    }
    done = subprocess.run(
        [sys.executable, "-m", "ec2gw.cli", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ok      OpenNebula" in done.stdout, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("WARNING")]


def test_check_warns_about_a_network_carrying_group_0_until_it_is_taken_out(gateway):
    default = documents.parse(gateway.one("one.secgroup.info", 0))
    inbound = [
        r for r in default.iterfind("TEMPLATE/RULE") if documents.text(r, "RULE_TYPE") == "INBOUND"
    ]
    if not any(documents.text(r, "PROTOCOL") == "ALL" and r.find("IP") is None for r in inbound):
        pytest.skip("group 0 of this OpenNebula does not allow all inbound traffic")
    vnet_id = _network(gateway, "sg0-check", keep_group_0=True)
    try:
        name = f"network 'sg0-check-{RUN}' ({ids.SUBNET.encode(vnet_id)})"
        (warning,) = [w for w in _check(gateway) if name in w]
        assert "security group 0 'default', which allows all inbound traffic" in warning
        assert f"""one.vn.update({vnet_id}, 'SECURITY_GROUPS=""', 1)""" in warning
        # The fix the warning names, exactly.
        gateway.one("one.vn.update", vnet_id, 'SECURITY_GROUPS=""', 1)
        assert not [w for w in _check(gateway) if name in w]
    finally:
        _delete_network(gateway, vnet_id)


def test_the_seeded_cloud_gives_a_clean_check(gateway):
    # The seed takes group 0 out of its networks: nothing to warn about them.
    assert not [w for w in _check(gateway) if "network 'private'" in w]
    for vnet in documents.parse(gateway.one("one.vnpool.info", -2, -1, -1)).iterfind("VNET"):
        if documents.text(vnet, "NAME") in ("private", "public"):
            assert documents.text(vnet, "TEMPLATE/SECURITY_GROUPS") == ""
