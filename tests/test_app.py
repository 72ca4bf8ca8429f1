"""The request helpers of the HTTP front: request ids and parameter decoding."""

import uuid
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ec2gw.app import new_request_id, request_params
from ec2gw.protocol.errors import EC2Error

FORM = "application/x-www-form-urlencoded; charset=utf-8"


def test_request_ids_are_distinct_version_4_uuids():
    seen = {new_request_id() for _ in range(2000)}
    assert len(seen) == 2000
    for text in list(seen)[:200]:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


@given(st.text(alphabet="ab=&+%2Fé~ ", max_size=40))
def test_parameters_decode_like_parse_qsl(raw):
    try:
        expected = parse_qsl(raw, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        with pytest.raises(EC2Error):
            request_params(raw, "", b"")
        return
    names = [name for name, _ in expected]
    if len(names) != len(set(names)):
        with pytest.raises(EC2Error, match="more than once"):
            request_params(raw, "", b"")
        return
    assert request_params(raw, "", b"") == expected
    assert request_params("", FORM, raw.encode()) == expected


@pytest.mark.parametrize("query, body", [("A=%FF", b""), ("", b"A=%C3"), ("", b"A=\xff")])
def test_invalid_utf8_is_a_malformed_query_string(query, body):
    with pytest.raises(EC2Error) as err:
        request_params(query, FORM, body)
    assert err.value.code == "MalformedQueryString"


def test_query_and_form_merge_and_a_name_twice_is_refused():
    assert request_params("Action=X", FORM, b"Version=1") == [("Action", "X"), ("Version", "1")]
    assert request_params("Action=X", "text/plain", b"Version=1") == [("Action", "X")]
    with pytest.raises(EC2Error, match="more than once"):
        request_params("Action=X", FORM, b"Action=Y")
