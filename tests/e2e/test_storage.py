"""EBS volumes and snapshots on OpenNebula images, with boto3 and the aws cli."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import eventually
from tests.e2e.test_first_actions import error_of
from tests.e2e.test_network import _instance, _running

WAIT = {"Delay": 1, "MaxAttempts": 30}


def test_volume_snapshot_lifecycle(ec2, ami, zone):
    instance_id = _running(ec2, ami)
    created = ec2.create_volume(
        Size=2,
        AvailabilityZone=zone,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}],
    )
    volume_id = created["VolumeId"]
    assert volume_id.startswith("vol-") and created["Size"] == 2
    assert created["State"] in ("creating", "available")
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert (volume["AvailabilityZone"], volume["VolumeType"]) == (zone, "gp3")
    assert volume["Tags"] == [{"Key": "Name", "Value": "data"}]

    attached = ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    assert attached["State"] == "attaching" and attached["Device"] == "/dev/sdf"
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    (attachment,) = volume["Attachments"]
    assert (attachment["InstanceId"], attachment["Device"]) == (instance_id, "/dev/sdf")
    by_instance = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["Volumes"]
    assert [v["VolumeId"] for v in by_instance] == [volume_id]
    devices = {
        m["DeviceName"]: m["Ebs"] for m in _instance(ec2, instance_id)["BlockDeviceMappings"]
    }
    assert devices["/dev/sdf"]["VolumeId"] == volume_id
    assert devices["/dev/sdf"]["DeleteOnTermination"] is False
    by_volume = ec2.describe_instances(
        Filters=[{"Name": "block-device-mapping.volume-id", "Values": [volume_id]}]
    )
    assert [i["InstanceId"] for r in by_volume["Reservations"] for i in r["Instances"]] == [
        instance_id
    ]
    with pytest.raises(ClientError) as err:
        ec2.delete_volume(VolumeId=volume_id)
    assert error_of(err) == ("VolumeInUse", 400)
    with pytest.raises(ClientError) as err:
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdg")
    assert error_of(err) == ("VolumeInUse", 400)

    modified = ec2.modify_volume(VolumeId=volume_id, Size=3)["VolumeModification"]
    assert (modified["OriginalSize"], modified["TargetSize"]) == (2, 3)
    # the disk is resized by a hotplug, as EC2 modifies a volume after answering
    eventually(lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Size"] == 3)
    with pytest.raises(ClientError) as err:
        ec2.modify_volume(VolumeId=volume_id, Size=1)
    assert error_of(err) == ("InvalidParameterValue", 400)

    snapshot = ec2.create_snapshot(VolumeId=volume_id, Description="nightly")
    snapshot_id = snapshot["SnapshotId"]
    assert snapshot_id.startswith("snap-") and snapshot["VolumeId"] == volume_id
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig=WAIT)
    (described,) = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert described["Description"] == "nightly" and described["VolumeSize"] == 3
    mine = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert snapshot_id in [s["SnapshotId"] for s in mine]

    restored = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=zone)
    assert restored["SnapshotId"] == snapshot_id and restored["Size"] == 3
    with pytest.raises(ClientError) as err:
        ec2.modify_volume(VolumeId=restored["VolumeId"], Size=4)
    assert error_of(err) == ("IncorrectState", 400)
    ec2.get_waiter("volume_available").wait(VolumeIds=[restored["VolumeId"]], WaiterConfig=WAIT)
    copied = ec2.copy_snapshot(SourceSnapshotId=snapshot_id, SourceRegion=ec2.meta.region_name)
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[copied["SnapshotId"]], WaiterConfig=WAIT)

    detached = ec2.detach_volume(VolumeId=volume_id)
    assert detached["State"] == "detaching" and detached["InstanceId"] == instance_id
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    with pytest.raises(ClientError) as err:
        ec2.detach_volume(VolumeId=volume_id)
    assert error_of(err) == ("IncorrectState", 400)
    detached_snapshot = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    for done in (volume_id, restored["VolumeId"]):
        ec2.delete_volume(VolumeId=done)
    for done in (snapshot_id, copied["SnapshotId"], detached_snapshot):
        ec2.delete_snapshot(SnapshotId=done)
    with pytest.raises(ClientError) as err:
        ec2.describe_volumes(VolumeIds=[volume_id])
    assert error_of(err) == ("InvalidVolume.NotFound", 400)
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_client_token_makes_one_volume(ec2, zone):
    first = ec2.create_volume(Size=1, AvailabilityZone=zone, ClientToken="vol-token-1")
    again = ec2.create_volume(Size=1, AvailabilityZone=zone, ClientToken="vol-token-1")
    assert again["VolumeId"] == first["VolumeId"]
    with pytest.raises(ClientError) as err:
        ec2.create_volume(Size=3, AvailabilityZone=zone, ClientToken="vol-token-1")
    assert error_of(err) == ("IdempotentParameterMismatch", 400)
    ec2.get_waiter("volume_available").wait(VolumeIds=[first["VolumeId"]], WaiterConfig=WAIT)
    ec2.delete_volume(VolumeId=first["VolumeId"])


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"Size": None}, "MissingParameter"),
        ({"Size": 0}, "InvalidParameterValue"),
        ({"AvailabilityZone": "mars-1a"}, "InvalidParameterValue"),
        ({"VolumeType": "floppy"}, "InvalidParameterValue"),
        ({"SnapshotId": "snap-0000ffff"}, "InvalidSnapshot.NotFound"),
        ({"SnapshotId": "snap-xyz"}, "InvalidSnapshotID.Malformed"),
        ({"DryRun": True}, "DryRunOperation"),
    ],
)
def test_create_volume_errors_change_nothing(ec2, zone, changes, code):
    before = ec2.describe_volumes()["Volumes"]
    request = {"Size": 1, "AvailabilityZone": zone, **changes}
    with pytest.raises(ClientError) as err:
        ec2.create_volume(**{k: v for k, v in request.items() if v is not None})
    assert error_of(err)[0] == code
    assert ec2.describe_volumes()["Volumes"] == before


def test_volume_ids_and_attach_errors(ec2, zone):
    for call in (ec2.delete_volume, ec2.detach_volume):
        with pytest.raises(ClientError) as err:
            call(VolumeId="vol-0000ffff")
        assert error_of(err) == ("InvalidVolume.NotFound", 400)
        with pytest.raises(ClientError) as err:
            call(VolumeId="vol-!")
        assert error_of(err) == ("InvalidVolumeID.Malformed", 400)
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    with pytest.raises(ClientError) as err:
        ec2.attach_volume(VolumeId=volume_id, InstanceId="i-0000ffff", Device="/dev/sdf")
    assert error_of(err) == ("InvalidInstanceID.NotFound", 400)
    with pytest.raises(ClientError) as err:
        ec2.attach_volume(VolumeId=volume_id, InstanceId="i-0000ffff", Device="floppy")
    assert error_of(err) == ("InvalidParameterValue", 400)
    status = ec2.describe_volume_status(VolumeIds=[volume_id])["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] in ("ok", "insufficient-data")
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    ec2.delete_volume(VolumeId=volume_id)  # as on EC2, once it is no longer creating


def test_aws_cli_volumes(gateway, zone):
    created = gateway.aws_json("ec2", "create-volume", "--size", "1", "--availability-zone", zone)
    listed = gateway.aws(
        "ec2",
        "describe-volumes",
        "--filters",
        "Name=size,Values=1",
        "--query",
        "Volumes[].VolumeId",
        "--output",
        "text",
    )
    assert created["VolumeId"] in listed.stdout.split()
    waited = gateway.aws("ec2", "wait", "volume-available", "--volume-ids", created["VolumeId"])
    assert waited.returncode == 0, waited.stderr
    gateway.aws_json("ec2", "delete-volume", "--volume-id", created["VolumeId"])


def test_tags_on_volumes_snapshots_groups_and_addresses(ec2, zone):
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    group_id = ec2.create_security_group(GroupName="tagged", Description="d")["GroupId"]
    allocation_id = ec2.allocate_address(Domain="vpc")["AllocationId"]
    resources = [volume_id, snapshot_id, group_id, allocation_id]
    ec2.create_tags(Resources=resources, Tags=[{"Key": "team", "Value": "storage"}])
    tagged = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["team"]}])["Tags"]
    assert {(t["ResourceId"], t["ResourceType"]) for t in tagged} == {
        (volume_id, "volume"),
        (snapshot_id, "snapshot"),
        (group_id, "security-group"),
        (allocation_id, "elastic-ip"),
    }
    by_tag = ec2.describe_volumes(Filters=[{"Name": "tag:team", "Values": ["stor*"]}])
    assert [v["VolumeId"] for v in by_tag["Volumes"]] == [volume_id]
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert group["Tags"] == [{"Key": "team", "Value": "storage"}]
    assert group["IpPermissionsEgress"], "rules survive a tag update"
    ec2.delete_tags(Resources=resources, Tags=[{"Key": "team"}])
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": ["team"]}])["Tags"] == []
    with pytest.raises(ClientError) as err:
        ec2.create_tags(Resources=["vol-0000ffff"], Tags=[{"Key": "a", "Value": "b"}])
    assert error_of(err) == ("InvalidVolume.NotFound", 400)
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    ec2.delete_volume(VolumeId=volume_id)
    ec2.delete_security_group(GroupId=group_id)
    ec2.release_address(AllocationId=allocation_id)


def test_libcloud_volumes_and_snapshots(gateway):
    """libcloud needs volumeId and size from CreateVolume, and tags the volume's name."""
    from libcloud.compute.types import StorageVolumeState

    from tests.clients.test_libcloud import REGION, _driver

    with gateway.variant(gateway__region_name=REGION) as us_east_1:
        driver = _driver(us_east_1, us_east_1.new_user("libcloud-storage"), "4")
        location = driver.list_locations()[0]
        image = next(i for i in driver.list_images(ex_owner="amazon") if "alpine" in i.name)
        size = {s.id: s for s in driver.list_sizes()}["t3.micro"]
        node = driver.create_node(name="lc-disk", size=size, image=image, location=location)
        driver.wait_until_running([node], wait_period=0.2, timeout=30, ssh_interface="private_ips")
        volume = driver.create_volume(1, "lc-data", location=location)
        assert volume.id.startswith("vol-") and volume.size == 1 and volume.name == "lc-data"
        assert [v.id for v in driver.list_volumes()] == [volume.id]
        eventually(lambda: driver.list_volumes()[0].state == StorageVolumeState.AVAILABLE)
        assert driver.attach_volume(node, volume, "/dev/sdf") is True
        snapshot = driver.create_volume_snapshot(volume, name="lc-snap")
        assert snapshot.id.startswith("snap-")
        assert [s.id for s in driver.list_volume_snapshots(volume)] == [snapshot.id]
        assert driver.detach_volume(volume) is True  # detaching, as on EC2
        eventually(lambda: driver.list_volumes()[0].state == StorageVolumeState.AVAILABLE)
        assert driver.destroy_volume_snapshot(snapshot) is True
        assert driver.destroy_volume(volume) is True
        assert driver.list_volumes() == []
        driver.destroy_node(node)
