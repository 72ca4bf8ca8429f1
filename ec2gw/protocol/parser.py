"""Flat EC2-Query parameters -> the nested, typed input of an operation.

The inverse of botocore's `EC2Serializer`, driven by the operation's input shape:

* a member's wire name is its `queryName`, else its `locationName` with the first letter
  upper-cased, else the member name (`Filters` -> `Filter`, `InstanceIds` -> `InstanceId`);
* lists are flattened as `Name.N` (`Filter.1.Value.2`); N is an ordering key, not a
  position (libcloud starts at 0), so elements are sorted by N; a list of scalars also
  takes the bare `Name=v` as `Name.1=v` (libcloud's get_key_pair sends `KeyName=…`);
* structures nest with dots (`BlockDeviceMapping.1.Ebs.VolumeSize`);
* maps: no input shape of the ec2 model contains a map, so none are supported;
* an empty string for an optional string member of a structure is "not given", as on EC2:
  Terraform's AWS provider and Packer send `Placement.AvailabilityZone=""`, `SubnetId=""`,
  `IamInstanceProfile.Name=""`, `UserData=""`... for what they leave unset. Kept are the
  members where EC2 gives `""` a meaning of its own: every `Value` (a tag's value may be
  empty, DeleteTags' `Value=""` deletes only an empty-valued tag, `Description.Value=""`
  clears a description), `NoDevice` ("specify an empty string" to omit a device) and
  ModifyInstancePlacement's `GroupName` ("" leaves the placement group). Also kept: required
  members (the handler's own check answers those), elements of lists (`Filter.N.Value.M`,
  `InstanceId.N`) and non-string scalars (`MaxCount=""` stays an invalid integer).

The result is keyed by boto3 member names, with Python values. Every problem with the
input is reported as an `EC2Error`; nothing else escapes, whatever the client sends.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.model import OperationModel, Shape, StructureShape

from ec2gw.protocol.errors import EC2Error, invalid_value, missing_parameter

# Transport and signature parameters, consumed by the app and the auth layer. `Version` is
# ignored on purpose: boto 2 sends 2014-10-01 and is answered in the 2016-11-15 shape.
PROTOCOL_PARAMS: frozenset[str] = frozenset(
    {
        "Action",
        "Version",
        # SigV2
        "AWSAccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "Timestamp",
        "Expires",
        "SecurityToken",
        # SigV4 presigned URLs
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)

# Limits against hostile input. The ec2 model documents "Up to 1000" items for its largest
# lists (CreateTags/DeleteTags `ResourceId.N`, `Tag.N`, TerminateInstances `InstanceId.N`),
# so a list index (an ordering key, 0-based or 1-based) is at most 1000.
MAX_LIST_INDEX = 1000
# No request of any real client comes near this many parameters (DeleteTags with 1000 tags
# and 1000 resources is 3000); it bounds the work done for one request.
MAX_PARAMS = 10_000
# The deepest input member path in the model has 11 segments (members and indices).
MAX_NAME_DEPTH = 16
MAX_NAME_LENGTH = 512

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_INT_RE = re.compile(r"[+-]?[0-9]{1,20}", re.ASCII)
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
_INDEX_DIGITS = len(str(MAX_LIST_INDEX)) + 2  # leading zeros allowed, huge numbers not
_CONTAINERS = frozenset({"structure", "list", "map"})
# Optional string members for which EC2 documents `""` as a value, not as "not given".
_EMPTY_KEPT_MEMBERS = frozenset({"Value", "NoDevice"})
_EMPTY_KEPT = frozenset({("ModifyInstancePlacementRequest", "GroupName")})


def unknown_parameter(name: str) -> EC2Error:
    return EC2Error("UnknownParameter", f"The parameter {name} is not recognized")


@dataclass(frozen=True, slots=True)
class _Member:
    name: str  # boto3 member name
    wire: str  # wire name of this member
    shape: Shape
    empty_is_absent: bool = False  # an optional string member: `""` means "not given"


_STRUCT_CACHE: dict[str, tuple[dict[str, _Member], tuple[_Member, ...]]] = {}


def _wire_name(member_name: str, shape: Shape) -> str:
    """botocore's `EC2Serializer._get_serialized_name`."""
    ser = shape.serialization
    if "queryName" in ser:
        return ser["queryName"]
    if "name" in ser:
        name = ser["name"]
        return name[0].upper() + name[1:]
    return member_name


def _struct_table(shape: StructureShape) -> tuple[dict[str, _Member], tuple[_Member, ...]]:
    """(wire name -> member, required members) of a structure, computed once per shape."""
    table = _STRUCT_CACHE.get(shape.name)
    if table is None:
        by_wire: dict[str, _Member] = {}
        required_names = set(shape.required_members)
        for name, member_shape in shape.members.items():
            empty_is_absent = (
                member_shape.type_name == "string"
                and name not in required_names
                and name not in _EMPTY_KEPT_MEMBERS
                and (shape.name, name) not in _EMPTY_KEPT
            )
            member = _Member(name, _wire_name(name, member_shape), member_shape, empty_is_absent)
            by_wire.setdefault(member.wire, member)
        required = tuple(m for m in by_wire.values() if m.name in required_names)
        table = (by_wire, required)
        _STRUCT_CACHE[shape.name] = table
    return table


