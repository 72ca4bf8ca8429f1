"""An empty string for an optional parameter means "not given" (issue 16 item 2).

Terraform's AWS provider and Packer's amazon plugin send `Placement.AvailabilityZone=""`,
`SubnetId=""`, `IamInstanceProfile.Name=""`, `UserData=""`... for what they leave unset.
The parser drops `""` for optional string members of a structure, except where EC2 gives
the empty string a meaning of its own (a tag's or attribute's `Value`, `NoDevice`, ...)."""

from __future__ import annotations

import pytest

from ec2gw.protocol.errors import EC2Error
from ec2gw.protocol.model import operation
from ec2gw.protocol.parser import parse_params


def parse(action: str, *pairs: tuple[str, str]) -> dict:
    op = operation(action)
    assert op is not None
    return parse_params(op, list(pairs))


RUN = (("ImageId", "ami-1"), ("MinCount", "1"), ("MaxCount", "1"))


def test_run_instances_empty_strings_are_not_given() -> None:
    # What Packer's amazon plugin and Terraform's aws provider send for unset values.
    result = parse(
        "RunInstances",
        *RUN,
        ("Placement.AvailabilityZone", ""),
        ("Placement.GroupName", ""),
        ("Placement.Tenancy", ""),
        ("SubnetId", ""),
        ("KeyName", ""),
        ("UserData", ""),
        ("IamInstanceProfile.Name", ""),
        ("IamInstanceProfile.Arn", ""),
        ("PrivateIpAddress", ""),
        ("ClientToken", ""),
        ("InstanceType", ""),
        ("InstanceInitiatedShutdownBehavior", ""),
        ("NetworkInterface.1.SubnetId", ""),
    )
    # No empty `Placement`/`IamInstanceProfile`/interface left behind either.
    assert result == {"ImageId": "ami-1", "MinCount": 1, "MaxCount": 1}


def test_empty_next_to_given_values() -> None:
    result = parse(
        "RunInstances",
        *RUN,
        ("Placement.AvailabilityZone", ""),
        ("Placement.Tenancy", "default"),
        ("NetworkInterface.1.DeviceIndex", "0"),
        ("NetworkInterface.1.SubnetId", ""),
    )
    assert result["Placement"] == {"Tenancy": "default"}
    assert result["NetworkInterfaces"] == [{"DeviceIndex": 0}]


def test_tag_value_may_be_empty() -> None:
    assert parse("CreateTags", ("ResourceId.1", "i-1"), ("Tag.1.Key", "k"), ("Tag.1.Value", ""))[
        "Tags"
    ] == [{"Key": "k", "Value": ""}]
    # DeleteTags: Value="" deletes only a tag whose value is empty; no Value deletes any.
    assert parse("DeleteTags", ("ResourceId.1", "i-1"), ("Tag.1.Key", "k"), ("Tag.1.Value", ""))[
        "Tags"
    ] == [{"Key": "k", "Value": ""}]
    spec = parse(
        "RunInstances",
        *RUN,
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "Name"),
        ("TagSpecification.1.Tag.1.Value", ""),
    )["TagSpecifications"]
    assert spec == [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": ""}]}]


def test_empty_meaningful_members_are_kept() -> None:
    # Description.Value="" clears a description.
    assert parse("ModifyImageAttribute", ("ImageId", "ami-1"), ("Description.Value", ""))[
        "Description"
    ] == {"Value": ""}
    assert (
        parse(
            "ModifyInstanceAttribute", ("InstanceId", "i-1"), ("Attribute", "kernel"), ("Value", "")
        )["Value"]
        == ""
    )
    # "To omit the device from the block device mapping, specify an empty string."
    assert parse(
        "RunInstances",
        *RUN,
        ("BlockDeviceMapping.1.DeviceName", "/dev/sdb"),
        ("BlockDeviceMapping.1.NoDevice", ""),
    )["BlockDeviceMappings"] == [{"DeviceName": "/dev/sdb", "NoDevice": ""}]
    # "To remove an instance from a placement group, specify an empty string."
    assert (
        parse("ModifyInstancePlacement", ("InstanceId", "i-1"), ("GroupName", ""))["GroupName"]
        == ""
    )


def test_list_elements_are_kept() -> None:
    result = parse(
        "DescribeInstances",
        ("Filter.1.Name", "tag:Name"),
        ("Filter.1.Value.1", ""),
        ("InstanceId.1", ""),
    )
    assert result == {"Filters": [{"Name": "tag:Name", "Values": [""]}], "InstanceIds": [""]}
    assert parse("DescribeKeyPairs", ("KeyName", ""))["KeyNames"] == [""]


def test_required_members_are_kept() -> None:
    # The handler answers an empty required value as it always did.
    result = parse("CreateSecurityGroup", ("GroupName", ""), ("GroupDescription", ""))
    assert result == {"GroupName": "", "Description": ""}


@pytest.mark.parametrize("key", ["MinCount", "DisableApiTermination"])
def test_empty_non_strings_stay_invalid(key: str) -> None:
    pairs = [p for p in RUN if p[0] != key] + [(key, "")]
    with pytest.raises(EC2Error) as caught:
        parse("RunInstances", *pairs)
    assert caught.value.code == "InvalidParameterValue" and key in caught.value.message
