"""An attached volume's AttachTime in DescribeInstances' BlockDeviceMappings (issue 18 item 5).

It is the time AttachVolume attached it, as DescribeVolumes' attachment says, not the
instance's launch time (which stays the root disk's). A volume attached after another was
detached from the same device shows its own time, never the earlier one's."""

from __future__ import annotations

import time

from tests.e2e.test_network import _instance, _running

WAIT = {"Delay": 1, "MaxAttempts": 60}


def _mappings(ec2, instance_id: str) -> dict[str, dict]:
    return {m["DeviceName"]: m["Ebs"] for m in _instance(ec2, instance_id)["BlockDeviceMappings"]}


def _attach(ec2, volume_id: str, instance_id: str) -> dict:
    """Attaches the volume as /dev/sdf; its DescribeVolumes attachment once in use."""
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    (attachment,) = volume["Attachments"]
    return attachment


def test_attach_time_of_an_attached_volume(ec2):
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    instance_id = _running(ec2, ami)
    volume_ids = [ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"] for _ in range(2)]
    try:
        ec2.get_waiter("volume_available").wait(VolumeIds=volume_ids, WaiterConfig=WAIT)
        launched = _instance(ec2, instance_id)["LaunchTime"]
        time.sleep(max(0.0, launched.timestamp() + 2.5 - time.time()))
        first = _attach(ec2, volume_ids[0], instance_id)
        instance = _instance(ec2, instance_id)
        devices = {m["DeviceName"]: m["Ebs"] for m in instance["BlockDeviceMappings"]}
        assert devices["/dev/sdf"]["VolumeId"] == volume_ids[0]
        assert devices["/dev/sdf"]["AttachTime"] == first["AttachTime"]
        assert devices["/dev/sdf"]["AttachTime"] > instance["LaunchTime"]
        root = devices[instance["RootDeviceName"].rstrip("0123456789")]
        assert root["AttachTime"] == instance["LaunchTime"]
        # The filter sees the same time.
        attach_time = first["AttachTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        found = ec2.describe_instances(
            InstanceIds=[instance_id],
            Filters=[{"Name": "block-device-mapping.attach-time", "Values": [attach_time]}],
        )["Reservations"]
        assert [i["InstanceId"] for r in found for i in r["Instances"]] == [instance_id]

        # Detached, then another volume on the same device: its own time, not the first's.
        ec2.detach_volume(VolumeId=volume_ids[0])
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_ids[0]], WaiterConfig=WAIT)
        assert "/dev/sdf" not in _mappings(ec2, instance_id)
        time.sleep(max(0.0, first["AttachTime"].timestamp() + 2.5 - time.time()))
        second = _attach(ec2, volume_ids[1], instance_id)
        assert second["AttachTime"] > first["AttachTime"]
        sdf = _mappings(ec2, instance_id)["/dev/sdf"]
        assert (sdf["VolumeId"], sdf["AttachTime"]) == (volume_ids[1], second["AttachTime"])
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
        ec2.get_waiter("volume_available").wait(VolumeIds=volume_ids, WaiterConfig=WAIT)
        for volume_id in volume_ids:
            ec2.delete_volume(VolumeId=volume_id)
