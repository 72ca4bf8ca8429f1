"""EC2 permissions ↔ OpenNebula security group RULE vectors, both ways."""

from __future__ import annotations

import pytest

from ec2gw.actions.security_groups import ec2_rules, rule_id, rules_of_permission
from ec2gw.ec2 import ids
from ec2gw.protocol.errors import EC2Error


def _one(permission: dict, egress: bool = False) -> list[dict]:
    return rules_of_permission(permission, egress)


def test_tcp_range_and_cidrs_become_one_rule_per_cidr():
    rules = _one(
        {
            "IpProtocol": "tcp",
            "FromPort": 8000,
            "ToPort": 8080,
            "IpRanges": [{"CidrIp": "192.0.2.0/24", "Description": "lab"}, {"CidrIp": "0.0.0.0/0"}],
        }
    )
    assert rules == [
        {
            "RULE_TYPE": "INBOUND",
            "PROTOCOL": "TCP",
            "RANGE": "8000:8080",
            "IP": "192.0.2.0",
            "SIZE": "256",
            "DESCRIPTION": "lab",
        },
        {"RULE_TYPE": "INBOUND", "PROTOCOL": "TCP", "RANGE": "8000:8080"},
    ]
    back = ec2_rules(7, "000000000002", rules)
    assert [(r["FromPort"], r["ToPort"], r["CidrIpv4"]) for r in back] == [
        (8000, 8080, "192.0.2.0/24"),
        (8000, 8080, "0.0.0.0/0"),
    ]
    assert back[0]["Description"] == "lab" and back[0]["GroupId"] == "sg-00000007"


@pytest.mark.parametrize(
    ("permission", "expected"),
    [
        ({"IpProtocol": "-1"}, {"PROTOCOL": "ALL"}),
        ({"IpProtocol": "udp", "FromPort": 53, "ToPort": 53}, {"PROTOCOL": "UDP", "RANGE": "53"}),
        ({"IpProtocol": "6", "FromPort": 0, "ToPort": 65535}, {"PROTOCOL": "TCP"}),
        ({"IpProtocol": "tcp", "FromPort": -1, "ToPort": -1}, {"PROTOCOL": "TCP"}),
        (
            {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1},
            {"PROTOCOL": "ICMP", "ICMP_TYPE": "8"},
        ),
        ({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1}, {"PROTOCOL": "ICMP"}),
    ],
)
def test_protocols_and_ports(permission, expected):
    (rule,) = _one({**permission, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, egress=True)
    assert rule == {"RULE_TYPE": "OUTBOUND", **expected}


@pytest.mark.parametrize(
    "permission",
    [
        {"IpProtocol": "gre", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 5, "ToPort": 1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {
            "IpProtocol": "tcp",
            "FromPort": 1,
            "ToPort": 70000,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
        },
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "10.0.0.0/33"}]},
        {
            "IpProtocol": "tcp",
            "FromPort": 1,
            "ToPort": 2,
            "UserIdGroupPairs": [{"GroupId": "sg-1"}],
        },
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    ],
)
def test_what_opennebula_cannot_say_is_refused(permission):
    with pytest.raises(EC2Error) as err:
        _one(permission)
    assert err.value.code == "InvalidParameterValue"


def test_rules_made_elsewhere_read_back():
    """Multi-port RANGEs, unaligned IP+SIZE spans and network rules, as Sunstone makes them."""
    rules = [
        {
            "RULE_TYPE": "INBOUND",
            "PROTOCOL": "TCP",
            "RANGE": "22,80:81",
            "IP": "10.0.0.1",
            "SIZE": "3",
        },
        {"RULE_TYPE": "INBOUND", "PROTOCOL": "TCP", "NETWORK_ID": "4"},
    ]
    back = ec2_rules(1, "000000000000", rules)
    assert sorted((r["FromPort"], r["ToPort"], r["CidrIpv4"]) for r in back) == [
        (22, 22, "10.0.0.1/32"),
        (22, 22, "10.0.0.2/31"),
        (80, 81, "10.0.0.1/32"),
        (80, 81, "10.0.0.2/31"),
    ]


def test_rule_ids_name_the_group_and_are_stable():
    rule = {"RULE_TYPE": "INBOUND", "PROTOCOL": "TCP", "RANGE": "22"}
    first = rule_id(5, rule)
    assert first == rule_id(5, {**rule, "DESCRIPTION": "notes do not count"})
    assert first != rule_id(5, {**rule, "RANGE": "23"})
    assert ids.SECURITY_GROUP_RULE.decode_pair(first)[0] == 5
