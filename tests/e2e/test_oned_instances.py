"""Instance actions on what oned 6.10.5 really does (issue 15: F3, F5, F10, F12, F16).

* `one.vm.updateconf` in replace mode erases the OS, GRAPHICS, FEATURES, CPU_MODEL... the
  update does not name, and is refused (INTERNAL) for SUSPENDED and STOPPED VMs;
* `one.template.instantiate` replaces the type's CONTEXT and SCHED_REQUIREMENTS with the
  extra template's (`Template::merge`);
* poweroff, reboot and resume are taken in fewer states than EC2's names cover, resume
  checks the running-VM quota first, and terminate is refused in PROLOG/BOOT.

The instance type with an OS, a console and a context of its own is made for a user of
this test alone, so that no other test sees it.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ec2gw.actions import instance_view as view
from ec2gw.actions.context import RequestContext
from ec2gw.ec2 import ids
from ec2gw.one import documents
from ec2gw.one.errors import AUTHORIZATION, OneError
from tests.e2e.conftest import eventually
from tests.e2e.test_first_actions import error_of

TYPE_NAME = "c9.context"
START_SCRIPT = 'echo "started" > /tmp/started\nexit 0'


@dataclasses.dataclass
class Owner:
    client: Any
    uid: int


@pytest.fixture(scope="module")
def owner(gateway) -> Iterator[Owner]:
    """A user with an instance type of its own, as an operator would write one."""
    key = gateway.new_user("type-owner")
    template = documents.template_text(
        [
            ("NAME", gateway.backend.user_name("c9-context")),
            ("EC2_INSTANCE_TYPE", TYPE_NAME),
            ("CPU", "0.1"),
            ("VCPU", "1"),
            ("MEMORY", "64"),
            ("OS", {"ARCH": "x86_64", "FIRMWARE": "UEFI"}),
            ("FEATURES", {"ACPI": "yes"}),
            ("GRAPHICS", {"TYPE": "VNC", "LISTEN": "0.0.0.0"}),
            ("CPU_MODEL", {"MODEL": "host-passthrough"}),
            ("CONTEXT", {"REPORT_READY": "YES", "START_SCRIPT": START_SCRIPT}),
            ("SCHED_REQUIREMENTS", "CLUSTER_ID != 99"),
        ]
    )
    template_id = gateway.one("one.template.allocate", template)
    gateway.one("one.template.chown", template_id, key.uid, -1)
    gateway.one("one.template.chmod", template_id, 1, 1, 0, 0, 0, 0, 0, 0, 0)
    try:
        yield Owner(gateway.client(key), key.uid)
    finally:
        gateway.one("one.template.delete", template_id, False)


def _vm(gateway, instance_id: str) -> documents.Element:
    return documents.parse(gateway.one("one.vm.info", ids.INSTANCE.decode(instance_id)))


def _vector(vm: documents.Element, name: str) -> dict[str, str]:
    found = vm.find(f"TEMPLATE/{name}")
    return {c.tag: c.text or "" for c in (found if found is not None else [])}


def _launch(client, ami: str, **kwargs) -> str:
    kwargs.setdefault("InstanceType", TYPE_NAME)
    (instance,) = client.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **kwargs)["Instances"]
    return instance["InstanceId"]


def _wait(client, waiter: str, *instance_ids: str) -> None:
    client.get_waiter(waiter).wait(
        InstanceIds=list(instance_ids), WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def _state(client, instance_id: str) -> str:
    reservation = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    return reservation["Instances"][0]["State"]["Name"]


def test_launch_keeps_the_types_context_and_requirements(gateway, owner, ami):
    """F5: the VM had CONTEXT=[NETWORK, SET_HOSTNAME, ...] and SCHED_REQUIREMENTS
    "CLUSTER_ID = 0" only: the type's start script and placement rules were gone."""
    instance_id = _launch(owner.client, ami, UserData="#cloud-config\n")
    try:
        vm = _vm(gateway, instance_id)
        context = _vector(vm, "CONTEXT")
        assert context["START_SCRIPT"] == START_SCRIPT
        assert context["REPORT_READY"] == "YES"
        assert base64.b64decode(context["USER_DATA"]) == b"#cloud-config\n"
        assert context["NETWORK"] == "YES"
        requirements = documents.text(vm, "USER_TEMPLATE/SCHED_REQUIREMENTS")
        assert requirements.startswith("(CLUSTER_ID != 99) & (CLUSTER_ID = "), requirements
        _wait(owner.client, "instance_running", instance_id)
    finally:
        owner.client.terminate_instances(InstanceIds=[instance_id])


