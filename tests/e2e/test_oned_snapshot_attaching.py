"""CreateSnapshot of a volume right after AttachVolume.

oned saves no disk of a VM in a hotplug (`one.vm.disksaveas` answers INTERNAL 'VM has to be
RUNNING, POWEROFF or SUSPENDED to save disks' while the attach is under way), and EC2
snapshots an attaching volume: the gateway waits the hotplug out, bounded. A real oned with
dummy drivers finishes the attach in milliseconds, which a client's next request races with
(libcloud's attach_volume then create_volume_snapshot); on the embedded OpenNebula, whose
attach is instant, the VM is held in HOTPLUG for a second so that the wait is needed."""

from __future__ import annotations

from ec2gw.ec2 import ids
from tests.e2e.test_network import _running

WAIT = {"Delay": 1, "MaxAttempts": 60}


def test_snapshot_right_after_attach(gateway, ec2):
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    instance_id = _running(ec2, ami)
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    snapshot_id = None
    try:
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        sim = gateway.backend.sim
        if sim is not None:
            with sim.cloud.lock:
                vm = sim.cloud.pools["vm"][ids.INSTANCE.decode(instance_id)]
                sim.cloud.set_state(vm, 3, 17, 1.0)  # ACTIVE HOTPLUG: the driver answers in 1 s
        snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig=WAIT)
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
        if snapshot_id:
            ec2.delete_snapshot(SnapshotId=snapshot_id)
        ec2.delete_volume(VolumeId=volume_id)
