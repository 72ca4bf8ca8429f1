"""serialize_response / serialize_error: model-driven EC2 XML, read back by botocore."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.parsers import create_parser
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from ec2gw.protocol.model import NAMESPACE, operation
from ec2gw.protocol.serializer import Xml, serialize_error, serialize_response, structure_xml

NS = {"ec2": NAMESPACE}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LAUNCH = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def botocore_parse(action: str, body: bytes, status: int = 200) -> dict:
    op = operation(action)
    response = {"body": body, "headers": {}, "status_code": status}
    return create_parser("ec2").parse(response, op.output_shape)


def normalized(value: Any) -> Any:
    """Comparable form: datetimes in UTC, no ResponseMetadata."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def instance(n: int, state: tuple[int, str] = (16, "running")) -> dict:
    return {
        "InstanceId": f"i-{n:017x}",
        "ImageId": "ami-0000000000000000a",
        "State": {"Code": state[0], "Name": state[1]},
        "PrivateDnsName": f"ip-10-0-{n // 256 % 256}-{n % 256}.ec2.internal",
        "PublicDnsName": "",
        "StateTransitionReason": "",
        "KeyName": "mykey",
        "AmiLaunchIndex": 0,
        "ProductCodes": [],
        "InstanceType": "t3.micro",
        "LaunchTime": LAUNCH + timedelta(seconds=n),
        "Placement": {"AvailabilityZone": "zone-a", "GroupName": "", "Tenancy": "default"},
        "Monitoring": {"State": "disabled"},
        "SubnetId": "subnet-0000000000000000a",
        "VpcId": "vpc-0000000000000000a",
        "PrivateIpAddress": f"10.0.{n // 256 % 256}.{n % 256}",
        "PublicIpAddress": "203.0.113.12",
        "Architecture": "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": "/dev/sda1",
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/sda1",
                "Ebs": {
                    "VolumeId": f"vol-{n:017x}",
                    "Status": "attached",
                    "AttachTime": LAUNCH,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "VirtualizationType": "hvm",
        "ClientToken": "",
        "Tags": [{"Key": "Name", "Value": f"web{n}"}, {"Key": "env", "Value": "dev & <test>"}],
        "SecurityGroups": [{"GroupId": "sg-0000000000000000a", "GroupName": "default"}],
        "SourceDestCheck": True,
        "Hypervisor": "kvm",
        "EbsOptimized": False,
        "EnaSupport": True,
        "CpuOptions": {"CoreCount": 1, "ThreadsPerCore": 2},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": "optional",
            "HttpPutResponseHopLimit": 1,
        },
    }


def reservation(instances: list[dict]) -> dict:
    return {"ReservationId": "r-0000000000000000a", "OwnerId": "123456789012", "Groups": [],
            "Instances": instances}  # fmt: skip


def state_change(n: int, current: tuple[int, str], previous: tuple[int, str]) -> dict:
    return {
        "InstanceId": f"i-{n:017x}",
        "CurrentState": {"Code": current[0], "Name": current[1]},
        "PreviousState": {"Code": previous[0], "Name": previous[1]},
    }


