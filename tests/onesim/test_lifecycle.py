"""VMs walk oned's state machine: placement, transitional states, capacity, actions."""

from __future__ import annotations

import time
import xmlrpc.client
from pathlib import Path

import pytest

from ec2gw.onesim import Lifecycle
from tests.onesim.conftest import Cloud, One, seed, start_sim

VM = 'NAME = "{name}"\nCPU = "{cpu}"\nMEMORY = "{memory}"\nDISK = [ IMAGE_ID = 0 ]'


def state(one: One, vm_id: int) -> tuple[int, int]:
    doc = one("one.vm.info", vm_id)
    pick = lambda tag: int(doc.split(f"<{tag}>", 1)[1].split("<", 1)[0])  # noqa: E731
    return pick("STATE"), pick("LCM_STATE")


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def image_state(one: One, image_id: int) -> int:
    return int(one("one.image.info", image_id).split("<STATE>", 1)[1].split("<", 1)[0])


def test_hot_saveas_copies_only_a_marked_image(cloud: Cloud) -> None:
    """A disk saved from a RUNNING VM: the VM is HOTPLUG_SAVEAS and the image LOCKED with
    SAVE_AS_HOT; the copy starts when the driver answers, only if the mark is still there.
    A template replaced in between (update append=0) leaves the image READY but never
    copied, and the VM in HOTPLUG_SAVEAS for good: no detach, poweroff or terminate.

    oned 6.10.5, src/image/ImageManagerProtocol.cc `ImageManager::_mkfs`: the driver's
    answer reads `Image::is_saving()` (SAVE_AS_HOT, include/ImageTemplate.h); without it
    the image is only unlocked (`set_state_unlock`) and no copy is started, so the VM is
    never told the save is over. On oned this is a race with its driver, which is why it
    is tested here rather than in tests/differential (hot_saveas)."""
    vm = cloud.admin("one.template.instantiate", 0, "", False, "", False)
    saved = cloud.admin("one.vm.disksaveas", vm, 0, "saved", "", -1)
    assert state(cloud.admin, vm) == (3, 26)
    doc = cloud.admin("one.vm.info", vm)
    assert "<HOTPLUG_SAVE_AS_ACTIVE><![CDATA[YES]]>" in doc
    image = cloud.admin("one.image.info", saved)
    assert "<STATE>4</STATE>" in image and "<SAVE_AS_HOT><![CDATA[YES]]>" in image
    cloud.admin("one.image.update", saved, 'EC2_AMI = "YES"', 1)  # append keeps the mark
    wait_for(lambda: state(cloud.admin, vm) == (3, 3))
    image = cloud.admin("one.image.info", saved)
    assert "<STATE>1</STATE>" in image and "SAVE_AS_HOT" not in image
    assert "HOTPLUG_SAVE_AS" not in cloud.admin("one.vm.info", vm)

    stuck = cloud.admin("one.vm.disksaveas", vm, 0, "stuck", "", -1)
    cloud.admin("one.image.update", stuck, 'EC2_AMI = "YES"', 0)  # the mark is erased
    wait_for(lambda: image_state(cloud.admin, stuck) == 1)
    time.sleep(0.5)
    assert state(cloud.admin, vm) == (3, 26)
    assert "<FORMAT><![CDATA[save_as]]>" in cloud.admin("one.image.info", stuck)
    for method, args, text in (
        ("one.vm.detach", (vm, 0), f"Could not detach disk from VM {vm}, wrong state"),
        ("one.vm.action", ("poweroff", vm), "not available for state HOTPLUG_SAVEAS"),
        ("one.vm.action", ("terminate-hard", vm), f"Could not terminate VM {vm}, wrong"),
        ("one.vm.disksaveas", (vm, 0, "again", "", -1), "VM has to be RUNNING"),
    ):
        assert text in cloud.admin.error(method, *args)[1]
    cloud.admin("one.vm.recover", vm, 3)  # only oneadmin's delete gets it out
    assert state(cloud.admin, vm) == (6, 0)