def test_user_data_change_keeps_the_vm_configuration(gateway, owner, ami):
    """F3: in replace mode oned dropped OS (firmware, UUID), FEATURES, GRAPHICS, CPU_MODEL."""
    instance_id = _launch(owner.client, ami)
    try:
        _wait(owner.client, "instance_running", instance_id)
        owner.client.stop_instances(InstanceIds=[instance_id])
        _wait(owner.client, "instance_stopped", instance_id)
        before = _vm(gateway, instance_id)
        owner.client.modify_instance_attribute(
            InstanceId=instance_id, UserData={"Value": b"#!/bin/sh\necho new\n"}
        )
        after = _vm(gateway, instance_id)
        for section in ("OS", "FEATURES", "GRAPHICS", "CPU_MODEL"):
            assert _vector(after, section) == _vector(before, section) != {}, section
        context = _vector(after, "CONTEXT")
        assert base64.b64decode(context["USER_DATA"]) == b"#!/bin/sh\necho new\n"
        assert context["START_SCRIPT"] == START_SCRIPT
        assert {k: v for k, v in context.items() if k != "USER_DATA"} == {
            k: v for k, v in _vector(before, "CONTEXT").items() if k != "USER_DATA"
        } | {"USERDATA_ENCODING": "base64"}
        read = owner.client.describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData"
        )
        assert base64.b64decode(read["UserData"]["Value"]) == b"#!/bin/sh\necho new\n"
    finally:
        owner.client.terminate_instances(InstanceIds=[instance_id])


def test_a_suspended_instance_is_not_reconfigured(gateway, owner, ami):
    """F3b, F16: oned refuses updateconf (INTERNAL, was InternalError 500) and resize
    (ACTION, was IncorrectState) of a SUSPENDED VM, which EC2 calls stopped."""
    instance_id = _launch(owner.client, ami)
    try:
        _wait(owner.client, "instance_running", instance_id)
        vm_id = ids.INSTANCE.decode(instance_id)
        gateway.one("one.vm.action", "suspend", vm_id)  # as the operator might
        eventually(lambda: documents.integer(_vm(gateway, instance_id), "STATE") == 5)
        for change in ({"UserData": {"Value": b"x"}}, {"InstanceType": {"Value": "t3.small"}}):
            with pytest.raises(ClientError) as err:
                owner.client.modify_instance_attribute(InstanceId=instance_id, **change)
            assert error_of(err) == ("IncorrectInstanceState", 400), change
        described = owner.client.describe_instances(InstanceIds=[instance_id])
        assert described["Reservations"][0]["Instances"][0]["InstanceType"] == TYPE_NAME
        started = owner.client.start_instances(InstanceIds=[instance_id])["StartingInstances"]
        assert started[0]["PreviousState"]["Name"] == "stopped"
        _wait(owner.client, "instance_running", instance_id)
    finally:
        owner.client.terminate_instances(InstanceIds=[instance_id])


def test_start_over_the_running_instance_quota(gateway, ami):
    """F10: oned refuses a resume over the RUNNING_VMS quota as ACTION, which was
    IncorrectInstanceState (UnauthorizedOperation on the embedded OpenNebula)."""
    key = gateway.new_user("running-quota")
    client = gateway.client(key)
    gateway.one("one.user.quota", key.uid, 'VM = [ RUNNING_VMS = "1" ]')
    first = second = None
    try:
        first = _launch(client, ami, InstanceType="t3.nano")
        _wait(client, "instance_running", first)
        gateway.one("one.vm.action", "undeploy-hard", ids.INSTANCE.decode(first))
        _wait(client, "instance_stopped", first)
        second = _launch(client, ami, InstanceType="t3.nano")
        with pytest.raises(ClientError) as err:
            client.start_instances(InstanceIds=[first])
        assert error_of(err) == ("InstanceLimitExceeded", 400)
        assert _state(client, first) == "stopped"
    finally:
        if launched := [i for i in (first, second) if i]:
            client.terminate_instances(InstanceIds=launched)