CASES: list[tuple[str, dict, dict]] = [
    # (action, handler result, what botocore must read back beyond the result itself)
    (
        "DescribeRegions",
        {
            "Regions": [
                {
                    "RegionName": "one",
                    "Endpoint": "ec2.one.example",
                    "OptInStatus": "opt-in-not-required",
                },
                {"RegionName": "two", "Endpoint": "ec2.two.example"},
            ]
        },
        {},
    ),
    (
        "DescribeAvailabilityZones",
        {
            "AvailabilityZones": [
                {
                    "ZoneName": "zone-a",
                    "ZoneId": "one-az0",
                    "State": "available",
                    "RegionName": "one",
                    "Messages": [],
                    "ZoneType": "availability-zone",
                }
            ]
        },
        {},
    ),
    (
        "DescribeImages",
        {
            "Images": [
                {
                    "ImageId": "ami-0000000000000000a",
                    "ImageLocation": "one/ubuntu",
                    "State": "available",
                    "OwnerId": "123456789012",
                    "CreationDate": "2024-01-02T03:04:05.000Z",
                    "Public": False,
                    "Architecture": "x86_64",
                    "ImageType": "machine",
                    "Name": "ubuntu-22.04",
                    "RootDeviceType": "ebs",
                    "RootDeviceName": "/dev/sda1",
                    "VirtualizationType": "hvm",
                    "Hypervisor": "kvm",
                    "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
                    "Tags": [],
                }
            ],
            "NextToken": None,
        },
        {},
    ),
    ("DescribeImages", {}, {"Images": []}),
    (
        "DescribeInstances",
        {
            "Reservations": [reservation([instance(1), instance(2, (80, "stopped"))])],
            "NextToken": "tok",
        },
        {},
    ),
    ("DescribeInstances", {"Reservations": None}, {"Reservations": []}),
    ("RunInstances", reservation([instance(3, (0, "pending"))]), {}),
    (
        "TerminateInstances",
        {"TerminatingInstances": [state_change(1, (32, "shutting-down"), (16, "running"))]},
        {},
    ),
    (
        "StopInstances",
        {"StoppingInstances": [state_change(1, (64, "stopping"), (16, "running"))]},
        {},
    ),
    (
        "CreateKeyPair",
        {
            "KeyName": "mykey",
            "KeyFingerprint": "1f:51:ae:28:bf:89:e9:d8:1f:25:5d:37:2d:7d:b8:ca:9f:f5:f1:6f",
            "KeyMaterial": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "KeyPairId": "key-0000000000000000a",
        },
        {},
    ),
    (
        "DescribeTags",
        {
            "Tags": [
                {"Key": "Name", "Value": "web1", "ResourceId": "i-1", "ResourceType": "instance"},
                {"Key": "empty", "Value": "", "ResourceId": "i-1", "ResourceType": "instance"},
            ]
        },
        {},
    ),
    (
        "DescribeAccountAttributes",
        {
            "AccountAttributes": [
                {
                    "AttributeName": "supported-platforms",
                    "AttributeValues": [{"AttributeValue": "VPC"}],
                },
                {"AttributeName": "max-instances", "AttributeValues": [{"AttributeValue": "20"}]},
            ]
        },
        {},
    ),
    (
        "CreateVolume",
        {
            "VolumeId": "vol-1",
            "Size": 20,
            "AvailabilityZone": "zone-a",
            "State": "creating",
            "CreateTime": LAUNCH,
            "VolumeType": "gp3",
            "Encrypted": False,
            "Iops": 3000,
        },
        {},
    ),
    (
        "AllocateAddress",
        {"PublicIp": "203.0.113.7", "AllocationId": "eipalloc-1", "Domain": "vpc"},
        {},
    ),
    ("DeleteKeyPair", {}, {"Return": True}),
    ("DeleteKeyPair", {"Return": False, "KeyPairId": "key-1"}, {}),
    ("RebootInstances", {}, {}),
    ("CreateTags", {}, {}),
]


def expected(action: str, result: dict, extra: dict) -> dict:
    """The result as botocore reports it: None dropped, top-level lists always present."""
    shape = operation(action).output_shape
    lists = {n: [] for n, m in (shape.members.items() if shape else ()) if m.type_name == "list"}
    want = {k: v for k, v in result.items() if v is not None}
    return normalized({**lists, **want, **extra})


@pytest.mark.parametrize(
    "action,result,extra", CASES, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(CASES)]
)
def test_botocore_reads_back_the_result(action: str, result: dict, extra: dict) -> None:
    body = serialize_response(operation(action), result, "req-123")
    parsed = botocore_parse(action, body)
    assert parsed["ResponseMetadata"]["RequestId"] == "req-123"
    assert normalized(parsed) == expected(action, result, extra)