def test_deletes_are_asynchronous(tmp_path: Path) -> None:
    """With `Lifecycle.delete`, a deleted image shows DELETE (7) and a deleted network
    LOCK_DELETE (3, no address ranges, its parent's leases still held) until it goes."""
    sim = start_sim(tmp_path / "one", Lifecycle(delete=0.3))
    try:
        admin = One(sim.url, sim.oneadmin_session)
        seed(admin)
        image = admin("one.image.allocate", 'NAME = "gone"\nPATH = "/x"', 1)
        eip = admin("one.vn.reserve", 0, 'NAME = "eip"\nSIZE = 1')
        admin("one.image.delete", image, False)
        admin("one.vn.delete", eip)
        assert image_state(admin, image) == 7
        doc = admin("one.vn.info", eip)
        assert "<STATE><![CDATA[3]]></STATE>" in doc or "<STATE>3</STATE>" in doc
        assert "<AR>" not in doc
        assert "Can not remove a Virtual Network, wrong state LOCK_DELETE" in admin.error(
            "one.vn.delete", eip
        )[1]
        assert "<VNET><![CDATA[1]]></VNET>" in admin("one.vn.info", 0)
        wait_for(lambda: admin.raw("one.image.info", image)[0] is False)
        wait_for(lambda: admin.raw("one.vn.info", eip)[0] is False)
        assert "<VNET><![CDATA[1]]></VNET>" not in admin("one.vn.info", 0)
    finally:
        sim.stop()


def test_running_when_allocate_returns(cloud: Cloud) -> None:
    vm = cloud.admin("one.vm.allocate", VM.format(name="a", cpu=1, memory=128))
    assert state(cloud.admin, vm) == (3, 3)
    doc = cloud.admin("one.vm.info", vm)
    assert "<DEPLOY_ID>dummy-host-0:a:dummy</DEPLOY_ID>" in doc
    assert "<IMAGE_STATE><![CDATA[2]]></IMAGE_STATE>" in doc


@pytest.mark.parametrize(
    ("action", "final"),
    [
        ("poweroff", (8, 0)),
        ("poweroff-hard", (8, 0)),
        ("suspend", (5, 0)),
        ("stop", (4, 0)),
        ("undeploy", (9, 0)),
        ("undeploy-hard", (9, 0)),
        ("terminate", (6, 0)),
        ("terminate-hard", (6, 0)),
        ("reboot", (3, 3)),
    ],
)
def test_actions_from_running(cloud: Cloud, action: str, final: tuple[int, int]) -> None:
    vm = cloud.admin("one.vm.allocate", VM.format(name="a", cpu=1, memory=128))
    assert cloud.admin("one.vm.action", action, vm) == vm
    assert state(cloud.admin, vm) == final
    if final != (3, 3) and final[0] != 6:
        cloud.admin("one.vm.action", "resume", vm)
        assert state(cloud.admin, vm) == (3, 3)


def test_hold_release_and_wrong_state_message(cloud: Cloud) -> None:
    vm = cloud.admin("one.vm.allocate", VM.format(name="h", cpu=1, memory=128), True)
    assert state(cloud.admin, vm) == (2, 0)
    reply = cloud.admin.error("one.vm.action", "poweroff", vm)
    assert reply == [
        False,
        '[one.vm.action] Error performing action "poweroff": This action is not available '
        "for state HOLD",
        2048,
        -1,
        -1,
    ]
    cloud.admin("one.vm.action", "release", vm)
    assert state(cloud.admin, vm) == (3, 3)
    reply = cloud.admin.error("one.vm.action", "shutdown", vm)
    assert reply[1:3] == ['[one.vm.action] Action "shutdown" is not supported', 2048]


def test_transitional_states_with_delays(tmp_path: Path) -> None:
    lifecycle = Lifecycle(schedule=0.2, prolog=0.2, boot=0.2, shutdown=0.2, epilog=0.2)
    sim = start_sim(tmp_path, lifecycle)
    try:
        one = One(sim.url, sim.oneadmin_session)
        seed(one)
        vm = one("one.vm.allocate", VM.format(name="slow", cpu=1, memory=128))
        seen = []
        deadline = time.time() + 10
        while time.time() < deadline:
            current = state(one, vm)
            if not seen or seen[-1] != current:
                seen.append(current)
            if current == (3, 3):
                break
            time.sleep(0.02)
        assert seen == [(1, 0), (3, 1), (3, 2), (3, 3)]  # PENDING, PROLOG, BOOT, RUNNING
        one("one.vm.action", "terminate", vm)
        assert state(one, vm) == (3, 12)  # SHUTDOWN
        seen = []
        while time.time() < deadline:
            current = state(one, vm)
            if not seen or seen[-1] != current:
                seen.append(current)
            if current == (6, 0):
                break
            time.sleep(0.02)
        assert seen == [(3, 12), (3, 11), (6, 0)]  # SHUTDOWN, EPILOG, DONE
    finally:
        sim.stop()


