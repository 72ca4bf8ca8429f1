"""Hostile input: whatever a client sends, `verify` answers with an EC2Error, never a crash.

The strategies mix real fragments (the scheme's keywords, plausible dates, a real captured
request) with arbitrary text, so the parser gets past its first checks often.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from urllib.parse import quote, urlencode

from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ec2gw.auth.sigv2 import string_to_sign
from ec2gw.auth.verify import IncomingRequest, verify
from ec2gw.protocol.errors import EC2Error
from tests.auth.conftest import CAPTURES, SECRET

NOW = 1795727250.0
FUZZ = settings(
    max_examples=int(os.environ.get("EC2GW_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

latin1 = st.text(st.characters(max_codepoint=255, exclude_categories=("Cs",)), max_size=40)
fragment = st.sampled_from(
    [
        "AWS4-HMAC-SHA256 ",
        "Credential=",
        "AKIDEXAMPLE/",
        "20261126/",
        "us-east-1/",
        "ec2/",
        "aws4_request",
        "SignedHeaders=",
        "host;x-amz-date",
        "Signature=",
        "0" * 64,
        ", ",
        ",",
        "=",
        "/",
        ";",
        " ",
    ]
)
authorization = st.lists(st.one_of(fragment, latin1), max_size=12).map("".join)
header_name = st.one_of(
    st.sampled_from(
        [
            "Authorization",
            "X-Amz-Date",
            "Date",
            "Host",
            "X-Amz-Content-Sha256",
            "X-Amz-Security-Token",
            "Content-Type",
        ]
    ),
    latin1,
)
header_value = st.one_of(
    authorization,
    st.sampled_from(
        ["20261126T210730Z", "Thu, 26 Nov 2026 21:07:30 GMT", "UNSIGNED-PAYLOAD", "-0000"]
    ),
    latin1,
)
param_name = st.one_of(
    st.sampled_from(
        [
            "Action",
            "Signature",
            "SignatureVersion",
            "SignatureMethod",
            "AWSAccessKeyId",
            "Timestamp",
            "Expires",
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        ]
    ),
    st.text(max_size=20),
)
param_value = st.one_of(
    st.sampled_from(
        [
            "2",
            "HmacSHA256",
            "HmacSHA1",
            "AKIDEXAMPLE",
            "AWS4-HMAC-SHA256",
            "AKIDEXAMPLE/20261126/us-east-1/ec2/aws4_request",
            "20261126T210730Z",
            "2026-11-26T21:07:30Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "300",
            "host",
        ]
    ),
    st.text(max_size=40),
)
params = st.lists(st.tuples(param_name, param_value), max_size=10)


async def _any_key(_: str) -> str:
    return SECRET


def _refused_cleanly(req: IncomingRequest, pairs: list[tuple[str, str]]) -> None:
    try:
        asyncio.run(verify(req, pairs, _any_key, now=NOW))
    except EC2Error as err:
        assert 400 <= err.status < 500, (err.code, err.status)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "get", ""]),
    host=st.one_of(st.just("127.0.0.1:8773"), latin1),
    path=st.one_of(st.just("/"), st.text(max_size=20)),
    headers=st.lists(st.tuples(header_name, header_value), max_size=8),
    pairs=params,
    body=st.binary(max_size=64),
)
def test_random_requests_only_raise_ec2_errors(method, host, path, headers, pairs, body):
    query = urlencode(pairs, quote_via=quote)
    req = IncomingRequest(method, host, path, query, headers, body)
    _refused_cleanly(req, pairs)
    _refused_cleanly(replace(req, query=""), pairs)


@FUZZ
@given(value=authorization, date=header_value)
def test_random_authorization_on_a_real_request(value, date):
    capture = next(c for c in CAPTURES if c.id.startswith("boto3:"))
    headers = [
        (n, value if n == "Authorization" else date if n == "X-Amz-Date" else v)
        for n, v in capture.request.headers
    ]
    _refused_cleanly(replace(capture.request, headers=headers), capture.params)


@FUZZ
@given(query=st.text(max_size=200))
def test_random_raw_query_strings(query):
    presigned = next(c for c in CAPTURES if c.scheme == "v4-presigned").request
    _refused_cleanly(replace(presigned, query=presigned.query + "&" + query), [])
    _refused_cleanly(replace(presigned, query=query), [])


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=24), max_size=8),
    host=st.sampled_from(["127.0.0.1:8773", "Ec2.Example.COM", "localhost"]),
    method=st.sampled_from(["GET", "POST"]),
)
def test_sigv2_string_to_sign_matches_botocore(pairs, host, method):
    """SigV2 canonicalisation equals botocore's `SigV2Auth.calc_signature` on any params."""
    req = IncomingRequest(method, host, "/", "", [], b"")
    qs, _ = SigV2Auth(Credentials("AKIDEXAMPLE", SECRET)).calc_signature(
        AWSRequest(method=method, url=f"http://{host.lower()}/"), pairs
    )
    assert string_to_sign(req, pairs) == f"{method}\n{host.lower()}\n/\n{qs}"