@pytest.mark.parametrize("action,result,extra", CASES, ids=[a for a, _, _ in CASES])
def test_document_form(action: str, result: dict, extra: dict) -> None:
    body = serialize_response(operation(action), result, "req-123")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<' + action.encode())
    root = etree.fromstring(body)
    assert root.tag == f"{{{NAMESPACE}}}{action}Response"
    assert root.nsmap == {None: "http://ec2.amazonaws.com/doc/2016-11-15/"}
    assert root[0].tag == f"{{{NAMESPACE}}}requestId" and root[0].text == "req-123"
    for element in root.iter():
        assert element.tag.startswith(f"{{{NAMESPACE}}}")  # no element outside the namespace
    for name in ("launchTime", "attachTime", "createTime"):
        for stamp in root.iterfind(f".//ec2:{name}", NS):
            assert TIMESTAMP.match(stamp.text), stamp.text


def test_list_children_are_item_and_wrappers_always_present() -> None:
    result = {"Reservations": [reservation([instance(1)])]}
    root = etree.fromstring(serialize_response(operation("DescribeInstances"), result, "r"))
    for wrapper in ("reservationSet", "instancesSet", "tagSet", "groupSet", "blockDeviceMapping"):
        found = root.findall(f".//ec2:{wrapper}", NS)
        assert found, wrapper
        for element in found:
            assert {child.tag for child in element} <= {f"{{{NAMESPACE}}}item"}
    instance_el = root.find("ec2:reservationSet/ec2:item/ec2:instancesSet/ec2:item", NS)
    assert instance_el.findtext("ec2:instanceState/ec2:name", namespaces=NS) == "running"
    assert instance_el.findtext("ec2:ipAddress", namespaces=NS) == "203.0.113.12"
    assert instance_el.findtext("ec2:dnsName", namespaces=NS) == ""
    assert instance_el.findtext("ec2:launchTime", namespaces=NS) == "2024-01-02T03:04:06.000Z"
    assert instance_el.find("ec2:productCodes", NS) is not None  # empty nested list kept
    assert instance_el.find("ec2:kernelId", NS) is None  # absent members are omitted


def test_empty_top_level_lists() -> None:
    body = serialize_response(operation("DescribeInstances"), {}, "r")
    assert b"<reservationSet/>" in body and b"nextToken" not in body


def test_no_output_shape_answers_return_true() -> None:
    body = serialize_response(operation("RebootInstances"), {}, "r-1")
    root = etree.fromstring(body)
    assert [child.tag.split("}")[1] for child in root] == ["requestId", "return"]
    assert root.findtext("ec2:return", namespaces=NS) == "true"


def test_model_list_member_name_is_kept_when_not_item() -> None:
    # Launch-template network interfaces name their group list items `groupId` in the model.
    result = {"LaunchTemplateData": {"NetworkInterfaces": [{"Groups": ["sg-1", "sg-2"]}]}}
    body = serialize_response(operation("GetLaunchTemplateData"), result, "r")
    assert b"<groupSet><groupId>sg-1</groupId><groupId>sg-2</groupId></groupSet>" in body
    assert normalized(botocore_parse("GetLaunchTemplateData", body)) == result