def test_capacity_keeps_vm_pending_until_room(cloud: Cloud) -> None:
    big = cloud.admin("one.vm.allocate", VM.format(name="big", cpu=6, memory=1024))
    assert state(cloud.admin, big) == (3, 3)
    other = cloud.admin("one.vm.allocate", VM.format(name="other", cpu=4, memory=1024))
    assert state(cloud.admin, other) == (1, 0)
    doc = cloud.admin("one.vm.info", other)
    assert "No host with enough capacity to deploy the VM" in doc
    host = cloud.admin("one.host.info", 0)
    assert "<CPU_USAGE>600</CPU_USAGE>" in host and "<RUNNING_VMS>1</RUNNING_VMS>" in host
    cloud.admin("one.vm.action", "terminate-hard", big)
    assert state(cloud.admin, other) == (3, 3)
    assert "SCHED_MESSAGE" not in cloud.admin("one.vm.info", other)


def test_memory_capacity_and_a_second_host(cloud: Cloud) -> None:
    first = cloud.admin("one.vm.allocate", VM.format(name="m1", cpu=0.1, memory=12 * 1024))
    second = cloud.admin("one.vm.allocate", VM.format(name="m2", cpu=0.1, memory=8 * 1024))
    assert state(cloud.admin, first) == (3, 3)
    assert state(cloud.admin, second) == (1, 0)
    cloud.admin("one.host.allocate", "dummy-host-1", "dummy", "dummy", -1)
    assert state(cloud.admin, second) == (3, 3)
    assert "<HOSTNAME>dummy-host-1</HOSTNAME>" in cloud.admin("one.vm.info", second)


def test_sched_requirements_and_disabled_hosts(cloud: Cloud) -> None:
    cluster = cloud.admin("one.cluster.allocate", "edge")
    host = cloud.admin("one.host.allocate", "edge-host", "dummy", "dummy", cluster)
    cloud.admin("one.cluster.adddatastore", cluster, 1)  # the image's datastore
    template = VM.format(name="pinned", cpu=1, memory=128)
    vm = cloud.admin("one.vm.allocate", template + f'\nSCHED_REQUIREMENTS = "ID = {host}"')
    assert "<HOSTNAME>edge-host</HOSTNAME>" in cloud.admin("one.vm.info", vm)
    vm2 = cloud.admin(
        "one.vm.allocate", template + f'\nSCHED_REQUIREMENTS = "CLUSTER_ID = {cluster}"'
    )
    assert "<HOSTNAME>edge-host</HOSTNAME>" in cloud.admin("one.vm.info", vm2)
    cloud.admin("one.host.status", host, 1)  # disabled
    vm3 = cloud.admin(
        "one.vm.allocate", template + f'\nSCHED_REQUIREMENTS = "CLUSTER_ID = {cluster}"'
    )
    assert state(cloud.admin, vm3) == (1, 0)
    cloud.admin("one.host.status", host, 0)
    assert state(cloud.admin, vm3) == (3, 3)


def test_leases_are_handed_out_and_freed(cloud: Cloud) -> None:
    nic = VM.format(name="n", cpu=0.1, memory=64) + "\nNIC = [ NETWORK_ID = 0 ]"
    a = cloud.admin("one.vm.allocate", nic)
    b = cloud.admin("one.vm.allocate", nic)
    vn = cloud.admin("one.vn.info", 0)
    assert "<USED_LEASES>2</USED_LEASES>" in vn
    assert "<IP><![CDATA[10.0.0.11]]></IP><MAC><![CDATA[02:00:0a:00:00:0b]]></MAC>" in vn
    assert f"<VM><![CDATA[{b}]]></VM>" in vn
    cloud.admin("one.vm.action", "terminate-hard", a)
    vn = cloud.admin("one.vn.info", 0)
    assert "<USED_LEASES>1</USED_LEASES>" in vn
    c = cloud.admin("one.vm.allocate", nic)
    assert "<IP><![CDATA[10.0.0.10]]></IP>" in cloud.admin("one.vm.info", c)