class _List(dict):
    """A list under construction: ordering key (the wire index) -> element."""


def parse_params(op: OperationModel, params: list[tuple[str, str]]) -> dict:
    """Decode the flat (name, value) pairs of a request into `op`'s input members."""
    shape = op.input_shape
    root: dict[str, Any] = {}
    count = 0
    for key, value in params:
        if key in PROTOCOL_PARAMS:
            continue
        count += 1
        if count > MAX_PARAMS:
            raise EC2Error(
                "InvalidParameterValue", f"The request has more than {MAX_PARAMS} parameters"
            )
        if shape is None:
            raise unknown_parameter(_printable(key))
        _insert(shape, root, key, value)
    return _finish(shape, root, "") if shape is not None else {}


def _insert(shape: StructureShape, root: dict, key: str, value: str) -> None:
    """Place one flat parameter into the tree, converting its value by the leaf's type."""
    if len(key) > MAX_NAME_LENGTH:
        raise unknown_parameter(_printable(key))
    segments = key.split(".")
    if len(segments) > MAX_NAME_DEPTH:
        raise unknown_parameter(_printable(key))
    # Resolve the whole path before touching the tree, so that a dropped `""` leaves no
    # empty structure or list element behind.
    steps: list[tuple[str | int, Shape]] = []
    member: _Member | None = None
    for segment in segments:
        member = None
        if shape.type_name == "structure":
            member = _struct_table(shape)[0].get(segment)
            if member is None:
                raise unknown_parameter(_printable(key))
            slot: str | int = member.name
            shape = member.shape
        elif shape.type_name == "list":
            if not (segment.isascii() and segment.isdigit()):
                raise unknown_parameter(_printable(key))
            if len(segment) > _INDEX_DIGITS or int(segment) > MAX_LIST_INDEX:
                raise invalid_value(
                    _printable(key),
                    _printable(segment),
                    f"List indices must be between 0 and {MAX_LIST_INDEX}.",
                )
            slot = int(segment)
            shape = shape.member
        else:  # a scalar with more segments after it
            raise unknown_parameter(_printable(key))
        steps.append((slot, shape))

    if shape.type_name == "list" and shape.member.type_name not in _CONTAINERS:
        # `KeyName=x` for `KeyName.1=x`: EC2 takes a list of scalars without an index as
        # its one element, and libcloud sends it so (get_key_pair).
        steps.append((1, shape.member))
        shape = shape.member
    elif shape.type_name in _CONTAINERS:
        raise unknown_parameter(_printable(key))
    elif value == "" and member is not None and member.empty_is_absent:
        return  # "not given" (see the module docstring)

    node: dict = root
    for slot, slot_shape in steps[:-1]:
        child = node.get(slot)
        if child is None:
            child = _List() if slot_shape.type_name == "list" else {}
            node[slot] = child
        node = child
    slot = steps[-1][0]
    if slot in node:
        raise EC2Error(
            "InvalidParameterValue",
            f"The parameter {_printable(key)} is specified more than once",
        )
    node[slot] = _convert(shape, key, value)


def _finish(shape: StructureShape, node: dict, prefix: str) -> dict:
    """Turn `_List`s into sorted lists and check required members, depth first."""
    by_wire, required = _struct_table(shape)
    for member in required:
        if member.name not in node:
            raise missing_parameter(prefix + member.wire)
    for member in by_wire.values():
        if member.name in node:
            node[member.name] = _finish_value(member.shape, node[member.name], prefix + member.wire)
    return node


def _finish_value(shape: Shape, value: Any, wire: str) -> Any:
    if isinstance(value, _List):
        return [
            _finish_value(shape.member, value[index], f"{wire}.{index}") for index in sorted(value)
        ]
    if shape.type_name == "structure":
        return _finish(shape, value, wire + ".")
    return value


def _convert(shape: Shape, key: str, value: str) -> Any:
    """A wire string as the Python value of a scalar shape."""
    kind = shape.type_name
    if kind == "string":
        return value
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        if _INT_RE.fullmatch(value):
            number = int(value)
            if low <= number <= high:
                return number
        raise invalid_value(_printable(key), _printable(value), "Expected an integer.")
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise invalid_value(_printable(key), _printable(value), "Expected true or false.")
    if kind in ("float", "double"):
        if _FLOAT_RE.fullmatch(value):
            number = float(value)
            if math.isfinite(number):
                return number
        raise invalid_value(_printable(key), _printable(value), "Expected a number.")
    if kind == "timestamp":
        return _timestamp(key, value)
    if kind == "blob":
        try:
            return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_value(
                _printable(key), _printable(value), "Expected base64-encoded data."
            ) from None
    raise unknown_parameter(_printable(key))  # no other scalar types in the ec2 input model


def _timestamp(key: str, value: str) -> datetime:
    """ISO 8601 / RFC 3339 text as an aware UTC datetime (naive times are taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid_value(
            _printable(key), _printable(value), "Expected an ISO 8601 timestamp."
        ) from None


def _printable(text: str, limit: int = 128) -> str:
    """Client text shortened for an error message (the serializer escapes it)."""
    return text if len(text) <= limit else text[:limit] + "..."
