"""parse_params: flat EC2-Query pairs -> typed, nested input by botocore's ec2 model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ec2gw.protocol.errors import EC2Error
from ec2gw.protocol.model import operation
from ec2gw.protocol.parser import (
    MAX_LIST_INDEX,
    MAX_NAME_LENGTH,
    MAX_PARAMS,
    PROTOCOL_PARAMS,
    parse_params,
)


def parse(action: str, *pairs: tuple[str, str]) -> dict:
    op = operation(action)
    assert op is not None
    return parse_params(op, list(pairs))


def error_of(action: str, *pairs: tuple[str, str]) -> EC2Error:
    with pytest.raises(EC2Error) as caught:
        parse(action, *pairs)
    return caught.value


def botocore_wire(action: str, params: dict) -> list[tuple[str, str]]:
    """What boto3 sends for `params` (botocore's own EC2Serializer)."""
    request = create_serializer("ec2").serialize_to_request(params, operation(action))
    return [(k, str(v)) for k, v in request["body"].items()]


# --- every real client request parses -------------------------------------------------


def test_capture_parses(capture: dict) -> None:
    op = operation(capture["action"])
    assert op is not None, capture["action"]
    pairs = [tuple(p) for p in capture["query_params"] + capture["form_params"]]
    result = parse_params(op, pairs)
    sent = {k.split(".")[0] for k, _ in pairs if k not in PROTOCOL_PARAMS}
    assert len(result) == len(sent)  # every top-level parameter landed somewhere


def test_capture_libcloud_zero_based_create_tags() -> None:
    result = parse(
        "CreateTags",
        ("Action", "CreateTags"),
        ("ResourceId.0", "i-0123456789abcdef0"),
        ("Tag.0.Key", "Name"),
        ("Tag.0.Value", "café & ~*'()!+ /=?%20x"),
        ("Tag.1.Key", "env"),
        ("Tag.1.Value", ""),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        ("AWSAccessKeyId", "AKIDEXAMPLE"),
        ("Version", "2016-11-15"),
        ("Timestamp", "2026-11-26T21:15:33Z"),
        ("Signature", "a9bN44HndU2CZNHUZk4hxJs8grapbdRLuckbjrb1xKk="),
    )
    assert result == {
        "Resources": ["i-0123456789abcdef0"],
        "Tags": [{"Key": "Name", "Value": "café & ~*'()!+ /=?%20x"}, {"Key": "env", "Value": ""}],
    }


def test_libcloud_bare_name_of_a_scalar_list_is_its_one_element() -> None:
    # libcloud's get_key_pair sends DescribeKeyPairs with `KeyName=…`, no index.
    assert parse("DescribeKeyPairs", ("KeyName", "k1")) == {"KeyNames": ["k1"]}
    assert parse("DescribeInstances", ("InstanceId", "i-1"), ("InstanceId.2", "i-2")) == {
        "InstanceIds": ["i-1", "i-2"]
    }
    assert parse("DescribeInstances", ("Filter.1.Name", "a"), ("Filter.1.Value", "b")) == {
        "Filters": [{"Name": "a", "Values": ["b"]}]
    }
    # A list of structures still needs its index and member names.
    for action, name in (
        ("DescribeInstances", "Filter"),
        ("RunInstances", "TagSpecification"),
        ("RunInstances", "BlockDeviceMapping"),
    ):
        assert error_of(action, (name, "v")).code == "UnknownParameter"


def test_boto2_old_version_is_accepted() -> None:
    result = parse("RebootInstances", ("Version", "2014-10-01"), ("InstanceId.1", "i-1"))
    assert result == {"InstanceIds": ["i-1"]}


def test_presigned_and_session_params_are_skipped() -> None:
    pairs = [(name, "x") for name in PROTOCOL_PARAMS]
    assert parse("DescribeRegions", *pairs) == {}


# --- structure of the wire names ------------------------------------------------------


def test_run_instances_nested() -> None:
    result = parse(
        "RunInstances",
        ("ImageId", "ami-1"),
        ("MinCount", "1"),
        ("MaxCount", "2"),
        ("SecurityGroupId.1", "sg-1"),
        ("SecurityGroup.1", "default"),
        ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
        ("BlockDeviceMapping.1.Ebs.VolumeSize", "20"),
        ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "TRUE"),
        ("Placement.AvailabilityZone", "zone-a"),
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "Name"),
        ("TagSpecification.1.Tag.1.Value", "web1"),
        ("DryRun", "false"),
    )
    assert result == {
        "ImageId": "ami-1",
        "MinCount": 1,
        "MaxCount": 2,
        "SecurityGroupIds": ["sg-1"],
        "SecurityGroups": ["default"],
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20, "DeleteOnTermination": True}}
        ],
        "Placement": {"AvailabilityZone": "zone-a"},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web1"}]}
        ],
        "DryRun": False,
    }


