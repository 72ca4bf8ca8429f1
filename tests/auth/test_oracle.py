"""Our SigV4 canonicalisation against botocore's `SigV4Auth`, the oracle, on generated input.

`sigv4` builds the canonical request with plain string operations; here botocore builds it
from the same pieces (what the client signed: its SignedHeaders, the received values, the
decoded path and query pairs, the received body's hash), and the two must be equal, as must
the signatures. A second family of tests signs whole requests with stock botocore, the way a
client does, and `verify` must accept them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ec2gw.auth import sigv4
from ec2gw.auth.common import header_values, query_pairs, rfc3986
from ec2gw.auth.verify import IncomingRequest, verify
from ec2gw.protocol.errors import EC2Error
from tests.auth.conftest import KEY, SECRET

ORACLE = settings(
    max_examples=int(os.environ.get("EC2GW_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
AMZ_DATE = "20261126T210730Z"
NOW = 1795727250.0  # AMZ_DATE
HOST = "127.0.0.1:8773"


class _Oracle(SigV4Auth):
    """Stock botocore, told what the client signed instead of guessing it.

    Only the plumbing is ours: which headers, which payload hash, which path. The path is
    handed to botocore's own `_normalize_url_path` directly, because a decoded path with a
    '?', '#', tab or newline would not survive the round trip through a URL.
    """

    def __init__(self, region: str, service: str, signed: HTTPHeaders, payload: str, path: str):
        super().__init__(Credentials(KEY, SECRET), service, region)
        self._signed, self._payload, self._path = signed, payload, path

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:  # noqa: ARG002
        return self._signed

    def payload(self, request: AWSRequest) -> str:  # noqa: ARG002
        return self._payload

    def _normalize_url_path(self, path: str) -> str:  # noqa: ARG002
        return super()._normalize_url_path(self._path)


def botocore_canonical_and_signature(
    req: IncomingRequest,
    method: str,
    query_pairs: list[tuple[str, str]],
    signed_names: list[str],
    region: str = "us-east-1",
    service: str = "ec2",
) -> tuple[str, str]:
    received = header_values(req.headers)
    received["host"] = [req.host]
    signed = HTTPHeaders()
    for name in signed_names:
        for value in received.get(name, ()):
            signed[name] = value
    path = unquote(req.path)
    if not path.startswith("/"):
        path = "/" + path
    request = AWSRequest(method=method, url="http://gateway/")
    request.params = query_pairs
    request.context["timestamp"] = AMZ_DATE
    signer = _Oracle(region, service, signed, hashlib.sha256(req.body).hexdigest(), path)
    canonical = signer.canonical_request(request)
    return canonical, signer.signature(signer.string_to_sign(request, canonical), request)


def ours(
    req: IncomingRequest,
    method: str,
    query_pairs: list[tuple[str, str]],
    signed_names: list[str],
    region: str = "us-east-1",
    service: str = "ec2",
) -> tuple[str, str]:
    pieces = {
        "method": method,
        "query_pairs": query_pairs,
        "signed_names": signed_names,
        "payload_hash": sigv4.payload_hash(req),
    }
    canonical = sigv4.canonical_request(req, **pieces)
    signature = sigv4.compute_signature(
        req, **pieces, amz_date=AMZ_DATE, secret=SECRET, region=region, service=service
    )
    return canonical, signature


# -- strategies -----------------------------------------------------------------------------

unicode_text = st.text(st.characters(exclude_categories=("Cs",), max_codepoint=0x2FFFF), max_size=8)
escape = st.binary(min_size=1, max_size=3).map(lambda b: "".join(f"%{c:02X}" for c in b))
segment = st.one_of(
    st.sampled_from(["", ".", "..", "a", "~user", "a b", "%2F", "%2e", "%2E%2E", "%zz", "%", "+"]),
    st.sampled_from(["?", "#", "a?b=c", "\t", "%3F", "%23", "%0A", "é", "%C3%A9", "%FF"]),
    escape,
    unicode_text,
)
path = st.one_of(
    st.lists(segment, max_size=6).map("/".join),
    st.lists(segment, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts)),
)
query_text = st.one_of(
    st.sampled_from(["", "a", "A", "Action", "+", " ", "~", "a+b", "a b", "=", "&", "%", "é"]),
    unicode_text,
)
query_key = st.one_of(st.sampled_from(["Action", "Filter.1.Name", "a", "A", "b"]), query_text)
pair_lists = st.lists(st.tuples(query_key, query_text), max_size=8)
header_name = st.sampled_from(
    ["Host", "host", "X-Amz-Date", "Content-Type", "X-Custom", "x-custom", "X-Other", "a", ""]
)
latin1_value = st.text(
    st.characters(max_codepoint=255, exclude_categories=("Cs", "Cc")) | st.sampled_from(" \t"),
    max_size=16,
)
header_value = st.one_of(
    st.sampled_from(["", " ", "a  b ", "  a\tb", "a,b", " x ", "\xa0a\xa0", "a\x1fb", "\x85"]),
    latin1_value,
)
headers = st.lists(st.tuples(header_name, header_value), max_size=8)
signed_extra = st.lists(
    st.sampled_from(["x-custom", "x-other", "content-type", "x-amz-date", "missing", "", "host"]),
    max_size=5,
)


@ORACLE
@given(
    raw_path=path,
    pairs=pair_lists,
    received=headers,
    extra=signed_extra,
    host=st.one_of(st.just(HOST), latin1_value),
    method=st.sampled_from(["GET", "POST", "post", "PUT"]),
    body=st.binary(max_size=32),
)
@example(
    raw_path="/a%3Fb=c/./d/../", pairs=[], received=[], extra=[], host=HOST, method="GET", body=b""
)
@example(
    raw_path="",
    pairs=[("a", "2"), ("a", "10"), ("a", ""), ("b", "+"), ("A", "~")],
    received=[("X-Custom", "  a  b "), ("x-custom", "c"), ("X-Other", "")],
    extra=["x-custom", "x-other", "x-custom", "missing"],
    host=HOST,
    method="POST",
    body=b"Action=DescribeRegions",
)
def test_canonical_request_and_signature_are_botocores(
    raw_path, pairs, received, extra, host, method, body
):
    req = IncomingRequest(method, host, raw_path, "", received, body)
    signed_names = ["host", *extra]
    assert ours(req, method, pairs, signed_names) == botocore_canonical_and_signature(
        req, method, pairs, signed_names
    )


@ORACLE
@given(query=st.text(max_size=60) | st.lists(query_text, max_size=6).map("&".join))
def test_raw_query_strings_canonicalise_like_botocore(query):
    """The verifier's decoding (parse_qsl) then our encoding, against botocore's encoding."""
    pairs = parse_qsl(query, keep_blank_values=True)
    req = IncomingRequest("GET", HOST, "/", query, [("Host", HOST)], b"")
    assert ours(req, "GET", pairs, ["host"]) == botocore_canonical_and_signature(
        req, "GET", pairs, ["host"]
    )


@pytest.mark.parametrize(
    ("region", "service"), [("us-east-1", "ec2"), ("0", "127"), ("US-WEST-2", "ec2"), ("é", " ")]
)
def test_scope_and_cached_signing_key_are_botocores(region, service):
    req = IncomingRequest("POST", HOST, "/", "", [("Host", HOST)], b"Action=DescribeRegions")
    assert ours(req, "POST", [], ["host"], region, service) == (
        botocore_canonical_and_signature(req, "POST", [], ["host"], region, service)
    )


def test_a_question_mark_in_the_decoded_path_is_part_of_the_path():
    """`/a%3Fb` is the path `/a?b`, canonical `/a%3Fb`: not the path `/a` with a query."""
    assert sigv4.canonical_path("/a%3Fb=c") == "/a%3Fb%3Dc"
    assert sigv4.canonical_path("/a%23b") == "/a%23b"
    assert sigv4.canonical_path("") == "/"
    assert sigv4.canonical_path("a/./b/../../..") == "/"
    assert sigv4.canonical_path("//a//b//") == "/a/b/"


# -- whole requests signed by stock botocore, the client side ------------------------------

client_header_name = st.sampled_from(["X-Custom", "X-Other", "Content-Type", "X-Amz-Target"])
client_header_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(" \t"), max_size=16
).map(str.strip)


@ORACLE
@given(
    pairs=pair_lists,
    sent=st.dictionaries(client_header_name, client_header_value, max_size=4),
    raw_path=st.sampled_from(["/", "/a/b", "/a/./b/../c/", "//x"]),
    body=st.binary(max_size=32),
)
def test_requests_signed_by_stock_botocore_verify(pairs, sent, raw_path, body):
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}{raw_path}",
        params=pairs,
        data=body,
        headers={"Host": HOST, "X-Amz-Date": AMZ_DATE, **sent},
    )
    request.context["timestamp"] = AMZ_DATE
    signer = SigV4Auth(Credentials(KEY, SECRET), "ec2", "us-east-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    split = urlsplit(request.prepare().url)
    req = IncomingRequest(
        "POST",
        HOST,
        split.path,
        split.query,
        [*request.headers.items(), ("Authorization", authorization)],
        body,
    )

    async def lookup(_: str) -> str:
        return SECRET

    params = parse_qsl(split.query, keep_blank_values=True)
    try:
        caller = asyncio.run(verify(req, params, lookup, now=NOW))
    except EC2Error as err:
        # A query parameter named like a presigned one is a second mechanism: refused.
        assert err.code == "IncompleteSignature"
        assert {k for k, _ in pairs} & {"X-Amz-Algorithm", "X-Amz-Signature", "X-Amz-Credential"}
        return
    assert caller.access_key == KEY


@pytest.mark.parametrize(
    "value",
    [
        "20261126T210730Z",
        "20240229T000000Z",
        "00010101T000000Z",
        "99991231T235959Z",
    ],
)
def test_amz_date_valid(value):
    assert _amz(sigv4._parse_amz_date(value)) == value


def _amz(moment: datetime) -> str:
    """`YYYYMMDDTHHMMSSZ` (strftime prints year 1 as `1` on glibc)."""
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"
    )


@pytest.mark.parametrize(
    "value",
    [
        "20261326T210730Z",  # month 13
        "20260230T210730Z",  # Feb 30
        "20250229T210730Z",  # not a leap year
        "20261100T210730Z",
        "20261126T240000Z",
        "20261126T216000Z",
        "20261126T210760Z",  # no leap seconds
        "00000101T000000Z",
        "20261126T210730z",
        "20261126t210730Z",
        "20261126T210730",
        "2026112T210730ZZ",
        "2026-11-26T21:07",
        "+0261126T210730Z",
        " 0261126T210730Z",
        "2026112６T210730Z",  # a fullwidth digit: ASCII only
        "",
    ],
)
def test_amz_date_invalid(value):
    with pytest.raises(EC2Error) as err:
        sigv4._parse_amz_date(value)
    assert err.value.code == "IncompleteSignature"


@given(st.datetimes(timezones=st.just(None)))
def test_amz_date_round_trip(moment):
    parsed = sigv4._parse_amz_date(_amz(moment))
    assert parsed == moment.replace(microsecond=0, tzinfo=UTC)


def test_canonical_query_encoding():
    """The RFC 3986 set botocore uses: letters, digits and -_.~ are left alone."""
    assert sigv4.canonical_query([("a b+~", "é/=&")]) == "a%20b%2B~=%C3%A9%2F%3D%26"
    assert sigv4.canonical_query([("b", "1"), ("a", "2"), ("a", "10"), ("a", "")]) == (
        "a=&a=10&a=2&b=1"
    )


# -- the stdlib shortcuts -------------------------------------------------------------------

raw_query = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(["a=b", "a", "=", "&", "+", "%20", "%zz", "%C3%A9", "%FF", "==", "é", ""]),
        max_size=8,
    ).map("&".join),
)


@ORACLE
@given(query=raw_query)
def test_query_pairs_is_parse_qsl(query):
    assert query_pairs(query) == parse_qsl(query, keep_blank_values=True)


@ORACLE
@given(text=st.one_of(query_text, st.text(max_size=30)))
def test_rfc3986_is_quote(text):
    assert rfc3986(text) == quote(text, safe="-_.~")
