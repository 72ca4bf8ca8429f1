"""`MaxResults` / `NextToken` paging, the same way for every action that pages.

The token is opaque to clients: it carries the offset of the next page and a digest of
the request's other parameters, so a token cannot be replayed against a different query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ec2gw.protocol.errors import EC2Error

T = TypeVar("T")

_IGNORED = {"MaxResults", "NextToken", "DryRun"}


@dataclass(frozen=True)
class Bounds:
    """What EC2 accepts as MaxResults for one action.

    `capped`: EC2 answers a larger value with `maximum` items instead of refusing it (its
    API reference: "if MaxResults is given a value larger than N, only N results are
    returned"); the aws cli v1 sends MaxResults=1000 for `describe-volumes` and
    `describe-snapshots` without arguments, so DescribeVolumes (max 500) must not refuse it.
    Where the botocore model bounds the shape (min/max), these are the model's bounds.
    """

    minimum: int
    maximum: int
    capped: bool = False


# Every action that pages, by its EC2 name (a test checks this against the registry and
# the botocore model: every implemented action whose input has MaxResults is here).
MAX_RESULTS: dict[str, Bounds] = {
    "DescribeAddressesAttribute": Bounds(1, 1000),
    "DescribeImages": Bounds(1, 1000),
    "DescribeInstances": Bounds(5, 1000),
    "DescribeInstanceStatus": Bounds(5, 1000),
    "DescribeInstanceTypeOfferings": Bounds(5, 1000),
    "DescribeInstanceTypes": Bounds(5, 100),
    "DescribeNetworkInterfaces": Bounds(5, 1000),
    "DescribeSecurityGroupRules": Bounds(5, 1000),
    "DescribeSecurityGroups": Bounds(5, 1000),
    "DescribeSnapshots": Bounds(5, 1000, capped=True),
    "DescribeSubnets": Bounds(5, 1000),
    "DescribeTags": Bounds(5, 1000, capped=True),
    "DescribeVolumeStatus": Bounds(5, 1000, capped=True),
    "DescribeVolumes": Bounds(5, 500, capped=True),
    "DescribeVpcs": Bounds(5, 1000),
}


def _digest(request: Mapping[str, Any]) -> str:
    stable = {k: v for k, v in request.items() if k not in _IGNORED}
    text = json.dumps(stable, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _bad_token() -> EC2Error:
    return EC2Error("InvalidPaginationToken", "The specified pagination token is not valid")


def no_max_results_with(params: Mapping[str, Any], ids_member: str, wire_name: str) -> None:
    """EC2 refuses paging when explicit ids are asked for (e.g. InstanceId.N + MaxResults)."""
    if params.get(ids_member) and params.get("MaxResults") is not None:
        raise EC2Error(
            "InvalidParameterCombination",
            f"The parameter {wire_name} cannot be used with the parameter maxResults",
        )


def page(
    items: Sequence[T],
    request: Mapping[str, Any],
    *,
    action: str | None = None,
    minimum: int = 5,
    maximum: int = 1000,
) -> tuple[Sequence[T], str | None]:
    """Cut one page out of `items` (already in a stable order) for this request; `action`
    takes its MaxResults bounds from `MAX_RESULTS`."""
    capped = False
    if action is not None:
        bounds = MAX_RESULTS[action]
        minimum, maximum, capped = bounds.minimum, bounds.maximum, bounds.capped
    max_results = request.get("MaxResults")
    token = request.get("NextToken")
    offset = 0
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
            offset = int(decoded["o"])
            valid = decoded["q"] == _digest(request) and offset >= 0
        except (binascii.Error, ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise _bad_token()
    if max_results is None:
        if not token:
            return items, None
        max_results = maximum
    if capped and max_results > maximum:
        max_results = maximum
    if not minimum <= max_results <= maximum:
        raise EC2Error(
            "InvalidParameterValue",
            f"Value ( {max_results} ) for parameter maxResults is invalid. "
            f"Expecting a value between {minimum} and {maximum}.",
        )
    end = offset + max_results
    if end >= len(items):
        return items[offset:], None
    raw = json.dumps({"o": end, "q": _digest(request)}).encode()
    return items[offset:end], base64.urlsafe_b64encode(raw).decode().rstrip("=")