def test_image_usage_and_persistent_images(cloud: Cloud) -> None:
    persistent = cloud.admin(
        "one.image.allocate", 'NAME = "disk"\nTYPE = "DATABLOCK"\nSIZE = "100"\nPERSISTENT = YES', 1
    )
    vm = cloud.admin(
        "one.vm.allocate",
        VM.format(name="p", cpu=0.1, memory=64) + f"\nDISK = [ IMAGE_ID = {persistent} ]",
    )
    image = cloud.admin("one.image.info", persistent)
    assert "<STATE>8</STATE>" in image and f"<VMS><ID>{vm}</ID></VMS>" in image
    reply = cloud.admin.error(
        "one.vm.allocate",
        VM.format(name="q", cpu=0.1, memory=64) + f"\nDISK = [ IMAGE_ID = {persistent} ]",
    )
    assert "persistent and already in use" in reply[1] and reply[2] == 16384
    assert "<RUNNING_VMS>1</RUNNING_VMS>" in cloud.admin("one.image.info", 0)
    cloud.admin("one.vm.action", "terminate-hard", vm)
    assert "<STATE>1</STATE>" in cloud.admin("one.image.info", persistent)
    assert "<STATE>1</STATE>" in cloud.admin("one.image.info", 0)


def test_image_locked_then_ready_with_delay(tmp_path: Path) -> None:
    sim = start_sim(tmp_path, Lifecycle(image=0.3))
    try:
        one = One(sim.url, sim.oneadmin_session)
        image = one("one.image.allocate", 'NAME = "slow"\nPATH = "/tmp/x"', 1)
        assert "<STATE>4</STATE>" in one("one.image.info", image)
        time.sleep(0.5)
        assert "<STATE>1</STATE>" in one("one.image.info", image)
    finally:
        sim.stop()


def test_datastore_capacity(cloud: Cloud) -> None:
    reply = cloud.admin.error(
        "one.image.allocate", 'NAME = "huge"\nTYPE = "DATABLOCK"\nSIZE = "30000"', 1
    )
    assert reply[1:3] == ["[one.image.allocate] Not enough space in datastore", 2048]


def test_pool_filters_ranges_and_pages(cloud: Cloud) -> None:
    ids = [
        cloud.admin("one.vm.allocate", VM.format(name=f"v{i}", cpu=0.1, memory=64))
        for i in range(5)
    ]

    def listed(*args: int) -> list[int]:
        pool = cloud.admin("one.vmpool.info", *args)
        return [int(x.split("</ID>")[0]) for x in pool.split("<VM><ID>")[1:]]

    assert listed(-2, -1, -1, -1) == ids[::-1]
    assert listed(-2, ids[1], ids[3], -1) == ids[3:0:-1]
    assert listed(-2, 0, -2, -1) == ids[:2:-1][:2]
    assert listed(-2, 2, -2, -1) == ids[::-1][2:4]
    cloud.admin("one.vm.action", "terminate", ids[0])
    assert ids[0] not in listed(-2, -1, -1, -1)
    assert listed(-2, -1, -1, 6) == [ids[0]]
    assert ids[0] in listed(-2, -1, -1, -2)
    assert cloud.admin.error("one.vmpool.info", -5, -1, -1, -1)[1:3] == [
        "[one.vmpool.info] Incorrect filter_flag",
        4096,
    ]
    assert cloud.admin.error("one.vmpool.info", -2, -1, -1, 12)[2] == 4096
    infoset = cloud.admin("one.vmpool.infoset", f"{ids[1]},{ids[2]},999", True)
    assert infoset.count("<VM><ID>") == 2 and "<PERMISSIONS>" in infoset


def test_short_and_extended_pool_bodies(cloud: Cloud) -> None:
    vm = cloud.admin("one.vm.allocate", VM.format(name="t", cpu=0.1, memory=64) + '\nTAG = "x"')
    short = cloud.admin("one.vmpool.info", -2, -1, -1, -1)
    full = cloud.admin("one.vmpool.infoextended", -2, -1, -1, -1)
    assert "<PERMISSIONS>" not in short and "TAG" not in short
    assert "<TAG><![CDATA[x]]></TAG>" in full and "<PERMISSIONS>" in full
    assert "<TAG><![CDATA[x]]></TAG>" in cloud.admin("one.vm.info", vm)


