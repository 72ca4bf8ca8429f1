"""Every operation of the model, both directions, against botocore's own code.

Inputs: botocore's EC2Serializer writes a request with every member filled; parse_params
must give the same dict back. Outputs: serialize_response writes a result with every
member filled; botocore's EC2QueryParser must read the same dict back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.model import Shape
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from ec2gw.protocol.model import NAMESPACE, operation, service_model
from ec2gw.protocol.parser import parse_params
from ec2gw.protocol.serializer import serialize_response

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
SCALARS: dict[str, Any] = {
    "string": "s &<>\"' ✓",
    "integer": 7,
    "long": 2**40,
    "boolean": True,
    "float": 1.5,
    "double": 0.25,
    "timestamp": WHEN,
    "blob": b"\x00\x01blob",
}


def example(shape: Shape) -> Any:
    """A value for `shape` with every member set (one item per list)."""
    if shape.type_name == "structure":
        return {name: example(member) for name, member in shape.members.items()}
    if shape.type_name == "list":
        return [example(shape.member)]
    return SCALARS[shape.type_name]


def as_utc(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: as_utc(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [as_utc(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


OPERATIONS = service_model().operation_names


def test_model_is_2016_11_15_with_slash_namespace() -> None:
    assert service_model().api_version == "2016-11-15"
    assert NAMESPACE == "http://ec2.amazonaws.com/doc/2016-11-15/"
    assert service_model() is service_model()
    assert operation("DescribeInstances") is operation("DescribeInstances")
    assert operation("NoSuchAction") is None and operation("describeinstances") is None
    assert len(OPERATIONS) > 800


@pytest.mark.parametrize("action", OPERATIONS)
def test_parses_what_botocore_sends(action: str) -> None:
    op = operation(action)
    params = example(op.input_shape)
    body = create_serializer("ec2", include_validation=False).serialize_to_request(params, op)[
        "body"
    ]
    pairs = [(key, str(value)) for key, value in body.items()]
    assert parse_params(op, pairs) == params


@pytest.mark.parametrize("action", OPERATIONS)
def test_botocore_reads_what_we_send(action: str) -> None:
    op = operation(action)
    result = example(op.output_shape) if op.output_shape is not None else {}
    body = serialize_response(op, result, "req-1")
    response = {"body": body, "headers": {}, "status_code": 200}
    parsed = create_parser("ec2").parse(response, op.output_shape)
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"
    assert as_utc(parsed) == result
