"""The instance view's remembered serializations (`instance_xml`) against fresh ones, on
real oned VM documents (shared/fixtures/oned-6.10.5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from ec2gw.actions import instance_view as view
from ec2gw.one import documents
from ec2gw.protocol import model
from ec2gw.protocol.serializer import structure_xml

SHARED = Path(os.environ.get("EC2GW_SHARED") or Path(__file__).resolve().parents[3] / "shared")
ONED = SHARED / "fixtures" / "oned-6.10.5"
ZONES = view.Zones(region="opennebula", vpc_id="vpc-00000000", by_cluster={0: "opennebulaa"})


def fixture_vms() -> list[tuple[str, documents.Element]]:
    """Every VM of the vm.info and vmpool.infoextended fixtures."""
    found = []
    for path in sorted(ONED.glob("vm*.xml")):
        if path.name.endswith(".methodResponse.xml") or "monitoring" in path.name:
            continue
        root = documents.parse(path.read_bytes())
        for index, vm in enumerate([root] if root.tag == "VM" else root.iterfind("VM")):
            found.append((f"{path.stem}[{index}]", vm))
    return found


VMS = fixture_vms()


def fresh(vm: documents.Element, zones: view.Zones = ZONES) -> tuple[str, str]:
    instance = view.to_instance(vm, zones)
    shape = model.service_model().shape_for("Instance")
    return instance["ReservationId"], structure_xml(shape, instance)


@pytest.fixture(autouse=True)
def empty_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view, "_instance_xml", {})


def copy(vm: documents.Element) -> documents.Element:
    return documents.parse(etree.tostring(vm))


def test_the_fixtures_hold_vms() -> None:
    assert len(VMS) >= 8


@pytest.mark.parametrize(("name", "vm"), VMS, ids=[name for name, _ in VMS])
def test_remembered_equals_fresh_and_is_reused(name: str, vm: documents.Element) -> None:
    first = view.instance_xml(vm, ZONES)
    assert first == fresh(vm)
    again = view.instance_xml(copy(vm), ZONES)
    assert again[1] is first[1]


def edit(vm: documents.Element, path: str, value: str) -> documents.Element:
    changed = copy(vm)
    element = changed.find(path)
    if element is None:  # add it, parents included
        parent = changed
        for tag in path.split("/"):
            child = parent.find(tag)
            parent = child if child is not None else etree.SubElement(parent, tag)
        element = parent
    element.text = value
    return changed


# Something of each part of the VM the conversion reads.
EDITS = [
    ("STATE", "8"),
    ("LCM_STATE", "0"),
    ("STIME", "1700000000"),
    ("UID", "7"),
    ("TEMPLATE/NIC/IP", "10.9.9.9"),
    ("TEMPLATE/NIC/SECURITY_GROUPS", "0,1"),
    ("TEMPLATE/DISK/TARGET", "sdz"),
    ("TEMPLATE/VCPU", "7"),
    ("TEMPLATE/OS/ARCH", "aarch64"),
    ("USER_TEMPLATE/EC2_INSTANCE_TYPE", "m9.huge"),
    ("USER_TEMPLATE/EC2_KEY_NAME", "other-key"),
    ("HISTORY_RECORDS/HISTORY/CID", "5"),
]


@pytest.mark.parametrize(("path", "value"), EDITS)
def test_a_change_the_conversion_reads_is_never_served_stale(path: str, value: str) -> None:
    _, vm = next((name, vm) for name, vm in VMS if "deployed" in name)
    before = view.instance_xml(vm, ZONES)
    changed = edit(vm, path, value)
    after = view.instance_xml(changed, ZONES)
    assert after == fresh(changed)
    assert after != before


def test_tags_and_zones_are_part_of_the_key() -> None:
    _, vm = next((name, vm) for name, vm in VMS if "deployed" in name)
    before = view.instance_xml(vm, ZONES)
    tagged = copy(vm)
    documents.add_vector(
        tagged.find("USER_TEMPLATE"), documents.TAG_ATTRIBUTE, {"KEY": "Name", "VALUE": "web"}
    )
    assert view.instance_xml(tagged, ZONES) == fresh(tagged)
    assert "<key>Name</key><value>web</value>" in view.instance_xml(tagged, ZONES)[1]
    elsewhere = view.Zones(region="opennebula", vpc_id="vpc-00000000", by_cluster={0: "zz"})
    assert view.instance_xml(vm, elsewhere) == fresh(vm, elsewhere) != before


def test_monitoring_data_does_not_defeat_the_memory() -> None:
    _, vm = next((name, vm) for name, vm in VMS if "deployed" in name)
    first = view.instance_xml(vm, ZONES)
    polled = edit(edit(vm, "LAST_POLL", "1999999999"), "MONITORING/CPU", "99")
    assert view.instance_xml(polled, ZONES)[1] is first[1]


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view, "INSTANCE_XML_ENTRIES", 3)
    _, vm = next((name, vm) for name, vm in VMS if "deployed" in name)
    for n in range(10):
        view.instance_xml(edit(vm, "STIME", str(1700000000 + n)), ZONES)
        assert len(view._instance_xml) <= 3


def test_an_attached_volume_s_attach_time_is_part_of_the_key() -> None:
    """AttachVolume writes the attach time into the volume's DISK (EC2_ATTACH_TIME): the
    view shows it as that mapping's AttachTime, and a change of it is never served stale."""
    _, vm = next((name, vm) for name, vm in VMS if "deployed" in name)
    attached = copy(vm)
    documents.add_vector(
        attached.find("TEMPLATE"),
        "DISK",
        {
            "DISK_ID": "2",
            "IMAGE_ID": "5",
            "TARGET": "sdf",
            view.VOLUME_DISK: "vol-00000005",
            view.ATTACH_TIME_DISK: "1795727600",
        },
    )
    before = view.instance_xml(attached, ZONES)
    assert before == fresh(attached)
    devices = {
        m["DeviceName"]: m["Ebs"]["AttachTime"]
        for m in view.to_instance(attached, ZONES)["BlockDeviceMappings"]
    }
    launched = view.to_instance(attached, ZONES)["LaunchTime"]
    assert devices == {"/dev/sda": launched, "/dev/sdf": view._time(1795727600)}
    later = edit(attached, "TEMPLATE/DISK[last()]/EC2_ATTACH_TIME", "1795727700")
    after = view.instance_xml(later, ZONES)
    assert after == fresh(later) != before
    stamp = view._time(1795727700).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert f"<attachTime>{stamp}</attachTime>" in after[1]
    assert f"<attachTime>{stamp}</attachTime>" not in before[1]
