"""Regions, zones, account attributes and images, through real clients."""

from __future__ import annotations

import logging

import httpx
import pytest
from botocore.exceptions import ClientError
from lxml import etree

NS = {"ec2": "http://ec2.amazonaws.com/doc/2016-11-15/"}


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_describe_regions_sigv4(gateway, ec2):
    regions = ec2.describe_regions()["Regions"]
    assert regions == [
        {
            "RegionName": gateway.region,
            "Endpoint": gateway.url,
            "OptInStatus": "opt-in-not-required",
        }
    ]
    only = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["nowhere*"]}])
    assert only["Regions"] == []
    with pytest.raises(ClientError) as err:
        ec2.describe_regions(RegionNames=["us-east-1"])
    assert error_of(err) == ("InvalidParameterValue", 400)


def test_describe_regions_sigv2(gateway):
    client = gateway.client(signature_version="v2")
    assert [r["RegionName"] for r in client.describe_regions()["Regions"]] == [gateway.region]


def test_presigned_url_fetched_with_get(gateway, ec2):
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=300)
    reply = httpx.get(url)
    assert reply.status_code == 200, reply.text
    root = etree.fromstring(reply.content)
    assert root.tag == f"{{{NS['ec2']}}}DescribeRegionsResponse"
    assert root.findtext("ec2:regionInfo/ec2:item/ec2:regionName", namespaces=NS) == gateway.region
    tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=301")
    assert httpx.get(tampered).status_code == 401


def test_wrong_secret_and_unknown_key_are_auth_failures(gateway, caplog):
    """The client learns nothing of why; the operator's log names the key and the reason."""
    from dataclasses import replace

    caplog.set_level(logging.INFO, logger="ec2gw")
    for key, reason in (
        (replace(gateway.key, secret="x" * 40), "signature mismatch"),
        (replace(gateway.key, access_key_id="AKIAAAAAAAAAAAAAAAAA"), "unknown or inactive"),
    ):
        caplog.clear()
        with pytest.raises(ClientError) as err:
            gateway.client(key).describe_regions()
        assert error_of(err) == ("AuthFailure", 401)
        message = err.value.response["Error"]["Message"]
        assert "signature" not in message.lower() and "unknown" not in message.lower()
        request_id = err.value.response["ResponseMetadata"]["RequestId"]
        lines = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
        assert any(f"access_key={key.access_key_id}" in line and reason in line for line in lines)
        assert any(f"access_key={key.access_key_id} action=DescribeRegions" in x for x in lines)


def test_availability_zones_are_clusters(gateway, ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == [f"{gateway.region}a"]
    zone = zones[0]
    assert zone["State"] == "available" and zone["RegionName"] == gateway.region
    assert zone["ZoneId"] == f"{gateway.region}-az0"
    by_name = ec2.describe_availability_zones(ZoneNames=[zone["ZoneName"]])
    assert by_name["AvailabilityZones"] == zones
    filtered = ec2.describe_availability_zones(
        Filters=[{"Name": "zone-name", "Values": ["opennebul??"]}]
    )
    assert filtered["AvailabilityZones"] == zones
    with pytest.raises(ClientError) as err:
        ec2.describe_availability_zones(ZoneNames=["us-east-1a"])
    assert error_of(err) == ("InvalidParameterValue", 400)


def test_account_attributes(ec2):
    attributes = {
        a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
        for a in ec2.describe_account_attributes()["AccountAttributes"]
    }
    assert attributes["supported-platforms"] == ["VPC"]
    assert attributes["max-instances"] == ["unlimited"]
    one = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert [a["AttributeName"] for a in one] == ["default-vpc"]


def test_describe_images_lists_the_public_os_images(ec2):
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    names = sorted(i["Name"] for i in images)
    assert names == ["alpine-3.20", "debian-12", "ubuntu-24.04"]
    ubuntu = next(i for i in images if i["Name"] == "ubuntu-24.04")
    assert ubuntu["ImageId"].startswith("ami-") and len(ubuntu["ImageId"]) == 12
    assert ubuntu["State"] == "available"
    assert ubuntu["Public"] is True
    assert ubuntu["OwnerId"] == "000000000000"
    assert ubuntu["Architecture"] == "x86_64"
    assert ubuntu["RootDeviceName"] == "/dev/vda"
    # the dummy datastore driver reports every image as 1024 MB, as oned's does
    assert ubuntu["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 1
    assert ubuntu["Description"].startswith("Ubuntu 24.04")
    assert ubuntu["CreationDate"].endswith(".000Z")


def test_describe_images_by_id_filters_owners(gateway, ec2):
    images = {i["Name"]: i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]}
    got = ec2.describe_images(ImageIds=[images["debian-12"]])["Images"]
    assert [i["Name"] for i in got] == ["debian-12"]
    named = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["*i*"]}])[
        "Images"
    ]
    assert sorted(i["Name"] for i in named) == ["alpine-3.20", "debian-12"]
    assert len(ec2.describe_images(Owners=["amazon"])["Images"]) == 3
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    # the cloud's three, and on a shared cloud whatever other users made public
    public = ec2.describe_images(ExecutableUsers=["all"])["Images"]
    assert set(images.values()) <= {i["ImageId"] for i in public}
    assert all(i["Public"] for i in public)
    assert gateway.backend.real or len(public) == 3
    assert ec2.describe_images(Filters=[{"Name": "tag-key", "Values": ["x"]}])["Images"] == []