@pytest.mark.embedded_only  # holds a VM in SHUTDOWN_POWEROFF: the simulator's delays
def test_force_stop_ends_a_stuck_stop(gateway, ec2, ami):
    """F10: StopInstances Force sent nothing for a `stopping` instance, though oned takes
    poweroff-hard in SHUTDOWN_POWEROFF (what EC2's force stop is for)."""
    sim = gateway.backend.sim
    (instance,) = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"]
    instance_id = instance["InstanceId"]
    try:
        _wait(ec2, "instance_running", instance_id)
        before = sim.cloud.lifecycle
        sim.cloud.lifecycle = dataclasses.replace(before, shutdown=600)
        try:
            ec2.stop_instances(InstanceIds=[instance_id])  # the guest ignores the ACPI event
        finally:
            sim.cloud.lifecycle = before
        assert _state(ec2, instance_id) == "stopping"
        forced = ec2.stop_instances(InstanceIds=[instance_id], Force=True)["StoppingInstances"]
        assert forced[0]["PreviousState"]["Name"] == "stopping"
        eventually(lambda: _state(ec2, instance_id) == "stopped", timeout=10)
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])


@pytest.mark.embedded_only  # holds a VM in HOTPLUG: set in the simulator
def test_stop_is_all_or_nothing(gateway, ec2, ami):
    """F10: oned powers off only RUNNING/UNKNOWN VMs; a request with a busy (hotplugging)
    instance stopped the instances before it, then failed. Busy past the wait ([gateway]
    terminate_wait_seconds), the request is refused and nothing changes; busy for a moment,
    it is waited out, the request's VMs together."""
    sim = gateway.backend.sim
    launched = ec2.run_instances(ImageId=ami, MinCount=2, MaxCount=2)["Instances"]
    first, busy = [i["InstanceId"] for i in launched]
    try:
        _wait(ec2, "instance_running", first, busy)
        with sim.cloud.lock:
            vm = sim.cloud.pools["vm"][ids.INSTANCE.decode(busy)]
            sim.cloud.set_state(vm, 3, 17)  # ACTIVE HOTPLUG, until set back
        try:
            with gateway.variant(gateway__terminate_wait_seconds=0.3) as impatient:
                client = impatient.client()
                for call in (client.stop_instances, client.reboot_instances):
                    with pytest.raises(ClientError) as err:
                        call(InstanceIds=[first, busy])
                    assert error_of(err) == ("IncorrectInstanceState", 400)
            assert documents.integer(_vm(gateway, first), "LCM_STATE") == 3  # still RUNNING
        finally:
            with sim.cloud.lock:
                sim.cloud.set_state(vm, 3, 3)
        with sim.cloud.lock:  # a hotplug the driver answers in 1 s: waited out
            sim.cloud.set_state(vm, 3, 17, 1.0)
        ec2.reboot_instances(InstanceIds=[first, busy])
        stopping = ec2.stop_instances(InstanceIds=[first, busy])["StoppingInstances"]
        assert {s["PreviousState"]["Name"] for s in stopping} == {"running"}
        _wait(ec2, "instance_stopped", first, busy)
    finally:
        ec2.terminate_instances(InstanceIds=[first, busy])


