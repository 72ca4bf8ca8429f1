"""Issue 5 acceptance: volumes, snapshots, Elastic IPs, security groups and the VPC view
driven by boto3 and the aws cli; a second user sees and can change none of it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_first_actions import error_of
from tests.e2e.test_network import _instance

WAIT = {"Delay": 1, "MaxAttempts": 30}


def test_one_tenant_builds_another_sees_nothing(gateway, ec2):
    # VPC view: pick the subnet and launch into it, in a security group made with the cli.
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    subnet = subnets["Subnets"][0]
    group_id = gateway.aws_json(
        "ec2", "create-security-group", "--group-name", "app", "--description", "app tier"
    )["GroupId"]
    gateway.aws_json(
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        group_id,
        "--protocol",
        "tcp",
        "--port",
        "443",
        "--cidr",
        "0.0.0.0/0",
    )
    gateway.aws_json(
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        group_id,
        "--ip-permissions",
        "IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]",
    )
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["alpine-*"]}])["Images"][0]
    (launched,) = ec2.run_instances(
        ImageId=ami["ImageId"],
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet["SubnetId"],
        SecurityGroupIds=[group_id],
    )["Instances"]
    instance_id = launched["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    instance = _instance(ec2, instance_id)
    assert (instance["SubnetId"], instance["VpcId"]) == (subnet["SubnetId"], vpc["VpcId"])
    assert instance["SecurityGroups"] == [{"GroupId": group_id, "GroupName": "app"}]

    # a volume (cli), attached (boto3), snapshotted, restored
    volume_id = gateway.aws_json(
        "ec2", "create-volume", "--size", "1", "--availability-zone", subnet["AvailabilityZone"]
    )["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/vdb")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    snapshot_id = gateway.aws_json("ec2", "create-snapshot", "--volume-id", volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig=WAIT)
    restored_id = ec2.create_volume(
        SnapshotId=snapshot_id, AvailabilityZone=subnet["AvailabilityZone"]
    )["VolumeId"]

    # an Elastic IP (cli), associated (boto3), visible on the instance
    allocated = gateway.aws_json("ec2", "allocate-address", "--domain", "vpc")
    association_id = ec2.associate_address(
        AllocationId=allocated["AllocationId"], InstanceId=instance_id
    )["AssociationId"]
    assert _instance(ec2, instance_id)["PublicIpAddress"] == allocated["PublicIp"]
    shown = gateway.aws(
        "ec2",
        "describe-instances",
        "--instance-ids",
        instance_id,
        "--query",
        "Reservations[].Instances[].PublicIpAddress",
        "--output",
        "text",
    )
    assert shown.stdout.split() == [allocated["PublicIp"]]
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    assert [n["Association"]["PublicIp"] for n in enis] == [allocated["PublicIp"]]

    before = {
        "volumes": ec2.describe_volumes()["Volumes"],
        "snapshots": ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"],
        "addresses": ec2.describe_addresses()["Addresses"],
        "groups": ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"],
        "instance": _instance(ec2, instance_id),
    }

    # the other tenant
    other_key = gateway.new_user("eve", group=1)
    eve = gateway.client(other_key)
    assert eve.describe_volumes()["Volumes"] == []
    assert snapshot_id not in [s["SnapshotId"] for s in eve.describe_snapshots()["Snapshots"]]
    assert eve.describe_addresses()["Addresses"] == []
    assert group_id not in [g["GroupId"] for g in eve.describe_security_groups()["SecurityGroups"]]
    assert eve.describe_network_interfaces()["NetworkInterfaces"] == []
    assert eve.describe_tags()["Tags"] == []
    tag = [{"Key": "owned", "Value": "eve"}]
    for call, kwargs, code in (
        (eve.describe_volumes, {"VolumeIds": [volume_id]}, "InvalidVolume.NotFound"),
        (eve.delete_volume, {"VolumeId": restored_id}, "InvalidVolume.NotFound"),
        (eve.detach_volume, {"VolumeId": volume_id}, "InvalidVolume.NotFound"),
        (eve.create_snapshot, {"VolumeId": volume_id}, "InvalidVolume.NotFound"),
        (eve.describe_snapshots, {"SnapshotIds": [snapshot_id]}, "InvalidSnapshot.NotFound"),
        (eve.delete_snapshot, {"SnapshotId": snapshot_id}, "InvalidSnapshot.NotFound"),
        (
            eve.create_volume,
            {"SnapshotId": snapshot_id, "AvailabilityZone": subnet["AvailabilityZone"]},
            "InvalidSnapshot.NotFound",
        ),
        (
            eve.describe_addresses,
            {"AllocationIds": [allocated["AllocationId"]]},
            "InvalidAllocationID.NotFound",
        ),
        (
            eve.release_address,
            {"AllocationId": allocated["AllocationId"]},
            "InvalidAllocationID.NotFound",
        ),
        (eve.release_address, {"PublicIp": allocated["PublicIp"]}, "InvalidAddress.NotFound"),
        (
            eve.disassociate_address,
            {"AssociationId": association_id},
            "InvalidAssociationID.NotFound",
        ),
        (eve.describe_security_groups, {"GroupIds": [group_id]}, "InvalidGroup.NotFound"),
        (eve.delete_security_group, {"GroupId": group_id}, "InvalidGroup.NotFound"),
        (
            eve.authorize_security_group_ingress,
            {"GroupId": group_id, "IpProtocol": "tcp", "FromPort": 1, "ToPort": 1},
            "InvalidGroup.NotFound",
        ),
        (
            eve.describe_network_interfaces,
            {"NetworkInterfaceIds": [enis[0]["NetworkInterfaceId"]]},
            "InvalidNetworkInterfaceID.NotFound",
        ),
        (eve.create_tags, {"Resources": [volume_id], "Tags": tag}, "InvalidVolume.NotFound"),
        (eve.create_tags, {"Resources": [snapshot_id], "Tags": tag}, "InvalidSnapshot.NotFound"),
        (eve.create_tags, {"Resources": [group_id], "Tags": tag}, "InvalidGroup.NotFound"),
        (
            eve.create_tags,
            {"Resources": [allocated["AllocationId"]], "Tags": tag},
            "InvalidAllocationID.NotFound",
        ),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err)[0] == code, (call, kwargs)
    # eve's own instance cannot take alice's address or volume either
    (eves,) = eve.run_instances(ImageId=ami["ImageId"], MinCount=1, MaxCount=1)["Instances"]
    eve.get_waiter("instance_running").wait(InstanceIds=[eves["InstanceId"]], WaiterConfig=WAIT)
    for call, kwargs, code in (
        (
            eve.associate_address,
            {"AllocationId": allocated["AllocationId"], "InstanceId": eves["InstanceId"]},
            "InvalidAllocationID.NotFound",
        ),
        (
            eve.attach_volume,
            {"VolumeId": restored_id, "InstanceId": eves["InstanceId"], "Device": "/dev/sdf"},
            "InvalidVolume.NotFound",
        ),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err)[0] == code, (call, kwargs)
    failed = gateway.aws("ec2", "delete-volume", "--volume-id", volume_id, key=other_key)
    assert failed.returncode != 0 and "InvalidVolume.NotFound" in failed.stderr
    eve.terminate_instances(InstanceIds=[eves["InstanceId"]])

    after = {
        "volumes": ec2.describe_volumes()["Volumes"],
        "snapshots": ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"],
        "addresses": ec2.describe_addresses()["Addresses"],
        "groups": ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"],
        "instance": _instance(ec2, instance_id),
    }
    assert after == before

    # and the owner takes it all down again
    ec2.disassociate_address(AssociationId=association_id)
    gateway.aws_json("ec2", "release-address", "--allocation-id", allocated["AllocationId"])
    ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    for done in (volume_id, restored_id):
        gateway.aws_json("ec2", "delete-volume", "--volume-id", done)
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    ec2.delete_security_group(GroupId=group_id)
    addresses = ec2.describe_addresses()["Addresses"]
    assert allocated["AllocationId"] not in [a["AllocationId"] for a in addresses]
    assert volume_id not in [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]]
