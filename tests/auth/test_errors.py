"""The error answered for each way a request can be unsigned, malformed, stale or forged.

Requests are signed here with botocore's stock `SigV4Auth` / `SigV2Auth` (the client side),
independently of the verifier, at a fixed time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import replace
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from botocore.auth import SigV2Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ec2gw.auth import sigv4
from ec2gw.auth.verify import IncomingRequest, verify
from ec2gw.protocol.errors import EC2Error
from tests.auth.conftest import CAPTURES, KEY, SECRET, run_verify

HOST = "127.0.0.1:8773"
AMZ_DATE = "20261126T210730Z"
NOW = 1795727250.0  # 2026-11-26T21:07:30Z
BODY = b"Action=DescribeRegions&Version=2016-11-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
AUTH_FAILURE = ("AuthFailure", "AWS was not able to validate the provided access credentials")
INCOMPLETE = "IncompleteSignature"
TS = {"Timestamp": "2026-11-26T21:07:30Z"}


def code_of(req: IncomingRequest, now: float = NOW, **kwargs) -> str:
    with pytest.raises(EC2Error) as err:
        run_verify(req, now, **kwargs)
    return err.value.code


def answer_of(req: IncomingRequest, now: float = NOW, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(EC2Error) as err:
        run_verify(req, now, **kwargs)
    return err.value.code, err.value.message, err.value.status


def v4_request(
    *,
    body: bytes = BODY,
    query: str = "",
    headers: dict[str, str] | None = None,
    timestamp: str = AMZ_DATE,
    region: str = "us-east-1",
    service: str = "ec2",
    key: str = KEY,
    secret: str = SECRET,
) -> IncomingRequest:
    """A POST signed by stock botocore over all of its headers, like boto3 does."""
    sent = {"Host": HOST, "Content-Type": FORM, "X-Amz-Date": timestamp, **(headers or {})}
    sent = {name: value for name, value in sent.items() if value is not None}
    url = f"http://{HOST}/" + (f"?{query}" if query else "")
    request = AWSRequest(method="POST", url=url, data=body, headers=sent)
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(key, secret), service, region)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return IncomingRequest(
        "POST", HOST, "/", query, [*sent.items(), ("Authorization", authorization)], body
    )


def with_authorization(req: IncomingRequest, value: str) -> IncomingRequest:
    headers = [(n, v) for n, v in req.headers if n != "Authorization"]
    return replace(req, headers=[*headers, ("Authorization", value)])


def authorization_of(req: IncomingRequest) -> str:
    return next(v for n, v in req.headers if n == "Authorization")


# -- SigV4 header -----------------------------------------------------------------------


def test_a_botocore_signed_request_verifies():
    caller = run_verify(v4_request(), NOW)
    assert (caller.access_key, caller.signature_version) == (KEY, "v4")
    assert (caller.region, caller.service) == ("us-east-1", "ec2")


def test_scope_region_and_service_are_returned_verbatim():
    caller = run_verify(v4_request(region="0", service="127"), NOW)
    assert (caller.region, caller.service) == ("0", "127")
    caller = run_verify(v4_request(region="US-WEST-2"), NOW)
    assert caller.region == "US-WEST-2"


def test_date_header_instead_of_x_amz_date():
    req = v4_request(headers={"X-Amz-Date": None, "Date": "Thu, 26 Nov 2026 21:07:30 GMT"})
    assert run_verify(req, NOW).access_key == KEY
    assert code_of(req, NOW + 16 * 60) == "RequestExpired"


def test_content_sha256_header_must_be_the_body_hash():
    good = v4_request(headers={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    assert run_verify(good, NOW).access_key == KEY
    # Signed consistently by the client, but for another body: a swapped body.
    other = v4_request(headers={"X-Amz-Content-SHA256": hashlib.sha256(b"x").hexdigest()})
    assert answer_of(other)[:2] == AUTH_FAILURE


def test_unsigned_payload_is_refused():
    req = v4_request(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    code, message, status = answer_of(req)
    assert (code, status) == ("IncompleteSignature", 400) and "UNSIGNED-PAYLOAD" in message


def test_wrong_signature_and_unknown_key_say_the_same():
    req = v4_request()
    forged = with_authorization(req, authorization_of(req)[:-4] + "0000")
    assert answer_of(forged)[:2] == AUTH_FAILURE
    assert answer_of(v4_request(key="AKIDUNKNOWN"))[:2] == AUTH_FAILURE
    assert answer_of(req, secrets={})[:2] == AUTH_FAILURE
    assert answer_of(v4_request(secret="not-the-secret"))[:2] == AUTH_FAILURE
    assert answer_of(forged)[2] == 401


def test_implausible_access_key_is_not_looked_up():
    asked: list[str] = []
    for key in ("A" * 200, "AKID\x00X", "AKIDé"):
        assert answer_of(v4_request(key=key), asked=asked)[:2] == AUTH_FAILURE
    assert asked == []


def test_signed_headers_values_are_trimmed_and_duplicates_joined():
    req = v4_request(headers={"X-Custom": "a  b "})
    spaced = replace(req, headers=[(n, "  a b" if n == "X-Custom" else v) for n, v in req.headers])
    assert run_verify(spaced, NOW).access_key == KEY
    doubled = replace(req, headers=[*req.headers, ("X-Custom", "c")])
    assert code_of(doubled) == "AuthFailure"


VALID = authorization_of(v4_request())
SCOPE = f"{KEY}/20261126/us-east-1/ec2/aws4_request"


ALG = "AWS4-HMAC-SHA256"


@pytest.mark.parametrize(
    ("label", "authorization", "code"),
    [
        ("empty-after-algorithm", f"{ALG} ", INCOMPLETE),
        ("algorithm-only", ALG, INCOMPLETE),
        ("no-signature", f"{ALG} Credential={SCOPE}, SignedHeaders=host", INCOMPLETE),
        ("no-signed-headers", f"{ALG} Credential={SCOPE}, Signature=ab", INCOMPLETE),
        ("no-credential", f"{ALG} SignedHeaders=host, Signature=ab", INCOMPLETE),
        (
            "empty-signature",
            f"{ALG} Credential={SCOPE}, SignedHeaders=host, Signature=",
            INCOMPLETE,
        ),
        ("scope-not-aws4_request", VALID.replace("aws4_request", "aws4_reques"), INCOMPLETE),
        ("scope-four-parts", VALID.replace("/ec2/", "/"), INCOMPLETE),
        ("scope-empty-region", VALID.replace("/us-east-1/", "//"), INCOMPLETE),
        ("scope-date-mismatch", VALID.replace("/20261126/", "/20261125/"), INCOMPLETE),
        ("host-not-signed", VALID.replace(";host;", ";"), INCOMPLETE),
        ("other-algorithm", VALID.replace(ALG, "AWS4-HMAC-SHA512"), INCOMPLETE),
        ("sigv2-header", f"AWS {KEY}:c2lnbmF0dXJl", INCOMPLETE),
        ("basic", "Basic dXNlcjpwYXNz", INCOMPLETE),
        ("junk", "\x00\xff junk", INCOMPLETE),
        ("no-spaces-wrong-sig", VALID.replace(", ", ",")[:-1] + "0", "AuthFailure"),
        ("signature-uppercase", VALID[:-64] + VALID[-64:].upper(), "AuthFailure"),
    ],
)
def test_malformed_authorization(label, authorization, code):
    error = answer_of(with_authorization(v4_request(), authorization))
    assert error[0] == code, label
    assert error[2] == (400 if code == "IncompleteSignature" else 401)


def test_separators_without_spaces_are_accepted():
    """boto 2 writes `Credential=…,SignedHeaders=…,Signature=…`."""
    req = v4_request()
    assert run_verify(with_authorization(req, VALID.replace(", ", ",")), NOW).access_key == KEY


def test_every_truncation_of_the_authorization_header_is_a_clean_refusal():
    req = v4_request()
    for end in range(len(VALID)):
        code = code_of(with_authorization(req, VALID[:end]))
        assert code in ("IncompleteSignature", "AuthFailure"), (end, code)


@pytest.mark.parametrize(
    ("label", "headers", "code"),
    [
        ("bad-format", {"X-Amz-Date": "2026-11-26T21:07:30Z"}, "IncompleteSignature"),
        ("month-13", {"X-Amz-Date": "20261326T210730Z"}, "IncompleteSignature"),
        ("no-z", {"X-Amz-Date": "20261126T210730"}, "IncompleteSignature"),
        ("missing", {"X-Amz-Date": None}, "IncompleteSignature"),
        ("bad-date-header", {"X-Amz-Date": None, "Date": "yesterday"}, "IncompleteSignature"),
    ],
)
def test_bad_request_dates(label, headers, code):
    req = v4_request()
    kept = [(n, v) for n, v in req.headers if n not in headers]
    added = [(n, v) for n, v in headers.items() if v is not None]
    assert code_of(replace(req, headers=kept + added)) == code, label


def test_x_amz_date_given_twice_is_refused():
    req = v4_request()
    assert code_of(replace(req, headers=[*req.headers, ("X-Amz-Date", AMZ_DATE)])) == (
        "IncompleteSignature"
    )


def test_skew_window_is_max_skew_both_ways():
    req = v4_request()
    for now in (NOW - 901, NOW + 901):
        assert answer_of(req, now)[::2] == ("RequestExpired", 400)
    for now in (NOW - 900, NOW + 900):
        run_verify(req, now)

    async def lookup(_: str) -> str:
        return SECRET

    with pytest.raises(EC2Error) as err:
        asyncio.run(verify(req, [], lookup, now=NOW + 120, max_skew=60))
    assert err.value.code == "RequestExpired"


def test_two_authorization_headers_are_refused():
    req = v4_request()
    assert code_of(replace(req, headers=[*req.headers, ("authorization", VALID)])) == (
        "IncompleteSignature"
    )


# -- no credentials, two mechanisms, session tokens -----------------------------------


@pytest.mark.parametrize(
    "req",
    [
        IncomingRequest("GET", HOST, "/", "Action=DescribeRegions", [("Host", HOST)], b""),
        IncomingRequest("POST", HOST, "/", "", [("Host", HOST), ("Content-Type", FORM)], BODY),
        IncomingRequest("GET", HOST, "/", "", [], b""),
    ],
    ids=["get", "post", "bare"],
)
def test_unsigned_request(req):
    code, message, status = answer_of(req)
    assert (code, status) == ("MissingAuthenticationToken", 403)
    assert "access key ID" in message


def test_header_and_presigned_together_are_refused():
    presigned = next(c for c in CAPTURES if c.scheme == "v4-presigned")
    req = replace(v4_request(), query=presigned.request.query)
    assert code_of(req) == "IncompleteSignature"


def test_session_tokens_are_covered_by_the_signature():
    token = next(c for c in CAPTURES if c.has_session_token)
    assert run_verify(token.request, token.signed_at).access_key == KEY
    headers = [
        (n, v + "x" if n.lower() == "x-amz-security-token" else v) for n, v in token.request.headers
    ]
    assert code_of(replace(token.request, headers=headers), token.signed_at) == "AuthFailure"


# -- presigned ----------------------------------------------------------------------------


def presigned_now(req: IncomingRequest) -> float:
    stamp = dict(parse_qsl(req.query))["X-Amz-Date"]
    return time.mktime(time.strptime(stamp, "%Y%m%dT%H%M%SZ")) - time.timezone


def botocore_presigned(expires: int = 300, method: str = "GET") -> IncomingRequest:
    """A presigned DescribeRegions URL made by stock botocore, signed now."""
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}/",
        params={"Action": "DescribeRegions", "Version": "2016-11-15"},
    )
    SigV4QueryAuth(Credentials(KEY, SECRET), "ec2", "eu-west-1", expires=expires).add_auth(request)
    query = request.prepare().url.split("?", 1)[1]
    return IncomingRequest(method, HOST, "/", query, [("Host", HOST)], b"")


def test_botocore_presigned_url_verifies_with_get_and_post():
    for method in ("GET", "POST"):
        caller = run_verify(botocore_presigned(method=method), time.time())
        assert (caller.signature_version, caller.region) == ("v4-presigned", "eu-west-1")


def test_presigned_expiry():
    req = botocore_presigned(expires=60)
    signed_at = presigned_now(req)
    run_verify(req, signed_at + 60)
    assert answer_of(req, signed_at + 61)[::2] == ("RequestExpired", 400)
    assert answer_of(req, signed_at - 901)[::2] == ("RequestExpired", 400)


@pytest.mark.parametrize(
    ("label", "change", "code"),
    [
        ("expires-too-long", ("Expires=300", "Expires=604801"), INCOMPLETE),
        ("expires-zero", ("Expires=300", "Expires=0"), INCOMPLETE),
        ("expires-junk", ("Expires=300", "Expires=5m"), INCOMPLETE),
        ("expires-huge", ("Expires=300", "Expires=" + "9" * 5000), INCOMPLETE),
        ("expires-missing", ("X-Amz-Expires=300&", ""), INCOMPLETE),
        ("algorithm", ("Algorithm=AWS4-HMAC-SHA256", "Algorithm=HMAC"), INCOMPLETE),
        ("credential-missing", ("X-Amz-Credential=", "X-Amz-Kredential="), INCOMPLETE),
        (
            "date-twice",
            ("X-Amz-Expires=", "X-Amz-Date=20261126T210731Z&X-Amz-Expires="),
            INCOMPLETE,
        ),
        ("date-format", ("Date=20261126T210731Z", "Date=2026-11-26"), INCOMPLETE),
        ("host-unsigned", ("SignedHeaders=host", "SignedHeaders=accept"), INCOMPLETE),
        ("signature", ("X-Amz-Signature=b", "X-Amz-Signature=c"), "AuthFailure"),
    ],
)
def test_malformed_presigned(label, change, code):
    capture = next(c for c in CAPTURES if c.scheme == "v4-presigned")
    query = capture.request.query.replace(*change, 1)
    assert query != capture.request.query, label
    assert code_of(replace(capture.request, query=query), capture.signed_at) == code, label


# -- SigV2 --------------------------------------------------------------------------------


def sigv2_request(
    extra: dict[str, str],
    *,
    method: str = "POST",
    drop: tuple[str, ...] = (),
    secret: str = SECRET,
    host: str = HOST,
) -> IncomingRequest:
    """A SigV2 request signed by stock botocore (HmacSHA256) or by hand (HmacSHA1)."""
    params = {
        "Action": "DescribeRegions",
        "Version": "2016-11-15",
        "AWSAccessKeyId": KEY,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        **extra,
    }
    qs, signature = SigV2Auth(Credentials(KEY, secret)).calc_signature(
        AWSRequest(method=method, url=f"http://{host.lower()}/"), params
    )
    if params["SignatureMethod"] == "HmacSHA1":
        text = f"{method}\n{host.lower()}\n/\n{qs}".encode()
        signature = base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha1).digest())
        signature = signature.decode()
    params["Signature"] = signature
    encoded = urlencode({k: v for k, v in params.items() if k not in drop}, quote_via=quote)
    if method == "GET":
        return IncomingRequest("GET", host, "/", encoded, [("Host", host)], b"")
    headers = [("Host", host), ("Content-Type", FORM)]
    return IncomingRequest("POST", host, "/", "", headers, encoded.encode())


def test_sigv2_timestamp_get_and_post():
    for method in ("GET", "POST"):
        req = sigv2_request({"Timestamp": "2026-11-26T21:07:30Z"}, method=method)
        caller = run_verify(req, NOW)
        assert (caller.access_key, caller.signature_version, caller.region) == (KEY, "v2", None)
        assert answer_of(req, NOW + 901)[::2] == ("RequestExpired", 400)
        assert code_of(req, NOW - 901) == "RequestExpired"


def test_sigv2_expires():
    req = sigv2_request({"Expires": "2026-11-26T21:12:30Z"})
    assert run_verify(req, NOW).signature_version == "v2"
    assert run_verify(req, NOW + 300).signature_version == "v2"
    assert answer_of(req, NOW + 301)[::2] == ("RequestExpired", 400)


def test_sigv2_hmac_sha1_and_host_case():
    sha1 = sigv2_request({"Timestamp": "2026-11-26T21:07:30Z", "SignatureMethod": "HmacSHA1"})
    assert run_verify(sha1, NOW).access_key == KEY
    upper = sigv2_request({"Timestamp": "2026-11-26T21:07:30Z"}, host="EC2.Example.COM")
    assert run_verify(upper, NOW).access_key == KEY


@pytest.mark.parametrize(
    ("label", "extra", "drop", "code"),
    [
        ("no-time", {}, (), INCOMPLETE),
        ("both-times", {**TS, "Expires": "2026-11-26T21:12:30Z"}, (), INCOMPLETE),
        ("bad-timestamp", {"Timestamp": "yesterday"}, (), INCOMPLETE),
        ("bad-expires", {"Expires": "soon"}, (), INCOMPLETE),
        ("version-1", {**TS, "SignatureVersion": "1"}, (), INCOMPLETE),
        ("no-version", TS, ("SignatureVersion",), INCOMPLETE),
        ("md5", {**TS, "SignatureMethod": "HmacMD5"}, (), INCOMPLETE),
        ("no-method", TS, ("SignatureMethod",), INCOMPLETE),
        ("no-key", TS, ("AWSAccessKeyId",), INCOMPLETE),
        ("no-signature", TS, ("Signature",), INCOMPLETE),
        ("unknown-key", {**TS, "AWSAccessKeyId": "AKIDX"}, (), "AuthFailure"),
    ],
)
def test_malformed_sigv2(label, extra, drop, code):
    if extra.get("SignatureMethod") == "HmacMD5":
        req = sigv2_request({**extra, "SignatureMethod": "HmacSHA256"})
        req = replace(req, body=req.body.replace(b"HmacSHA256", b"HmacMD5"))
    else:
        req = sigv2_request(extra, drop=drop)
    assert code_of(req) == code, label


def test_sigv2_forgeries():
    req = sigv2_request({"Timestamp": "2026-11-26T21:07:30Z"})
    assert answer_of(req, secrets={KEY: "other"})[:2] == AUTH_FAILURE
    assert answer_of(replace(req, host="127.0.0.1:8774"))[:2] == AUTH_FAILURE
    assert answer_of(replace(req, method="GET", query=req.body.decode(), body=b""))[:2] == (
        AUTH_FAILURE
    )
    changed = req.body.replace(b"DescribeRegions", b"DescribeImages")
    assert answer_of(replace(req, body=changed))[:2] == AUTH_FAILURE


def test_sigv2_repeated_param_is_refused():
    """A repeated name could be read by the action in its unsigned spelling."""
    req = sigv2_request({"Timestamp": "2026-11-26T21:07:30Z"})
    doubled = replace(req, body=b"Action=TerminateInstances&" + req.body)
    assert code_of(doubled) == "IncompleteSignature"


# -- speed ----------------------------------------------------------------------------------


def test_derived_signing_keys_are_cached():
    req = v4_request()
    run_verify(req, NOW)
    before = sigv4.signing_key.cache_info().hits
    for _ in range(3):
        run_verify(req, NOW)
    assert sigv4.signing_key.cache_info().hits >= before + 3
