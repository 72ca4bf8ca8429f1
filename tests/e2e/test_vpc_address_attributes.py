"""DescribeVpcAttribute and DescribeAddressesAttribute, as Terraform's `data "aws_vpc"`,
Ansible's `ec2_vpc_net_info` and Terraform's `aws_eip` read them, with boto3."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_first_actions import error_of


def _default_vpc(ec2) -> str:
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return vpc["VpcId"]


def test_describe_vpc_attribute(ec2):
    vpc_id = _default_vpc(ec2)
    for attribute, member, value in (
        ("enableDnsSupport", "EnableDnsSupport", True),
        ("enableDnsHostnames", "EnableDnsHostnames", True),
        ("enableNetworkAddressUsageMetrics", "EnableNetworkAddressUsageMetrics", False),
    ):
        answer = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)
        answer.pop("ResponseMetadata")
        assert answer == {"VpcId": vpc_id, member: {"Value": value}}, attribute


def test_describe_vpc_attribute_errors(ec2):
    vpc_id = _default_vpc(ec2)
    for kwargs, code in (
        ({"VpcId": "vpc-0000ffff", "Attribute": "enableDnsSupport"}, "InvalidVpcID.NotFound"),
        ({"VpcId": "vpc-zz", "Attribute": "enableDnsSupport"}, "InvalidVpcID.Malformed"),
        ({"VpcId": "subnet-0", "Attribute": "enableDnsSupport"}, "InvalidVpcID.Malformed"),
        ({"VpcId": vpc_id, "Attribute": "enableDnsServers"}, "InvalidParameterValue"),
        ({"VpcId": vpc_id, "Attribute": "enableDnsSupport", "DryRun": True}, "DryRunOperation"),
    ):
        with pytest.raises(ClientError) as err:
            ec2.describe_vpc_attribute(**kwargs)
        assert error_of(err) == (code, 412 if code == "DryRunOperation" else 400), kwargs


@pytest.fixture
def two_addresses(ec2):
    allocated = [ec2.allocate_address(Domain="vpc") for _ in range(2)]
    yield sorted(
        ({"AllocationId": a["AllocationId"], "PublicIp": a["PublicIp"]} for a in allocated),
        key=lambda a: int(a["AllocationId"].split("-")[1], 16),
    )
    for address in allocated:
        ec2.release_address(AllocationId=address["AllocationId"])


def test_describe_addresses_attribute(ec2, two_addresses):
    first, second = two_addresses
    mine = ec2.describe_addresses_attribute(Attribute="domain-name")["Addresses"]
    assert first in mine and second in mine
    assert all(set(a) == {"AllocationId", "PublicIp"} for a in mine)  # no PtrRecord
    by_id = ec2.describe_addresses_attribute(
        AllocationIds=[second["AllocationId"]], Attribute="domain-name"
    )
    assert by_id["Addresses"] == [second] and "NextToken" not in by_id
    # paged as Terraform's aws_eip does not, but the AWS CLI may
    both = [first["AllocationId"], second["AllocationId"]]
    page = ec2.describe_addresses_attribute(
        AllocationIds=both, Attribute="domain-name", MaxResults=1
    )
    assert page["Addresses"] == [first] and page["NextToken"]
    page = ec2.describe_addresses_attribute(
        AllocationIds=both, Attribute="domain-name", MaxResults=1, NextToken=page["NextToken"]
    )
    assert page["Addresses"] == [second] and "NextToken" not in page
    paginated = [
        a
        for p in ec2.get_paginator("describe_addresses_attribute").paginate(
            AllocationIds=both, Attribute="domain-name", PaginationConfig={"PageSize": 1}
        )
        for a in p["Addresses"]
    ]
    assert paginated == [first, second]


def test_describe_addresses_attribute_errors(ec2, two_addresses):
    first, _ = two_addresses
    for kwargs, code in (
        ({"AllocationIds": ["eipalloc-0000ffff"]}, "InvalidAllocationID.NotFound"),
        (
            {"AllocationIds": [first["AllocationId"], "eipalloc-0000ffff"]},
            "InvalidAllocationID.NotFound",
        ),
        ({"AllocationIds": ["eipalloc-zz"]}, "InvalidAllocationID.Malformed"),
        (
            {"AllocationIds": [first["AllocationId"]], "NextToken": "bogus"},
            "InvalidPaginationToken",
        ),
        ({"AllocationIds": [first["AllocationId"]], "DryRun": True}, "DryRunOperation"),
    ):
        with pytest.raises(ClientError) as err:
            ec2.describe_addresses_attribute(Attribute="domain-name", **kwargs)
        assert error_of(err)[0] == code, kwargs
    with pytest.raises(ClientError) as err:
        ec2.describe_addresses_attribute(Attribute="ptr-record")
    assert error_of(err) == ("InvalidParameterValue", 400)
    # released: gone
    released = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.release_address(AllocationId=released)
    with pytest.raises(ClientError) as err:
        ec2.describe_addresses_attribute(AllocationIds=[released], Attribute="domain-name")
    assert error_of(err) == ("InvalidAllocationID.NotFound", 400)
