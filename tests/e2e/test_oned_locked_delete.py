"""Deleting an image oned still holds LOCKED (its copy under way).

oned 6.10.5 refuses its owner the delete of a LOCKED image (`ImageDelete`,
src/rm/RequestManagerDelete.cc: INTERNAL 'Image locked, use --force flag...', and force
needs ADMIN), which the gateway answered as InternalError 500. EC2 deletes a pending
snapshot, a creating volume or a pending AMI: the gateway waits, bounded, for the copy.
On the embedded OpenNebula the copy is slowed down (`Lifecycle.image`, `saveas_copy`) so
the image is surely LOCKED; a real oned with dummy drivers copies in some milliseconds,
which the requests right after the create race with (the CI failure of
test_libcloud_workflow)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from ec2gw.actions import images
from tests.e2e.conftest import eventually
from tests.e2e.test_first_actions import error_of
from tests.e2e.test_network import _running

WAIT = {"Delay": 1, "MaxAttempts": 30}


@contextmanager
def slow_copies(gateway, seconds: float) -> Iterator[None]:
    """On the embedded OpenNebula, a new image (allocated, cloned or saved from a VM disk)
    stays LOCKED `seconds` (a real oned takes its own time)."""
    sim = gateway.backend.sim
    if sim is None:
        yield
        return
    before = sim.cloud.lifecycle
    sim.cloud.lifecycle = dataclasses.replace(before, image=seconds, saveas_copy=seconds)
    try:
        yield
    finally:
        sim.cloud.lifecycle = before


def _volume_gone(ec2, volume_id: str) -> bool:
    try:
        ec2.describe_volumes(VolumeIds=[volume_id])
    except ClientError as err:
        return err.response["Error"]["Code"] == "InvalidVolume.NotFound"
    return False


def _snapshot_gone(ec2, snapshot_id: str) -> bool:
    try:
        ec2.describe_snapshots(SnapshotIds=[snapshot_id])
    except ClientError as err:
        return err.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    return False


def test_delete_snapshot_right_after_create(gateway, ec2, zone):
    """DeleteSnapshot of a snapshot still pending (its clone LOCKED) was InternalError 500."""
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    with slow_copies(gateway, 2.0):
        snapshot = ec2.create_snapshot(VolumeId=volume_id)
        if gateway.backend.sim is not None:
            assert snapshot["State"] == "pending"
        ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    assert eventually(lambda: _snapshot_gone(ec2, snapshot["SnapshotId"]))
    ec2.delete_volume(VolumeId=volume_id)
    assert eventually(lambda: _volume_gone(ec2, volume_id))


def test_delete_volume_right_after_create(gateway, ec2, zone):
    """DeleteVolume of a volume still creating (its image LOCKED) was InternalError 500."""
    with slow_copies(gateway, 2.0):
        created = ec2.create_volume(Size=1, AvailabilityZone=zone)
        if gateway.backend.sim is not None:
            assert created["State"] == "creating"
        ec2.delete_volume(VolumeId=created["VolumeId"])
    assert eventually(lambda: _volume_gone(ec2, created["VolumeId"]))


def test_delete_volumes_right_after_create_in_parallel(gateway, ec2, zone):
    """Several clients at once: on a real oned the driver queue lengthens and the copies
    stay LOCKED longer (before the fix some of these deletes were InternalError 500)."""

    def create_and_delete(_: int) -> str:
        client = gateway.client()
        volume_id = client.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        client.delete_volume(VolumeId=volume_id)
        return volume_id

    with slow_copies(gateway, 1.0), ThreadPoolExecutor(6) as pool:
        volume_ids = list(pool.map(create_and_delete, range(6)))
    for volume_id in volume_ids:
        assert eventually(lambda v=volume_id: _volume_gone(ec2, v))


def test_deregister_image_right_after_create(gateway, ec2, ami):
    """DeregisterImage of an AMI still being saved (its image LOCKED) was InternalError 500."""
    instance_id = _running(ec2, ami)
    name = gateway.backend.user_name("locked-ami")
    try:
        with slow_copies(gateway, 2.0):
            image_id = ec2.create_image(InstanceId=instance_id, Name=name)["ImageId"]
            ec2.deregister_image(ImageId=image_id)
        mine = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
        assert mine["Images"] == []
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])


@pytest.mark.embedded_only  # a real oned's dummy drivers copy in milliseconds
def test_locked_past_the_bound_is_incorrect_state(gateway, ec2, zone, monkeypatch):
    """An image oned keeps LOCKED longer than the gateway waits is IncorrectState (400),
    never InternalError."""
    monkeypatch.setattr(images, "LOCKED_WAIT_SECONDS", 0.3)
    with slow_copies(gateway, 3.0):
        created = ec2.create_volume(Size=1, AvailabilityZone=zone)
        volume_id = created["VolumeId"]
        started = time.monotonic()
        with pytest.raises(ClientError) as excinfo:
            ec2.delete_volume(VolumeId=volume_id)
    assert time.monotonic() - started < 2.5
    assert error_of(excinfo) == ("IncorrectState", 400)
    assert excinfo.value.response["Error"]["Message"] == (
        f"Volume '{volume_id}' is in an invalid state: creating"
    )
    monkeypatch.undo()
    ec2.delete_volume(VolumeId=volume_id)  # waits for the copy (3 s)
    assert eventually(lambda: _volume_gone(ec2, volume_id))