def test_update_resize_attach_and_saveas(cloud: Cloud) -> None:
    vm = cloud.admin("one.vm.allocate", VM.format(name="u", cpu=0.5, memory=128) + '\nA = "1"')
    cloud.admin("one.vm.update", vm, 'B = "2"', 1)
    doc = cloud.admin("one.vm.info", vm)
    assert "<A><![CDATA[1]]></A><B><![CDATA[2]]></B>" in doc
    cloud.admin("one.vm.update", vm, 'C = "3"', 0)
    doc = cloud.admin("one.vm.info", vm)
    assert "<USER_TEMPLATE><C><![CDATA[3]]></C></USER_TEMPLATE>" in doc
    cloud.admin("one.vm.action", "poweroff", vm)
    cloud.admin("one.vm.resize", vm, 'CPU = "1"\nMEMORY = "256"', False)
    assert "<MEMORY><![CDATA[256]]></MEMORY>" in cloud.admin("one.vm.info", vm)
    cloud.admin("one.vm.attach", vm, 'DISK = [ TYPE = "fs", SIZE = "10" ]')
    assert "<DISK_ID><![CDATA[1]]></DISK_ID>" in cloud.admin("one.vm.info", vm)
    cloud.admin("one.vm.detach", vm, 1)
    assert "<DISK_ID><![CDATA[1]]></DISK_ID>" not in cloud.admin("one.vm.info", vm)
    cloud.admin("one.vm.attachnic", vm, "NIC = [ NETWORK_ID = 0 ]")
    assert "<NIC_ID><![CDATA[0]]></NIC_ID>" in cloud.admin("one.vm.info", vm)
    cloud.admin("one.vm.detachnic", vm, 0)
    assert "<USED_LEASES>0</USED_LEASES>" in cloud.admin("one.vn.info", 0)
    image = cloud.admin("one.vm.disksaveas", vm, 0, "snapshot-image", "", -1)
    assert "<NAME>snapshot-image</NAME>" in cloud.admin("one.image.info", image)
    assert state(cloud.admin, vm) == (3, 27)  # HOTPLUG_SAVEAS_POWEROFF until the copy is done
    wait_for(lambda: state(cloud.admin, vm) == (8, 0))
    assert "<STATE>1</STATE>" in cloud.admin("one.image.info", image)
    snap = cloud.admin("one.vm.disksnapshotcreate", vm, 0, "s1")
    assert "<SNAPSHOTS>" in cloud.admin("one.vm.info", vm)
    cloud.admin("one.vm.disksnapshotdelete", vm, 0, snap)
    cloud.admin("one.vm.rename", vm, "renamed")
    assert "<NAME>renamed</NAME>" in cloud.admin("one.vm.info", vm)
    cloud.admin("one.vm.recover", vm, 3)
    assert state(cloud.admin, vm) == (6, 0)


def test_instantiate_merges_extra_template(cloud: Cloud) -> None:
    vm = cloud.admin("one.template.instantiate", 0, "", False, 'MEMORY = "96"\nTAG = "y"', False)
    doc = cloud.admin("one.vm.info", vm)
    assert f"<NAME>tiny-{vm}</NAME>" in doc
    assert "<MEMORY><![CDATA[96]]></MEMORY>" in doc and "<TEMPLATE_ID><![CDATA[0]]>" in doc
    assert "<TAG><![CDATA[y]]></TAG>" in doc
    assert "<ETH0_IP><![CDATA[10.0.0.10]]></ETH0_IP>" in doc


def test_instantiate_needs_extra_template_when_hold_is_sent(cloud: Cloud) -> None:
    """oned 6.10 reads `hold` and `extra_template` together: three arguments are a fault."""
    with pytest.raises(xmlrpc.client.Fault) as fault:
        cloud.admin.raw("one.template.instantiate", 0, "x", True)
    assert fault.value.faultCode == -501
    assert cloud.admin("one.template.instantiate", 0, "x") >= 0


SLOW = Lifecycle(schedule=0.15, prolog=0.15, boot=0.15, shutdown=0.15, epilog=0.15)


def walk(one: One, vm_id: int, until: tuple[int, int], timeout: float = 10) -> list[tuple]:
    """Every distinct (STATE, LCM_STATE) seen while polling until `until`."""
    seen: list[tuple[int, int]] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = state(one, vm_id)
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == until:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"never reached {until}: {seen}")