def test_indices_are_ordering_keys_sorted_numerically() -> None:
    result = parse(
        "DescribeInstances",
        ("InstanceId.10", "i-10"),
        ("InstanceId.2", "i-2"),
        ("InstanceId.0", "i-0"),
        ("Filter.7.Name", "tag:b"),
        ("Filter.7.Value.3", "y"),
        ("Filter.7.Value.1", "x"),
        ("Filter.3.Name", "tag:a"),
    )
    assert result["InstanceIds"] == ["i-0", "i-2", "i-10"]
    assert result["Filters"] == [{"Name": "tag:a"}, {"Name": "tag:b", "Values": ["x", "y"]}]


def test_query_name_members() -> None:
    # One of the two members with a queryName: PrivateIpAddresses (locationName
    # privateIpAddressesSet) is sent as "PrivateIpAddresses".
    result = parse(
        "RunInstances",
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("NetworkInterface.1.DeviceIndex", "0"),
        ("NetworkInterface.1.PrivateIpAddresses.1.PrivateIpAddress", "10.0.0.5"),
        ("NetworkInterface.1.PrivateIpAddresses.1.Primary", "true"),
    )
    assert result["NetworkInterfaces"] == [
        {
            "DeviceIndex": 0,
            "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.5", "Primary": True}],
        }
    ]


def test_filter_value_without_name_is_allowed_by_the_model() -> None:
    assert parse("DescribeInstances", ("Filter.1.Value.1", "x")) == {"Filters": [{"Values": ["x"]}]}


@pytest.mark.parametrize(
    "action,params",
    [
        (
            "RunInstances",
            {
                "ImageId": "ami-1",
                "MinCount": 1,
                "MaxCount": 3,
                "UserData": "IyEvYmluL3No",
                "BlockDeviceMappings": [
                    {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "Encrypted": True}},
                    {"DeviceName": "/dev/sdb", "NoDevice": ""},
                ],
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": [{"Key": "a", "Value": ""}]},
                ],
                "NetworkInterfaces": [
                    {"DeviceIndex": 0, "Groups": ["sg-1", "sg-2"], "Ipv6AddressCount": 0}
                ],
                "Monitoring": {"Enabled": False},
            },
        ),
        ("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": b"ssh-ed25519 AAAA k\n"}),
        (
            "DescribeSpotPriceHistory",
            {
                "StartTime": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                "InstanceTypes": ["t3.micro"],
                "MaxResults": 5,
            },
        ),
        (
            "GetInstanceTypesFromInstanceRequirements",
            {
                "ArchitectureTypes": ["x86_64"],
                "VirtualizationTypes": ["hvm"],
                "InstanceRequirements": {
                    "VCpuCount": {"Min": 1},
                    "MemoryMiB": {"Min": 512},
                    "MemoryGiBPerVCpu": {"Min": 0.5, "Max": 4.25},
                },
            },
        ),
        ("CreateCustomerGateway", {"Type": "ipsec.1", "BgpAsnExtended": 4294967296}),
        (
            "ModifyInstanceAttribute",
            {"InstanceId": "i-1", "UserData": {"Value": b"\x00\xffbinary"}},
        ),
    ],
)
def test_botocore_serializer_round_trip(action: str, params: dict) -> None:
    assert parse(action, *botocore_wire(action, params)) == params


# --- value types ------------------------------------------------------------------------


@pytest.mark.parametrize("text,value", [("true", True), ("FALSE", False), ("True", True)])
def test_boolean(text: str, value: bool) -> None:
    assert parse("DescribeInstances", ("DryRun", text)) == {"DryRun": value}


