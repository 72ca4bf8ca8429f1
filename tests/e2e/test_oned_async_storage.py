"""Volumes, snapshots and AMIs on oned's asynchronous image operations (issue 15).

`one.image.delete` leaves the image in DELETE until the datastore driver has removed it;
`one.image.clone` puts a volume in CLONE and the copy in LOCKED until it is copied. The
embedded OpenNebula deletes after `Lifecycle.delete` and copies after `Lifecycle.image`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import eventually
from tests.e2e.test_first_actions import error_of
from tests.e2e.test_network import _running


@contextmanager
def slow(gateway, **seconds: float) -> Iterator[None]:
    """On the embedded OpenNebula, these driver steps take `seconds` (oned: its own)."""
    sim = gateway.backend.sim
    if sim is None:
        yield
        return
    before = sim.cloud.lifecycle
    sim.cloud.lifecycle = dataclasses.replace(before, **seconds)
    try:
        yield
    finally:
        sim.cloud.lifecycle = before


def _available(ec2, volume_id: str) -> None:
    eventually(
        lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    )


def _completed(ec2, snapshot_id: str) -> None:
    eventually(
        lambda: (
            ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
            == "completed"
        )
    )


def _refused(call, cleanup, key: str, **kwargs) -> bool:
    """IncorrectState, or done (cleaned up): on a real oned the copy may end meanwhile."""
    try:
        done = call(**kwargs)
    except ClientError as err:
        assert err.response["Error"]["Code"] == "IncorrectState", err.response["Error"]
        return True
    eventually(lambda: _deleted(cleanup, **{key: done[key]}))
    return False


def _error(call, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return error_of(err)


TAG = [{"Key": "async", "Value": "delete"}]


def test_deleted_images_are_gone_at_once(gateway, ec2, zone):
    """After DeleteVolume, DeleteSnapshot, DeregisterImage the image sat in DELETE for a
    moment: listed as 'deleting'/'error'/'deregistered', found by id, tagged."""
    volume_id = ec2.create_volume(
        Size=1,
        AvailabilityZone=zone,
        TagSpecifications=[{"ResourceType": "volume", "Tags": TAG}],
    )["VolumeId"]
    _available(ec2, volume_id)
    snapshot_id = ec2.create_snapshot(
        VolumeId=volume_id, TagSpecifications=[{"ResourceType": "snapshot", "Tags": TAG}]
    )["SnapshotId"]
    _completed(ec2, snapshot_id)
    image_id = ec2.register_image(
        Name=gateway.backend.user_name("async-delete"),
        ImageLocation="/var/tmp/async.qcow2",
        TagSpecifications=[{"ResourceType": "image", "Tags": TAG}],
    )["ImageId"]
    eventually(lambda: ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] != "pending")
    with slow(gateway, delete=1.0):
        ec2.delete_snapshot(SnapshotId=snapshot_id)
        ec2.delete_volume(VolumeId=volume_id)
        ec2.deregister_image(ImageId=image_id)
        assert _error(ec2.describe_volumes, VolumeIds=[volume_id])[0] == "InvalidVolume.NotFound"
        assert _error(ec2.describe_snapshots, SnapshotIds=[snapshot_id])[0] == (
            "InvalidSnapshot.NotFound"
        )
        assert _error(ec2.describe_images, ImageIds=[image_id])[0] == "InvalidAMIID.NotFound"
        assert volume_id not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
        owned = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        assert snapshot_id not in {s["SnapshotId"] for s in owned}
        assert image_id not in {
            i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]
        }
        tagged = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["async"]}])["Tags"]
        assert not {volume_id, snapshot_id, image_id} & {t["ResourceId"] for t in tagged}
        assert _error(ec2.delete_volume, VolumeId=volume_id)[0] == "InvalidVolume.NotFound"
        assert _error(ec2.delete_snapshot, SnapshotId=snapshot_id)[0] == (
            "InvalidSnapshot.NotFound"
        )


def test_images_not_ready_are_incorrect_state(gateway, ec2, ami, zone):
    """oned refuses to clone a LOCKED image (ALLOCATE 'Cannot clone image in state: LOCKED')
    and to attach one in CLONE ('Cannot acquire image N, it is in state: CLONE')."""
    instance_id = _running(ec2, ami)
    with slow(gateway, image=1.5):
        volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        state = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"]
        if state == "creating":  # a real oned may be done copying already
            _refused(ec2.create_snapshot, ec2.delete_snapshot, "SnapshotId", VolumeId=volume_id)
    _available(ec2, volume_id)
    with slow(gateway, image=1.5):
        snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        attached = False
        if _cloning(gateway, volume_id):  # the snapshot's copy is still under way
            try:
                ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/vdf")
                attached = True  # the copy ended meanwhile
            except ClientError as err:
                assert err.response["Error"]["Code"] == "IncorrectState"
                assert "snapshot" in err.response["Error"]["Message"]
        if ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == "pending":
            region = ec2.meta.region_name
            _refused(
                ec2.copy_snapshot,
                ec2.delete_snapshot,
                "SnapshotId",
                SourceSnapshotId=snapshot_id,
                SourceRegion=region,
            )
            _refused(
                ec2.create_volume,
                ec2.delete_volume,
                "VolumeId",
                SnapshotId=snapshot_id,
                AvailabilityZone=zone,
            )
    _completed(ec2, snapshot_id)
    if not attached:
        _available(ec2, volume_id)
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/vdf")
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(
        InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    eventually(lambda: _deleted(ec2.delete_volume, VolumeId=volume_id))
    ec2.delete_snapshot(SnapshotId=snapshot_id)


def _cloning(gateway, volume_id: str) -> bool:
    from ec2gw.ec2 import ids
    from ec2gw.one import documents

    image = documents.parse(gateway.one("one.image.info", ids.VOLUME.decode(volume_id)))
    return documents.integer(image, "STATE") == 6  # CLONE


def _deleted(call, **kwargs) -> bool:
    try:
        call(**kwargs)
    except ClientError:
        return False
    return True


def test_modify_volume_completed_means_resized(gateway, ec2, ami, zone):
    """oned resizes an attached disk asynchronously (DISK_RESIZE) and may still fail: a
    `completed` modification was answered while the volume still had its old size."""
    instance_id = _running(ec2, ami)
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    _available(ec2, volume_id)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/vdf")
    eventually(
        lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "in-use"
    )
    modification = ec2.modify_volume(VolumeId=volume_id, Size=2)["VolumeModification"]
    assert modification["ModificationState"] in ("modifying", "completed")
    if modification["ModificationState"] == "completed":
        assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Size"] == 2
    eventually(lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Size"] == 2)
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(
        InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    eventually(lambda: _deleted(ec2.delete_volume, VolumeId=volume_id))
