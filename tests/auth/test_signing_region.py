"""The signing-region decision (issue 18 item 7): which SigV4 scope regions are refused."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import botocore.session
import pytest
from lxml import etree

from ec2gw.app import check_signing_region
from ec2gw.auth.signing_region import aws_region_names, near_miss, refusal
from ec2gw.config import Settings
from ec2gw.one.errors import OneError

LOCAL = "opennebula"
ZONES = {LOCAL: (0, ""), "lyon": (1, "https://ec2.lyon.example.org"), "paris": (2, "")}


def test_botocores_ec2_regions_are_all_known():
    session = botocore.session.get_session()
    for partition in session.get_available_partitions():
        expected = set(session.get_available_regions("ec2", partition_name=partition))
        assert expected <= aws_region_names(), partition
    assert {"us-east-1", "eu-west-3", "cn-north-1", "us-gov-west-1"} <= aws_region_names()


@pytest.mark.parametrize(
    "scope",
    [
        LOCAL,
        "0",  # boto 2 with an IP-address endpoint (service 127)
        "127",
        "cloud",  # boto 2's second label of a four-label host name
        "example",
        "ec2",
        "",
        "x" * 300,
        "région",
        "e",
    ],
)
def test_scopes_that_name_no_other_region_are_accepted(scope):
    assert refusal(scope, LOCAL, ZONES) is None


@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        ("us-east-1", "an AWS region"),
        ("eu-west-3", "an AWS region"),
        ("fips-us-east-1", "an AWS region"),
        ("us-est-1", "shaped like an AWS region name"),
        ("xx-nowhere-9", "shaped like an AWS region name"),
        ("opennebla", "a near miss"),
        ("opennebual", "a near miss"),
        ("OpenNebula", "a near miss"),
        ("open-nebula", "a near miss"),
    ],
)
def test_real_regions_and_typos_are_refused_naming_this_region(scope, reason):
    err = refusal(scope, LOCAL, ZONES)
    assert err is not None
    assert (err.code, err.status) == ("AuthFailure", 401)
    assert err.message == (
        f"Credential should be scoped to a valid region, not '{scope}'. "
        f"This endpoint serves region '{LOCAL}': sign for it."
    )
    assert reason in err.detail and "accept_any_signing_region" in err.detail


def test_another_zone_is_refused_with_its_endpoint_if_known():
    lyon = refusal("lyon", LOCAL, ZONES)
    assert lyon is not None and lyon.code == "AuthFailure"
    assert lyon.message.endswith(
        "This endpoint serves region 'opennebula': sign for it. "
        "Region 'lyon' is served at https://ec2.lyon.example.org."
    )
    assert "OpenNebula zone 1" in lyon.detail
    paris = refusal("paris", LOCAL, ZONES)
    assert paris is not None
    assert paris.message.endswith("Region 'paris' is OpenNebula zone 2, served by its own gateway.")


def test_a_gateway_named_after_an_aws_region_accepts_it_and_refuses_others():
    """libcloud's set-up: `[gateway] region_name = "us-east-1"`."""
    zones = {"us-east-1": (0, "")}
    assert refusal("us-east-1", "us-east-1", zones) is None
    assert refusal("0", "us-east-1", zones) is None
    assert refusal("opennebula", "us-east-1", zones) is None  # the zone's own name
    err = refusal("us-west-2", "us-east-1", zones)
    assert err is not None and "serves region 'us-east-1'" in err.message


def test_a_long_region_is_quoted_back_shortened():
    scope = "us-" + "a" * 200 + "-1"
    err = refusal(scope, LOCAL, ZONES)
    assert err is not None and scope[:64] in err.message and scope[:65] not in err.message


@pytest.mark.parametrize(
    ("scope", "local", "near"),
    [
        ("lab", "lab", True),
        ("LAB", "lab", True),
        ("lax", "lab", False),  # three letters: case only
        ("0", "eu", False),
        ("zone-a", "zone-b", True),  # one edit for 4-7 characters
        ("zone-ab", "zone-b", True),
        ("zne-bc", "zone-b", False),
        ("opennebula", "opennebula", True),
        ("openebul", "opennebula", True),  # two edits from 8 on
        ("opnebul", "opennebula", False),
        ("opennebula" * 3, "opennebula", False),
    ],
)
def test_near_miss(scope, local, near):
    assert near_miss(scope, local) is near


class FakeOne:
    endpoint = "http://one.test/RPC2"

    def __init__(self, zones_xml: str | None) -> None:
        self.zones_xml = zones_xml
        self.calls = 0

    async def call_document(self, session: str, method: str, *args: object):
        assert (session, method) == ("admin-session", "one.zonepool.info")
        self.calls += 1
        if self.zones_xml is None:
            raise OneError("one.zonepool.info", 0x0800, "oned unreachable")
        return etree.fromstring(self.zones_xml)


ZONEPOOL = (
    "<ZONE_POOL>"
    "<ZONE><ID>0</ID><NAME>OpenNebula</NAME><TEMPLATE/></ZONE>"
    "<ZONE><ID>1</ID><NAME>Lyon</NAME>"
    "<TEMPLATE><EC2_ENDPOINT><![CDATA[https://ec2.lyon.example.org]]></EC2_ENDPOINT>"
    "</TEMPLATE></ZONE>"
    "</ZONE_POOL>"
)


def gateway(zones_xml: str | None, **options: object) -> SimpleNamespace:
    settings = Settings()
    for name, value in options.items():
        setattr(settings.gateway, name, value)
    one = FakeOne(zones_xml)
    one.endpoint = f"http://one.test/{id(one)}"  # a cache entry of its own
    return SimpleNamespace(
        settings=settings, one=one, sessions=SimpleNamespace(admin="admin-session")
    )


def check(gw: SimpleNamespace, region: str) -> str | None:
    """The refusal's message, or None when accepted."""
    try:
        asyncio.run(check_signing_region(gw, region))
    except Exception as err:  # noqa: BLE001 - the test looks at what it is
        assert getattr(err, "code", None) == "AuthFailure", err
        return err.message
    return None


def test_the_gateway_checks_with_the_zones_of_its_opennebula():
    gw = gateway(ZONEPOOL)
    assert check(gw, "opennebula") is None
    assert check(gw, "0") is None
    assert "served at https://ec2.lyon.example.org" in check(gw, "lyon")
    assert "serves region 'opennebula'" in check(gw, "us-east-1")
    assert "serves region 'opennebula'" in check(gw, "opennebla")
    assert gw.one.calls == 1  # the zones are cached


def test_the_setting_accepts_every_region():
    gw = gateway(ZONEPOOL, accept_any_signing_region=True)
    for region in ("us-east-1", "lyon", "opennebla"):
        assert check(gw, region) is None
    assert gw.one.calls == 0


def test_a_configured_region_name_is_this_gateways_region():
    gw = gateway(ZONEPOOL, region_name="us-east-1")
    assert check(gw, "us-west-2") is not None
    assert "serves region 'us-east-1'" in check(gw, "eu-west-1")
    assert check(gw, "opennebula") is None  # the zone's own name: no other region


def test_without_the_zones_only_what_is_certain_is_refused():
    """OpenNebula unreachable: an AWS region is still refused when this gateway's region
    is configured; with no configured region nothing can be said (the request then meets
    the outage itself)."""
    assert check(gateway(None, region_name="mine"), "us-east-1") is not None
    assert check(gateway(None, region_name="mine"), "lyon") is None
    assert check(gateway(None), "us-east-1") is None
