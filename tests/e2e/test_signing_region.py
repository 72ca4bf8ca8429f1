"""A request signed for another region (issue 18 item 7): refused, naming this region,
unless `[gateway] accept_any_signing_region`; a scope that names no region (boto 2's `0`
for an IP-address endpoint) is still answered."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import boto3
import pytest
from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.conftest import LiveGateway


def _client(gateway: LiveGateway, region: str):
    return boto3.client(
        "ec2",
        endpoint_url=gateway.url,
        region_name=region,
        aws_access_key_id=gateway.key.access_key_id,
        aws_secret_access_key=gateway.key.secret,
        config=Config(retries={"max_attempts": 1}),
    )


def _other_aws_region(gateway: LiveGateway) -> str:
    return "us-east-1" if gateway.region != "us-east-1" else "eu-west-3"


def _typo(region: str) -> str:
    """The gateway's region with its last character dropped (`opennebul`)."""
    return region[:-1]


@pytest.mark.parametrize("kind", ["aws-region", "typo"])
def test_another_region_is_refused_naming_this_one(gateway: LiveGateway, caplog, kind):
    caplog.set_level(logging.INFO, logger="ec2gw")
    region = _other_aws_region(gateway) if kind == "aws-region" else _typo(gateway.region)
    with pytest.raises(ClientError) as raised:
        _client(gateway, region).describe_instances()
    error = raised.value.response["Error"]
    status = raised.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (error["Code"], status) == ("AuthFailure", 401)
    assert error["Message"] == (
        f"Credential should be scoped to a valid region, not '{region}'. "
        f"This endpoint serves region '{gateway.region}': sign for it."
    )
    # The operator's log says why, like other auth failures.
    request_id = raised.value.response["ResponseMetadata"]["RequestId"]
    lines = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert any(
        f"access_key={gateway.key.access_key_id}: signing region '{region}' refused" in line
        and "accept_any_signing_region" in line
        for line in lines
    ), lines


def test_this_region_is_answered(gateway: LiveGateway):
    regions = _client(gateway, gateway.region).describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == [gateway.region]


def test_the_setting_accepts_any_region(gateway: LiveGateway):
    with gateway.variant(gateway__accept_any_signing_region=True) as variant:
        for region in (_other_aws_region(gateway), _typo(gateway.region)):
            regions = _client(variant, region).describe_regions()["Regions"]
            assert [r["RegionName"] for r in regions] == [gateway.region]


def test_boto2_scope_of_an_ip_address_endpoint_is_still_answered(gateway: LiveGateway):
    """boto 2 parses `127.0.0.1` into region `0`, service `127`: no region name."""
    url = urlsplit(gateway.url)
    assert url.hostname == "127.0.0.1"
    conn = EC2Connection(
        aws_access_key_id=gateway.key.access_key_id,
        aws_secret_access_key=gateway.key.secret,
        region=RegionInfo(name=gateway.region, endpoint=url.hostname),
        port=url.port,
        is_secure=False,
    )
    assert conn._auth_handler.determine_region_name(url.hostname) == "0"
    assert [r.name for r in conn.get_all_regions()] == [gateway.region]


def test_boto2_with_a_three_label_host_name_signs_us_east_1_and_is_told(gateway: LiveGateway):
    """boto 2 signs `us-east-1` for a host name of three labels (`ec2.example.org`): the
    refusal tells its user what to sign for (`conn.auth_region_name`)."""
    from boto.exception import EC2ResponseError

    url = urlsplit(gateway.url)
    conn = EC2Connection(
        aws_access_key_id=gateway.key.access_key_id,
        aws_secret_access_key=gateway.key.secret,
        region=RegionInfo(name=gateway.region, endpoint=url.hostname),
        port=url.port,
        is_secure=False,
    )
    conn.auth_region_name = "us-east-1"  # what boto 2 parses from ec2.example.org
    if gateway.region == "us-east-1":
        conn.get_all_regions()
        return
    with pytest.raises(EC2ResponseError) as raised:
        conn.get_all_regions()
    assert raised.value.error_code == "AuthFailure"
    assert f"This endpoint serves region '{gateway.region}'" in raised.value.error_message
    conn.auth_region_name = gateway.region
    assert [r.name for r in conn.get_all_regions()] == [gateway.region]
