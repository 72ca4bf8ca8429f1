"""`ec2gw check`'s warning about subnets whose NICs OpenNebula opens to all inbound traffic."""

from __future__ import annotations

import pytest

from ec2gw.cli import allows_all_inbound, open_networks
from ec2gw.one import documents

# OpenNebula's group 0 as oned creates it (src/secgroup/SecurityGroupPool.cc).
DEFAULT = (
    "<SECURITY_GROUP><ID>0</ID><NAME>default</NAME><TEMPLATE>"
    "<RULE><PROTOCOL>ALL</PROTOCOL><RULE_TYPE>OUTBOUND</RULE_TYPE></RULE>"
    "<RULE><PROTOCOL>ALL</PROTOCOL><RULE_TYPE>INBOUND</RULE_TYPE></RULE>"
    "</TEMPLATE></SECURITY_GROUP>"
)
WEB = (
    "<SECURITY_GROUP><ID>100</ID><NAME>web</NAME><TEMPLATE>"
    "<RULE><PROTOCOL>TCP</PROTOCOL><RULE_TYPE>INBOUND</RULE_TYPE><RANGE>443</RANGE></RULE>"
    "<RULE><PROTOCOL>ALL</PROTOCOL><RULE_TYPE>OUTBOUND</RULE_TYPE></RULE>"
    "</TEMPLATE></SECURITY_GROUP>"
)


def _group(*rules: str) -> documents.Element:
    body = "".join(f"<RULE>{r}</RULE>" for r in rules)
    return documents.parse(
        f"<SECURITY_GROUP><ID>7</ID><TEMPLATE>{body}</TEMPLATE></SECURITY_GROUP>"
    )


def _rule(protocol: str, direction: str, extra: str = "") -> str:
    return f"<PROTOCOL>{protocol}</PROTOCOL><RULE_TYPE>{direction}</RULE_TYPE>{extra}"


@pytest.mark.parametrize(
    ("rules", "open_"),
    [
        ([_rule("ALL", "INBOUND")], True),
        ([_rule("all", "inbound")], True),  # oned checks these case-insensitively
        ([_rule("ALL", "OUTBOUND")], False),
        ([_rule("ALL", "INBOUND", "<IP>10.0.0.0</IP><SIZE>256</SIZE>")], False),
        ([_rule("ALL", "INBOUND", "<NETWORK_ID>3</NETWORK_ID>")], False),
        ([_rule("TCP", "INBOUND")], False),  # every TCP port, but TCP only
        ([_rule("TCP", "INBOUND", "<RANGE>22</RANGE>"), _rule("ALL", "OUTBOUND")], False),
        ([], False),
    ],
)
def test_allows_all_inbound(rules: list[str], open_: bool) -> None:
    assert allows_all_inbound(_group(*rules)) is open_


def test_default_group_allows_all_inbound_and_a_port_group_does_not() -> None:
    assert allows_all_inbound(documents.parse(DEFAULT))
    assert not allows_all_inbound(documents.parse(WEB))


def _vnet(vnet_id: int, name: str, groups: str, ar_groups: str = "", parent: int = -1) -> str:
    ar = f"<AR><AR_ID>0</AR_ID><SECURITY_GROUPS>{ar_groups}</SECURITY_GROUPS></AR>"
    return (
        f"<VNET><ID>{vnet_id}</ID><NAME>{name}</NAME>"
        f"<PARENT_NETWORK_ID>{'' if parent < 0 else parent}</PARENT_NETWORK_ID>"
        f"<TEMPLATE><SECURITY_GROUPS>{groups}</SECURITY_GROUPS></TEMPLATE>"
        f"<AR_POOL>{ar}</AR_POOL></VNET>"
    )


def _warnings(*vnets: str, public: str = "public") -> list[str]:
    pool = documents.parse(f"<VNET_POOL>{''.join(vnets)}</VNET_POOL>")
    groups = documents.parse(f"<SECURITY_GROUP_POOL>{DEFAULT}{WEB}</SECURITY_GROUP_POOL>")
    return open_networks(pool, groups, public)


def test_a_network_carrying_group_0_is_named_with_its_fix() -> None:
    (warning,) = _warnings(_vnet(4, "private", "0,100"))
    assert "network 'private' (subnet-00000004)" in warning
    assert "security group 0 'default'" in warning and "allows all inbound" in warning
    assert """one.vn.update(4, 'SECURITY_GROUPS="100"', 1)""" in warning
    assert "onevnet update 4" in warning


def test_an_address_range_carrying_group_0_is_named_with_its_fix() -> None:
    (warning,) = _warnings(_vnet(4, "private", "100", ar_groups="0"))
    assert "address range 0 of network 'private' (subnet-00000004)" in warning
    assert """one.vn.update_ar(4, 'AR=[AR_ID=0, SECURITY_GROUPS=""]')""" in warning


def test_no_warning_for_closed_networks_nor_the_public_network() -> None:
    assert _warnings(_vnet(0, "private", ""), _vnet(1, "lab", "100", ar_groups="100")) == []
    # The public network of Elastic IPs and its reservations are no subnets.
    assert _warnings(_vnet(1, "public", "0"), _vnet(9, "eip", "0", parent=1)) == []
    assert len(_warnings(_vnet(1, "public", "0"), public="")) == 1
