"""A VM's tags in both forms: the per-tag `EC2_TAG_<digest>` vectors and the repeated
`EC2_TAG` vectors a launch writes (VM USER_TEMPLATEs are not in replace mode)."""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from ec2gw.actions import instance_view as view
from ec2gw.one import documents

SHARED = Path(os.environ.get("EC2GW_SHARED") or Path(__file__).resolve().parents[3] / "shared")
ZONES = view.Zones(region="opennebula", vpc_id="vpc-00000000", by_cluster={0: "opennebulaa"})


def a_vm() -> documents.Element:
    path = SHARED / "fixtures" / "oned-6.10.5" / "vm.info.xml"
    return documents.parse(path.read_bytes())


def tagged_vm() -> documents.Element:
    vm = a_vm()
    user_template = vm.find("USER_TEMPLATE")
    for child in list(user_template):
        if documents.TAGS.holds(child):
            user_template.remove(child)
    for key, value in (("Name", "old"), ("launch", "1")):
        documents.add_vector(user_template, documents.TAG_ATTRIBUTE, {"KEY": key, "VALUE": value})
    for name, values in documents.tag_vectors({"Name": "new", "added": "2"}):
        documents.add_vector(user_template, name, dict(values))
    return documents.parse(etree.tostring(vm))


def test_both_forms_are_read_and_the_new_one_wins() -> None:
    expected = {"Name": "new", "added": "2", "launch": "1"}
    vm = tagged_vm()
    assert view.vm_tags(vm) == expected
    instance = view.to_instance(vm, ZONES)
    assert {t["Key"]: t["Value"] for t in instance["Tags"]} == expected


def test_tag_vectors_are_not_read_as_user_template_facts() -> None:
    instance = view.to_instance(tagged_vm(), ZONES)
    assert not any(name.startswith("EC2_TAG") for name in view._facts(tagged_vm()).user)
    assert instance["InstanceId"].startswith("i-")
