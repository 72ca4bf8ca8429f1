"""An instance shows every security group OpenNebula applies to its NICs, the Elastic IP's
NIC included (oned puts every reservation network, so every Elastic IP's NIC, in group 0)."""

from __future__ import annotations

from ec2gw.actions import instance_view as view
from ec2gw.one import documents

ZONES = view.Zones(region="opennebula", vpc_id="vpc-00000000", by_cluster={0: "opennebulaa"})


def _vm(*nics: str) -> documents.Element:
    rules = "".join(
        f"<SECURITY_GROUP_RULE><SECURITY_GROUP_ID>{g}</SECURITY_GROUP_ID>"
        f"<SECURITY_GROUP_NAME>{name}</SECURITY_GROUP_NAME></SECURITY_GROUP_RULE>"
        for g, name in ((0, "default"), (101, "ssh-only"))
    )
    return documents.parse(
        "<VM><ID>73</ID><UID>4</UID><STATE>3</STATE><LCM_STATE>3</LCM_STATE><STIME>1</STIME>"
        f"<TEMPLATE>{''.join(nics)}{rules}</TEMPLATE><USER_TEMPLATE/></VM>"
    )


def _nic(nic_id: int, network: int, groups: str, elastic: bool = False) -> str:
    mark = f"<{view.ELASTIC_NIC}>YES</{view.ELASTIC_NIC}>" if elastic else ""
    return (
        f"<NIC><NIC_ID>{nic_id}</NIC_ID><NETWORK_ID>{network}</NETWORK_ID><IP>10.0.0.{nic_id}</IP>"
        f"<SECURITY_GROUPS>{groups}</SECURITY_GROUPS>{mark}</NIC>"
    )


def _ids(groups: list[dict[str, str]]) -> list[str]:
    return [g["GroupId"] for g in groups]


def test_the_groups_of_the_nic_are_shown_as_oned_reports_them() -> None:
    instance = view.to_instance(_vm(_nic(0, 0, "0,101")), ZONES)
    assert instance["SecurityGroups"] == [
        {"GroupId": "sg-00000000", "GroupName": "default"},
        {"GroupId": "sg-00000065", "GroupName": "ssh-only"},
    ]
    assert _ids(instance["NetworkInterfaces"][0]["Groups"]) == ["sg-00000000", "sg-00000065"]


def test_the_elastic_ips_nic_groups_show_on_the_instance_and_its_primary_interface() -> None:
    vm = _vm(_nic(0, 0, "101"), _nic(1, 7, "101"), _nic(2, 9, "0", elastic=True))
    instance = view.to_instance(vm, ZONES)
    assert _ids(instance["SecurityGroups"]) == ["sg-00000000", "sg-00000065"]
    primary, second = instance["NetworkInterfaces"]
    assert _ids(primary["Groups"]) == ["sg-00000000", "sg-00000065"]
    assert _ids(second["Groups"]) == ["sg-00000065"]
    assert [_ids(n["Groups"]) for n in view.network_interfaces(vm, ZONES)] == [
        ["sg-00000000", "sg-00000065"],
        ["sg-00000065"],
    ]
