"""boto3: the aws cli's workflow as a script would write it — paginators, waiters, both
signature versions boto3 can speak to EC2, and a presigned URL fetched with a plain GET."""

from __future__ import annotations

import base64

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from lxml import etree

from tests.e2e.conftest import LiveGateway

NS = {"ec2": "http://ec2.amazonaws.com/doc/2016-11-15/"}
FAST = {"Delay": 1, "MaxAttempts": 20}


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _instance_ids(pages) -> list[list[str]]:
    return [
        [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]] for page in pages
    ]


@pytest.mark.parametrize("signature_version", ["v4", "v2"])
def test_boto3_workflow(gateway: LiveGateway, signature_version: str):
    key = gateway.new_user(f"client-boto3-{signature_version}")
    ec2 = gateway.client(key, signature_version=signature_version)
    sent: list[str] = []
    ec2.meta.events.register("before-send.ec2", lambda request, **_: sent.append(_scheme(request)))

    # Discovery, through paginators where the model has one.
    assert [r["RegionName"] for r in ec2.describe_regions()["Regions"]] == [gateway.region]
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert {z["State"] for z in zones} == {"available"}
    images = [
        image
        for page in ec2.get_paginator("describe_images").paginate(Owners=["amazon"])
        for image in page["Images"]
    ]
    assert len(images) >= 3 and {i["State"] for i in images} == {"available"}
    ami = next(i["ImageId"] for i in images if i["Name"].startswith("ubuntu-"))
    types = [
        t["InstanceType"]
        for page in ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["1"]}]
        )
        for t in page["InstanceTypes"]
    ]
    assert "t3.micro" in types and "m5.large" not in types

    # Launch six tagged instances with a key pair and user data; DryRun first.
    ec2.create_key_pair(KeyName="boto3-key")
    launch = {
        "ImageId": ami,
        "InstanceType": "t3.micro",
        "MinCount": 6,
        "MaxCount": 6,
        "KeyName": "boto3-key",
        "UserData": "#!/bin/sh\necho boto3\n",
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "suite", "Value": "boto3"}]}
        ],
    }
    with pytest.raises(ClientError) as err:
        ec2.run_instances(DryRun=True, **launch)
    assert _error(err) == ("DryRunOperation", 412)
    assert ec2.describe_instances()["Reservations"] == []
    reservation = ec2.run_instances(**launch)
    ids = sorted(i["InstanceId"] for i in reservation["Instances"])
    assert len(ids) == 6
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig=FAST)
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=ids, WaiterConfig=FAST)

    # Listing: a paginator with server pages of five, filters, tags.
    pages = list(ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    assert [len(p) for p in _instance_ids(pages)] == [5, 1]
    assert sorted(sum(_instance_ids(pages), [])) == ids
    running = ec2.describe_instances(
        Filters=[
            {"Name": "tag:suite", "Values": ["boto3"]},
            {"Name": "instance-state-name", "Values": ["running"]},
            {"Name": "key-name", "Values": ["boto3-key"]},
        ]
    )
    assert sorted(sum(_instance_ids([running]), [])) == ids
    ec2.create_tags(Resources=ids[:2], Tags=[{"Key": "role", "Value": "db"}])
    tags = [
        (t["ResourceId"], t["Value"])
        for page in ec2.get_paginator("describe_tags").paginate(
            Filters=[{"Name": "key", "Values": ["role"]}]
        )
        for t in page["Tags"]
    ]
    assert sorted(tags) == [(ids[0], "db"), (ids[1], "db")]
    user_data = ec2.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]) == b"#!/bin/sh\necho boto3\n"

    # Lifecycle with the waiters.
    stopping = ec2.stop_instances(InstanceIds=ids[:1])["StoppingInstances"]
    assert stopping[0]["CurrentState"]["Name"] == "stopping"
    ec2.get_waiter("instance_stopped").wait(InstanceIds=ids[:1], WaiterConfig=FAST)
    starting = ec2.start_instances(InstanceIds=ids[:1])["StartingInstances"]
    assert starting[0]["CurrentState"]["Name"] == "pending"
    ec2.get_waiter("instance_running").wait(InstanceIds=ids[:1], WaiterConfig=FAST)
    ec2.reboot_instances(InstanceIds=ids[1:2])
    with pytest.raises(ClientError) as err:
        ec2.terminate_instances(InstanceIds=ids, DryRun=True)
    assert _error(err) == ("DryRunOperation", 412)
    terminating = ec2.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
    assert {t["CurrentState"]["Name"] for t in terminating} == {"shutting-down"}
    ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=FAST)
    with pytest.raises(ClientError) as err:
        ec2.describe_instances(InstanceIds=["i-0fffffff"])
    assert _error(err) == ("InvalidInstanceID.NotFound", 400)
    assert len(sent) > 20 and set(sent) == {signature_version}


def _scheme(request) -> str:
    """Which signature a request on its way out carries."""
    if request.headers.get("Authorization", b"").startswith(b"AWS4-HMAC-SHA256 "):
        return "v4"
    body = request.body or b""
    body = body.decode() if isinstance(body, bytes) else body
    return "v2" if "SignatureVersion=2" in body else "unsigned"


def test_boto3_presigned_url_with_plain_get(gateway: LiveGateway):
    key = gateway.new_user("client-boto3-presign")
    ec2 = gateway.client(key)
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu-*"]}])["Images"][0]
    (instance,) = ec2.run_instances(ImageId=ami["ImageId"], MinCount=1, MaxCount=1)["Instances"]
    ec2.get_waiter("instance_running").wait(
        InstanceIds=[instance["InstanceId"]], WaiterConfig={"Delay": 1}
    )
    url = ec2.generate_presigned_url(
        "describe_instances", Params={"InstanceIds": [instance["InstanceId"]]}, ExpiresIn=60
    )
    reply = httpx.get(url)  # no Authorization header, no body: the URL is the credential
    assert reply.status_code == 200, reply.text
    root = etree.fromstring(reply.content)
    item = "ec2:reservationSet/ec2:item/ec2:instancesSet/ec2:item"
    assert root.findtext(f"{item}/ec2:instanceId", namespaces=NS) == instance["InstanceId"]
    assert root.findtext(f"{item}/ec2:instanceState/ec2:name", namespaces=NS) == "running"
    other = ec2.generate_presigned_url(
        "describe_instances", Params={"InstanceIds": ["i-0fffffff"]}, ExpiresIn=60
    )
    assert httpx.get(other.replace("i-0fffffff", instance["InstanceId"])).status_code == 401
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])


def test_sts_caller_identity_at_the_ec2_endpoint(gateway: LiveGateway):
    """Tools that send every client to one endpoint_url (Ansible) ask STS who they are."""
    key = gateway.new_user("client-boto3-sts")
    sts = boto3.client(
        "sts",
        endpoint_url=gateway.url,
        region_name=gateway.region,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret,
    )
    identity = sts.get_caller_identity()
    ec2 = gateway.client(key)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reservation = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)
    ec2.terminate_instances(InstanceIds=[reservation["Instances"][0]["InstanceId"]])
    account = reservation["OwnerId"]  # the account EC2 says this user is
    assert identity["Account"] == account and len(account) == 12
    name = gateway.backend.user_name("client-boto3-sts")
    assert identity["Arn"] == f"arn:aws:iam::{account}:user/{name}"
    assert identity["UserId"] == f"AIDA{account}"
    assert identity["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as err:  # and no more of STS than that
        sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/x", RoleSessionName="ses")
    assert _error(err) == ("InvalidAction", 400)