@pytest.mark.parametrize(
    ("action", "steps", "resumed"),
    [
        ("poweroff", [(3, 18), (8, 0)], [(3, 20), (3, 3)]),
        ("suspend", [(3, 6), (5, 0)], [(3, 21), (3, 3)]),
        ("stop", [(3, 5), (3, 10), (4, 0)], [(1, 0), (3, 9), (3, 22), (3, 3)]),
        ("undeploy", [(3, 29), (3, 30), (9, 0)], [(1, 0), (3, 31), (3, 32), (3, 3)]),
    ],
)
def test_transitions_of_actions_with_delays(
    tmp_path: Path, action: str, steps: list[tuple], resumed: list[tuple]
) -> None:
    sim = start_sim(tmp_path, SLOW)
    try:
        one = One(sim.url, sim.oneadmin_session)
        seed(one)
        vm = one("one.vm.allocate", VM.format(name="slow", cpu=1, memory=128))
        walk(one, vm, (3, 3))
        one("one.vm.action", action, vm)
        assert walk(one, vm, steps[-1]) == steps
        host = one("one.host.info", 0)
        frees_host = action in ("stop", "undeploy")
        assert ("<RUNNING_VMS>0</RUNNING_VMS>" in host) == frees_host
        one("one.vm.action", "resume", vm)
        assert walk(one, vm, (3, 3)) == resumed
        records = one("one.vm.info", vm).count("<HISTORY><OID>")
        assert records == 2  # a new history record after the resume
    finally:
        sim.stop()


def test_reservations_hold_and_release(cloud: Cloud) -> None:
    one = cloud.admin
    assert one.error("one.vn.reserve", 0, 'NAME = "x"\nSIZE = 1\nIP = "10.0.0.20"')[1] == (
        "[one.vn.reserve] AR_ID must be specified for IP/MAC based reservations"
    )
    child = one("one.vn.reserve", 0, 'NAME = "eip-1"\nSIZE = 1\nAR_ID = 0\nIP = "10.0.0.20"')
    doc = one("one.vn.info", child)
    assert "<PARENT_NETWORK_ID>0</PARENT_NETWORK_ID>" in doc  # no CDATA, as oned
    assert "<IP><![CDATA[10.0.0.20]]></IP>" in doc and "<SIZE><![CDATA[1]]></SIZE>" in doc
    parent = one("one.vn.info", 0)
    assert (
        f"<IP><![CDATA[10.0.0.20]]></IP><MAC><![CDATA[02:00:0a:00:00:14]]></MAC><VNET><![CDATA[{child}]]></VNET>"
        in parent
    )
    assert one.error("one.vn.reserve", child, 'NAME = "y"\nSIZE = 1')[1] == (
        "[one.vn.reserve] Cannot reserve addresses from a reserved VNET"
    )
    more = one("one.vn.reserve", 0, f"SIZE = 2\nNETWORK_ID = {child}")
    assert more == child and one("one.vn.info", child).count("<AR>") == 2
    vm = one(
        "one.vm.allocate",
        VM.format(name="e", cpu=0.1, memory=64)
        + f'\nNIC = [ NETWORK_ID = {child}, IP = "10.0.0.20" ]',
    )
    assert "<IP><![CDATA[10.0.0.20]]></IP>" in one("one.vm.info", vm)
    assert one.error("one.vn.delete", child)[2] == 2048  # leases in use
    one("one.vm.action", "terminate-hard", vm)
    one("one.vn.delete", child)
    assert "<VNET><![CDATA[" not in one("one.vn.info", 0)
    one("one.vn.hold", 0, 'LEASES = [ IP = "10.0.0.15" ]')
    assert "<VM><![CDATA[-1]]></VM>" in one("one.vn.info", 0)
    one("one.vn.release", 0, 'LEASES = [ IP = "10.0.0.15" ]')
    assert "<USED_LEASES>0</USED_LEASES>" in one("one.vn.info", 0)
    one("one.vn.add_ar", 0, 'AR = [ TYPE = "IP4", IP = "10.0.1.10", SIZE = "4" ]')
    assert one("one.vn.info", 0).count("<AR>") == 2
    one("one.vn.rm_ar", 0, 1)
    assert one("one.vn.info", 0).count("<AR>") == 1