@pytest.mark.parametrize(
    "value,text",
    [
        (datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "2024-01-02T03:04:05.678Z"),
        (
            datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05.000Z",
        ),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05.000Z"),
        (1704164645, "2024-01-02T03:04:05.000Z"),
        (1704164645.5, "2024-01-02T03:04:05.500Z"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000Z"),
    ],
)
def test_timestamp_forms(value: Any, text: str) -> None:
    result = {"Reservations": [reservation([{"InstanceId": "i-1", "LaunchTime": value}])]}
    body = serialize_response(operation("DescribeInstances"), result, "r")
    assert f"<launchTime>{text}</launchTime>".encode() in body


def test_scalars() -> None:
    result = {"Reservations": [reservation([{"AmiLaunchIndex": 0, "EbsOptimized": False,
                                             "SourceDestCheck": True}])]}  # fmt: skip
    body = serialize_response(operation("DescribeInstances"), result, "r")
    assert b"<amiLaunchIndex>0</amiLaunchIndex>" in body
    assert b"<ebsOptimized>false</ebsOptimized>" in body
    assert b"<sourceDestCheck>true</sourceDestCheck>" in body


def test_dates_and_booleans_in_string_slots() -> None:
    # Image.CreationDate is a string in the model; handlers may pass a datetime.
    image = {"ImageId": "ami-1", "CreationDate": LAUNCH, "Name": True, "Description": 5}
    body = serialize_response(operation("DescribeImages"), {"Images": [image]}, "r")
    parsed = botocore_parse("DescribeImages", body)["Images"][0]
    assert parsed["CreationDate"] == "2024-01-02T03:04:05.000Z"
    assert (parsed["Name"], parsed["Description"]) == ("true", "5")


def test_bad_integer_is_an_internal_error_not_a_document() -> None:
    result = {"Reservations": [reservation([{"AmiLaunchIndex": "zero"}])]}
    with pytest.raises(ValueError):
        serialize_response(operation("DescribeInstances"), result, "r")


def test_strings_are_escaped_and_never_break_the_document() -> None:
    nasty = "a<b>&\"'\x00\x07\ud800 café ✓"
    result = {"Tags": [{"Key": nasty, "Value": "]]>", "ResourceId": "i-1"}]}
    body = serialize_response(operation("DescribeTags"), result, "r")
    tag = botocore_parse("DescribeTags", body)["Tags"][0]
    assert tag["Key"] == "a<b>&\"'\ufffd\ufffd\ufffd café ✓"
    assert tag["Value"] == "]]>"
    assert "café ✓".encode() in body  # UTF-8, not character references


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,code",
    [
        (400, "InvalidInstanceID.NotFound"),
        (401, "AuthFailure"),
        (403, "UnauthorizedOperation"),
        (412, "DryRunOperation"),
        (500, "InternalError"),
        (503, "RequestLimitExceeded"),
    ],
)
def test_error_envelope(status: int, code: str) -> None:
    message = "The instance ID 'i-1' does not exist & <more>"
    body = serialize_error(code, message, "req-9")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>')
    parsed = botocore_parse("DescribeInstances", body, status)
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == message
    assert parsed["ResponseMetadata"]["RequestId"] == "req-9"


def test_error_exact_bytes() -> None:
    assert serialize_error("MissingParameter", "The request must contain the parameter X", "r") == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<Response><Errors><Error><Code>MissingParameter</Code>"
        b"<Message>The request must contain the parameter X</Message></Error></Errors>"
        b"<RequestID>r</RequestID></Response>"
    )


def test_a_structure_serialized_beforehand_is_written_as_it_is() -> None:
    op = operation("DescribeInstances")
    shape = op.output_shape.members["Reservations"].member.members["Instances"].member
    instances = [instance(n) for n in range(3)]
    as_dicts = serialize_response(op, {"Reservations": [reservation(instances)]}, "r")
    as_xml = [structure_xml(shape, i) for i in instances]
    assert all(type(x) is Xml for x in as_xml)
    assert serialize_response(op, {"Reservations": [reservation(as_xml)]}, "r") == as_dicts


# --- size (speed is measured in benchmarks/, never asserted here) ----------------------------


def test_describe_instances_of_1000_instances_round_trips() -> None:
    op = operation("DescribeInstances")
    result = {"Reservations": [reservation([instance(n)]) for n in range(1000)]}
    body = serialize_response(op, result, "r")
    assert len(botocore_parse("DescribeInstances", body)["Reservations"]) == 1000


# --- escaping is lxml's ----------------------------------------------------------------------

_XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff")
).filter(lambda s: not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", s))


@settings(max_examples=300, deadline=None)
@given(text=_XML_TEXT)
def test_escaping_is_byte_identical_to_lxml(text: str) -> None:
    element = etree.Element("Message")
    element.text = text
    ours = serialize_error("C", text, "r")
    assert etree.tostring(element, encoding="UTF-8") in ours


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_any_string_yields_a_well_formed_document(text: str) -> None:
    body = serialize_response(operation("DescribeTags"), {"Tags": [{"Value": text}]}, text)
    root = etree.fromstring(body)  # never raises
    value = root.findtext("ec2:tagSet/ec2:item/ec2:value", namespaces=NS)
    assert value == re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", text)