@pytest.mark.parametrize("text", ["", "1", "yes", "truex"])
def test_bad_boolean(text: str) -> None:
    error = error_of("DescribeInstances", ("DryRun", text))
    assert error.code == "InvalidParameterValue" and "DryRun" in error.message
    assert error.status == 400


@pytest.mark.parametrize(
    "text", ["", "x", "1.5", "2147483648", "-2147483649", "1_0", "١", " 1", "9" * 5000]
)
def test_bad_integer(text: str) -> None:
    error = error_of("DescribeInstances", ("MaxResults", text))
    assert error.code == "InvalidParameterValue" and "MaxResults" in error.message


def test_integer_limits() -> None:
    assert parse("DescribeInstances", ("MaxResults", "2147483647"))["MaxResults"] == 2**31 - 1
    assert parse("CreateCustomerGateway", ("Type", "ipsec.1"), ("BgpAsnExtended", "9" * 18))[
        "BgpAsnExtended"
    ] == int("9" * 18)


@pytest.mark.parametrize("text", ["nan", "inf", "1e999", "", "0x10", "1,5"])
def test_bad_double(text: str) -> None:
    error = error_of(
        "GetInstanceTypesFromInstanceRequirements",
        ("ArchitectureType.1", "x86_64"),
        ("VirtualizationType.1", "hvm"),
        ("InstanceRequirements.VCpuCount.Min", "1"),
        ("InstanceRequirements.MemoryMiB.Min", "1"),
        ("InstanceRequirements.MemoryGiBPerVCpu.Min", text),
    )
    assert error.code == "InvalidParameterValue"
    assert "InstanceRequirements.MemoryGiBPerVCpu.Min" in error.message


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.250Z", datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_timestamp(text: str, expected: datetime) -> None:
    value = parse("DescribeSpotPriceHistory", ("StartTime", text))["StartTime"]
    assert value == expected and value.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "1704164645", "2024-13-01T00:00:00Z"])
def test_bad_timestamp(text: str) -> None:
    error = error_of("DescribeSpotPriceHistory", ("StartTime", text))
    assert error.code == "InvalidParameterValue" and "StartTime" in error.message


def test_blob_is_decoded() -> None:
    result = parse("ImportKeyPair", ("KeyName", "k"), ("PublicKeyMaterial", "c3NoLXJzYSBBQUFB"))
    assert result["PublicKeyMaterial"] == b"ssh-rsa AAAA"


def test_blob_may_be_line_wrapped() -> None:
    result = parse(
        "ImportKeyPair", ("KeyName", "k"), ("PublicKeyMaterial", "c3NoLXJz\r\nYSBBQUFB\n")
    )
    assert result["PublicKeyMaterial"] == b"ssh-rsa AAAA"


@pytest.mark.parametrize("text", ["not base64!", "c3No=LXJ", "abc", "é", "c3No LXJz"])
def test_bad_blob(text: str) -> None:
    error = error_of("ImportKeyPair", ("KeyName", "k"), ("PublicKeyMaterial", text))
    assert error.code == "InvalidParameterValue" and "PublicKeyMaterial" in error.message


def test_strings_are_not_validated_against_enums() -> None:
    assert parse("DescribeInstanceTypes", ("InstanceType.1", "one.custom"))["InstanceTypes"] == [
        "one.custom"
    ]


# --- required, unknown, duplicate, limits ----------------------------------------------


def test_missing_required() -> None:
    error = error_of("RunInstances", ("ImageId", "ami-1"), ("MaxCount", "1"))
    assert (error.code, error.status) == ("MissingParameter", 400)
    assert error.message == "The request must contain the parameter MinCount"


def test_missing_required_list() -> None:
    error = error_of("CreateTags", ("Tag.1.Key", "k"))
    assert error.message == "The request must contain the parameter ResourceId"


def test_missing_nested_required_names_the_wire_path() -> None:
    error = error_of(
        "ModifyInstanceCreditSpecification",
        ("InstanceCreditSpecification.3.CpuCredits", "standard"),
    )
    assert error.code == "MissingParameter"
    assert error.message == (
        "The request must contain the parameter InstanceCreditSpecification.3.InstanceId"
    )