@pytest.mark.parametrize("action", ["stop", "reboot"])
def test_stop_or_reboot_right_after_a_detach(gateway, ec2, ami, action):
    """StopInstances (RebootInstances) right after a DetachVolume, the VM still in HOTPLUG
    on oned, was IncorrectInstanceState; EC2 stops it: the gateway waits the hotplug out
    (bounded by [gateway] terminate_wait_seconds). The embedded OpenNebula's hotplug is
    instant: there the driver answers the detach in 1 s."""
    sim = gateway.backend.sim
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    instance_id = _launch(ec2, ami, InstanceType="t3.nano")
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    waiting = {"Delay": 1, "MaxAttempts": 120}
    try:
        _wait(ec2, "instance_running", instance_id)
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=waiting)
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=waiting)
        eventually(
            lambda: documents.integer(_vm(gateway, instance_id), "LCM_STATE") == 3,  # RUNNING
            timeout=60,
        )
        ec2.detach_volume(VolumeId=volume_id)
        if sim is not None:
            with sim.cloud.lock:
                vm = sim.cloud.pools["vm"][ids.INSTANCE.decode(instance_id)]
                sim.cloud.set_state(vm, 3, 17, 1.0)  # ACTIVE HOTPLUG, for 1 s
        if action == "stop":
            (stopping,) = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
            assert stopping["PreviousState"]["Name"] == "running"
            _wait(ec2, "instance_stopped", instance_id)
        else:
            ec2.reboot_instances(InstanceIds=[instance_id])
            eventually(lambda: _state(ec2, instance_id) == "running", timeout=60)
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=waiting)
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        _wait(ec2, "instance_terminated", instance_id)
        eventually(
            lambda: (
                ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
            ),
            timeout=60,
        )
        ec2.delete_volume(VolumeId=volume_id)


def test_failed_launch_removes_instances_already_deployed(gateway, ami, monkeypatch):
    """F12: the rollback's terminate-hard was refused for a VM the scheduler had moved to
    PROLOG/BOOT, which then ran on, hidden. The launch here fails at its second instance
    once the first has left PENDING (PROLOG, BOOT or RUNNING: a real oned with dummy
    drivers passes PROLOG/BOOT in milliseconds; the embedded one, slowed, is still in
    PROLOG then), as a quota hit late in a long launch would."""
    key = gateway.new_user("rollback")
    client = gateway.client(key)
    real_one = RequestContext.one
    instantiated: list[int] = []
    seen: list[int] = []  # the first VM's LCM_STATE when the second instantiate failed

    async def failing_second_instantiate(self, method: str, *args: object) -> Any:
        if method == "one.template.instantiate" and instantiated:
            seen.append(await _deployed(self, instantiated[0]))
            raise OneError(method, AUTHORIZATION, "limit of 1 reached for VMS quota in VM")
        result = await real_one(self, method, *args)
        if method == "one.template.instantiate":
            instantiated.append(result)
        return result

    async def _deployed(ctx: RequestContext, vm_id: int) -> int:
        """The VM's LCM_STATE once it is ACTIVE (out of PENDING), -1 after 30 s (well under
        the client's 60 s read timeout: a shared oned's scheduler may take a while)."""
        import asyncio

        for _ in range(600):
            vm = await ctx.one_doc("one.vm.info", vm_id)
            if documents.integer(vm, "STATE") == 3:  # ACTIVE: PROLOG, BOOT, RUNNING...
                return documents.integer(vm, "LCM_STATE")
            await asyncio.sleep(0.05)
        return -1

    monkeypatch.setattr(RequestContext, "one", failing_second_instantiate)
    from tests.e2e.test_compute import slow_boot

    with slow_boot(gateway, 1.0), pytest.raises(ClientError) as err:
        client.run_instances(ImageId=ami, MinCount=2, MaxCount=2)
    monkeypatch.undo()
    assert error_of(err) == ("InstanceLimitExceeded", 400)
    (vm_id,) = instantiated
    assert seen and seen[0] != -1, f"the first VM never left PENDING: {seen}"
    if gateway.backend.sim is not None:
        assert seen[0] == 1, seen  # PROLOG: what the old rollback could not terminate
    eventually(
        lambda: (
            documents.integer(documents.parse(gateway.one("one.vm.info", vm_id)), "STATE") == 6
        ),  # DONE
        timeout=30,
    )
    vm = documents.parse(gateway.one("one.vm.info", vm_id))
    assert documents.text(vm, f"USER_TEMPLATE/{view.HIDDEN}") == "YES"
    assert client.describe_instances()["Reservations"] == []
