"""Elastic IPs, security groups, network interfaces and the VPC view, with boto3 and the aws cli."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_first_actions import error_of


@pytest.fixture(scope="module")
def ami(ec2) -> str:
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["alpine-*"]}])["Images"]
    return images[0]["ImageId"]


def _running(ec2, ami: str, **kwargs) -> str:
    (instance,) = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **kwargs)["Instances"]
    ec2.get_waiter("instance_running").wait(
        InstanceIds=[instance["InstanceId"]], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return instance["InstanceId"]


def _instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_elastic_ip_lifecycle(gateway, ec2, ami):
    instance_id = _running(ec2, ami)
    allocated = ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    allocation_id, public_ip = allocated["AllocationId"], allocated["PublicIp"]
    assert allocation_id.startswith("eipalloc-") and public_ip.startswith("198.51.100.")
    (listed,) = ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"]
    assert listed["PublicIp"] == public_ip and "InstanceId" not in listed
    assert listed["Tags"] == [{"Key": "k", "Value": "v"}]

    association_id = ec2.associate_address(AllocationId=allocation_id, InstanceId=instance_id)[
        "AssociationId"
    ]
    instance = _instance(ec2, instance_id)
    assert instance["PublicIpAddress"] == public_ip
    assert instance["PrivateIpAddress"].startswith("10.0.0.")
    (eni,) = instance["NetworkInterfaces"]
    assert eni["Association"]["PublicIp"] == public_ip
    by_instance = ec2.describe_addresses(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["Addresses"]
    assert [a["AssociationId"] for a in by_instance] == [association_id]
    assert by_instance[0]["PrivateIpAddress"] == instance["PrivateIpAddress"]
    assert by_instance[0]["NetworkInterfaceId"] == eni["NetworkInterfaceId"]
    # a second VM cannot take it without AllowReassociation
    other_id = _running(ec2, ami)
    with pytest.raises(ClientError) as err:
        ec2.associate_address(AllocationId=allocation_id, InstanceId=other_id)
    assert error_of(err) == ("Resource.AlreadyAssociated", 400)
    with pytest.raises(ClientError) as err:
        ec2.release_address(AllocationId=allocation_id)
    assert error_of(err) == ("InvalidIPAddress.InUse", 400)
    ec2.associate_address(AllocationId=allocation_id, InstanceId=other_id, AllowReassociation=True)
    assert _instance(ec2, instance_id).get("PublicIpAddress") is None
    assert _instance(ec2, other_id)["PublicIpAddress"] == public_ip

    ec2.disassociate_address(AssociationId=association_id)
    assert _instance(ec2, other_id).get("PublicIpAddress") is None
    with pytest.raises(ClientError) as err:
        ec2.disassociate_address(AssociationId=association_id)
    assert error_of(err) == ("InvalidAssociationID.NotFound", 400)
    ec2.release_address(AllocationId=allocation_id)
    with pytest.raises(ClientError) as err:
        ec2.describe_addresses(AllocationIds=[allocation_id])
    assert error_of(err) == ("InvalidAllocationID.NotFound", 400)
    ec2.terminate_instances(InstanceIds=[instance_id, other_id])


def test_elastic_ip_errors_change_nothing(ec2):
    before = ec2.describe_addresses()["Addresses"]
    for call, kwargs, code in (
        (ec2.release_address, {"AllocationId": "eipalloc-zz"}, "InvalidAllocationID.Malformed"),
        (
            ec2.release_address,
            {"AllocationId": "eipalloc-0000ffff"},
            "InvalidAllocationID.NotFound",
        ),
        (ec2.release_address, {"PublicIp": "203.0.113.9"}, "InvalidAddress.NotFound"),
        (ec2.allocate_address, {"DryRun": True}, "DryRunOperation"),
        (ec2.allocate_address, {"Address": "10.9.9.9"}, "AddressLimitExceeded"),
        (
            ec2.associate_address,
            {"AllocationId": "eipalloc-0000ffff", "InstanceId": "i-0000ffff"},
            "InvalidAllocationID.NotFound",
        ),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err)[0] == code, (call, kwargs)
    assert ec2.describe_addresses()["Addresses"] == before


def test_aws_cli_addresses(gateway):
    allocated = gateway.aws_json("ec2", "allocate-address", "--domain", "vpc")
    listed = gateway.aws_json(
        "ec2", "describe-addresses", "--filters", f"Name=public-ip,Values={allocated['PublicIp']}"
    )
    assert [a["AllocationId"] for a in listed["Addresses"]] == [allocated["AllocationId"]]
    gateway.aws_json("ec2", "release-address", "--allocation-id", allocated["AllocationId"])
