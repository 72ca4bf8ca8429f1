"""EC2's rules for tags, shared by CreateTags and every TagSpecifications parameter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ec2gw.protocol.errors import EC2Error

MAX_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256


def validate(tags: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """`[{"Key":..., "Value":...}]` → an ordered dict, or the EC2 error for bad tags."""
    result: dict[str, str] = {}
    for tag in tags or []:
        key = tag.get("Key")
        value = tag.get("Value") or ""
        if key is None or key == "":
            raise EC2Error("InvalidParameterValue", "Tag key must not be empty")
        if len(key) > MAX_KEY:
            raise EC2Error(
                "InvalidParameterValue",
                f"Tag key exceeds the maximum length of {MAX_KEY} characters",
            )
        if len(value) > MAX_VALUE:
            raise EC2Error(
                "InvalidParameterValue",
                f"Tag value exceeds the maximum length of {MAX_VALUE} characters",
            )
        if key.lower().startswith("aws:"):
            raise EC2Error(
                "InvalidParameterValue",
                "Tag keys starting with 'aws:' are reserved for internal use",
            )
        if key in result:
            raise EC2Error("InvalidParameterValue", f"Duplicate tag key '{key}'")
        result[key] = value
    if len(result) > MAX_TAGS:
        raise EC2Error("TagLimitExceeded", f"The maximum number of tags ({MAX_TAGS}) was exceeded")
    return result


RESOURCE_TYPES = {
    "instance",
    "volume",
    "network-interface",
    "image",
    "snapshot",
    "security-group",
    "key-pair",
    "elastic-ip",
    "spot-instances-request",
    "launch-template",
}


def from_specifications(
    specifications: Iterable[Mapping[str, Any]] | None, resource_type: str
) -> dict[str, str]:
    """The tags a `TagSpecification.N` list asks for one resource type."""
    tags: dict[str, str] = {}
    for spec in specifications or []:
        kind = spec.get("ResourceType")
        if kind is None:
            raise EC2Error("InvalidParameterValue", "TagSpecification must specify a ResourceType")
        if kind not in RESOURCE_TYPES:
            raise EC2Error(
                "InvalidParameterValue", f"'{kind}' is not a valid taggable resource type"
            )
        if kind == resource_type:
            tags.update(validate(spec.get("Tags")))
    return tags