@pytest.mark.parametrize(
    ("image_id", "code"),
    [("ami-12345", "InvalidAMIID.Malformed"), ("ami-0000ffff", "InvalidAMIID.NotFound")],
)
def test_describe_images_bad_ids(ec2, image_id, code):
    with pytest.raises(ClientError) as err:
        ec2.describe_images(ImageIds=[image_id])
    assert error_of(err) == (code, 400)


def test_describe_images_pages(ec2):
    paginator = ec2.get_paginator("describe_images")
    pages = list(paginator.paginate(Owners=["amazon"], PaginationConfig={"PageSize": 2}))
    assert [len(p["Images"]) for p in pages] == [2, 1]
    assert len({i["ImageId"] for p in pages for i in p["Images"]}) == 3
    with pytest.raises(ClientError) as err:
        ec2.describe_images(ImageIds=[pages[0]["Images"][0]["ImageId"]], MaxResults=5)
    assert error_of(err) == ("InvalidParameterCombination", 400)


def test_dry_run(ec2):
    for call in (ec2.describe_images, ec2.describe_regions, ec2.describe_availability_zones):
        with pytest.raises(ClientError) as err:
            call(DryRun=True)
        assert error_of(err) == ("DryRunOperation", 412)


def test_unknown_filter_is_a_client_error(ec2):
    with pytest.raises(ClientError) as err:
        ec2.describe_images(Filters=[{"Name": "colour", "Values": ["red"]}])
    assert error_of(err) == ("InvalidParameterValue", 400)


def test_aws_cli(gateway):
    images = gateway.aws_json("ec2", "describe-images", "--owners", "amazon")["Images"]
    assert len(images) == 3
    table = gateway.aws("ec2", "describe-regions", "--output", "table")
    assert table.returncode == 0 and gateway.region in table.stdout
    names = gateway.aws(
        "ec2",
        "describe-images",
        "--owners",
        "amazon",
        "--query",
        "sort(Images[].Name)",
        "--output",
        "text",
    )
    assert names.stdout.split() == ["alpine-3.20", "debian-12", "ubuntu-24.04"]
    dry = gateway.aws("ec2", "describe-images", "--dry-run")
    assert dry.returncode == 255 and "DryRunOperation" in dry.stderr


def _signed_raw(gateway, method: str, params: dict[str, str]) -> httpx.Response:
    """Sign an arbitrary request with botocore's signer and send it as is."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials(gateway.key.access_key_id, gateway.key.secret)
    if method == "GET":
        request = AWSRequest(method="GET", url=gateway.url + "/", params=params)
    else:
        request = AWSRequest(
            method="POST",
            url=gateway.url + "/",
            data=params,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
    SigV4Auth(creds, "ec2", gateway.region).add_auth(request)
    prepared = request.prepare()
    return httpx.request(
        method, prepared.url, headers=dict(prepared.headers), content=prepared.body
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_protocol_errors(gateway, method):
    cases = [
        ({"Action": "DescribeRegions", "Version": "2016-11-15"}, 200, None),
        ({"Action": "Frobnicate", "Version": "2016-11-15"}, 400, "InvalidAction"),
        ({"Action": "DescribeVpnGateways", "Version": "2016-11-15"}, 400, "UnsupportedOperation"),
        ({"Version": "2016-11-15"}, 400, "MissingAction"),
        ({"Action": "DescribeImages", "MaxResults": "lots"}, 400, "InvalidParameterValue"),
        ({"Action": "DescribeImages", "Bogus.1": "x"}, 400, "UnknownParameter"),
    ]
    for params, status, code in cases:
        reply = _signed_raw(gateway, method, params)
        assert reply.status_code == status, (params, reply.text)
        if code:
            root = etree.fromstring(reply.content)
            assert root.tag == "Response"
            assert root.findtext("Errors/Error/Code") == code
            assert root.findtext("RequestID") == reply.headers["x-amzn-requestid"]


def test_unsigned_and_garbage_requests_get_envelopes(gateway):
    for reply in (
        httpx.get(gateway.url + "/?Action=DescribeRegions"),
        httpx.post(
            gateway.url + "/",
            content=b"\xff\xfe\x00garbage",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        httpx.post(gateway.url + "/", content=b"x" * 2_000_000),
    ):
        assert 400 <= reply.status_code < 500, reply.text
        assert etree.fromstring(reply.content).findtext("Errors/Error/Code")


def test_health_endpoints(gateway):
    assert httpx.get(gateway.url + "/healthz").text == "ok\n"
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.text.startswith("ok: OpenNebula ")