@pytest.mark.parametrize(
    "name",
    [
        "Bogus",
        "instanceId.1",  # names are case-sensitive
        "InstanceId.1.Foo",
        "Filter.1",
        "Filter",
        "Filter.1.Bogus",
        "Filter.x.Name",
        "Filter..Name",
        "Filter.-1.Name",
        "Filter.1.Name.",
        "Filter.١.Name",
        "Filters.1.Name",  # the boto3 member name is not the wire name
        "",
        ".",
        "Ünïcode",
    ],
)
def test_unknown_parameter(name: str) -> None:
    error = error_of("DescribeInstances", (name, "v"))
    assert (error.code, error.status) == ("UnknownParameter", 400)
    assert error.message == f"The parameter {name} is not recognized"


def test_name_depth_and_length_limits() -> None:
    deep = "TagSpecification.1" + ".Tag.1" * 20 + ".Key"
    assert error_of("RunInstances", (deep, "v")).code == "UnknownParameter"
    assert error_of("RunInstances", ("A" * (MAX_NAME_LENGTH + 1), "v")).code == "UnknownParameter"


def test_unknown_parameter_message_is_bounded() -> None:
    error = error_of("DescribeInstances", ("X" * 100_000, "v"))
    assert error.code == "UnknownParameter" and len(error.message) < 300


@pytest.mark.parametrize(
    "pairs",
    [
        [("InstanceId.1", "i-1"), ("InstanceId.1", "i-2")],
        [("InstanceId.1", "i-1"), ("InstanceId.01", "i-2")],
        [("Filter.1.Name", "a"), ("Filter.1.Name", "b")],
        [("MaxResults", "5"), ("MaxResults", "5")],
        [("InstanceId", "i-1"), ("InstanceId.1", "i-2")],  # the bare name is index 1
    ],
)
def test_duplicate_parameter(pairs: list[tuple[str, str]]) -> None:
    error = error_of("DescribeInstances", *pairs)
    assert error.code == "InvalidParameterValue" and "more than once" in error.message


def test_list_index_limit() -> None:
    assert parse("DescribeInstances", (f"InstanceId.{MAX_LIST_INDEX}", "i-1"))
    for name in (f"InstanceId.{MAX_LIST_INDEX + 1}", "Filter.99999.Value.1"):
        error = error_of("DescribeInstances", (name, "x"))
        assert error.code == "InvalidParameterValue", name


def test_thousand_instance_ids() -> None:
    pairs = [(f"InstanceId.{i}", f"i-{i:x}") for i in range(1, 1001)]
    assert len(parse("TerminateInstances", *pairs)["InstanceIds"]) == 1000


def test_parameter_count_limit() -> None:
    pairs = [(f"Filter.{i // 100}.Value.{i % 100}", "x") for i in range(MAX_PARAMS + 1)]
    assert error_of("DescribeInstances", *pairs).code == "InvalidParameterValue"


# --- hostile input never raises anything but EC2Error -----------------------------------

_SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "Filter",
            "Name",
            "Value",
            "InstanceId",
            "TagSpecification",
            "Tag",
            "Key",
            "BlockDeviceMapping",
            "Ebs",
            "VolumeSize",
            "MaxCount",
            "MinCount",
            "DryRun",
            "Placement",
            "NetworkInterface",
            "PrivateIpAddresses",
            "0",
            "1",
            "2",
            "99999",
            "1000",
            "1001",
            "-1",
            "01",
            "",
            "x",
        ]
    ),
    st.text(max_size=8),
    st.integers(min_value=0, max_value=10**30).map(str),
)
_KEYS = st.one_of(st.lists(_SEGMENTS, min_size=1, max_size=20).map(".".join), st.text())
_VALUES = st.one_of(
    st.sampled_from(["", "true", "1", "-1", "2024-01-02T03:04:05Z", "AAAA", "9" * 30]),
    st.text(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    action=st.sampled_from(["DescribeInstances", "RunInstances", "CreateTags", "ImportKeyPair"]),
    pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=12),
)
def test_hostile_input_only_raises_ec2_errors(action: str, pairs: list[tuple[str, str]]) -> None:
    try:
        result = parse(action, *pairs)
    except EC2Error as error:
        assert error.status == 400
        assert error.code in {"UnknownParameter", "InvalidParameterValue", "MissingParameter"}
    else:
        assert isinstance(result, dict)
