"""Every signed request captured from real clients verifies; every tampered copy fails."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from ec2gw.auth.verify import IncomingRequest, verify
from ec2gw.protocol.errors import EC2Error

SHARED = Path(os.environ.get("EC2GW_SHARED") or Path(__file__).resolve().parents[2] / "shared")
CAPTURES = SHARED / "fixtures" / "client-captures"
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def _signed(capture: dict) -> bool:
    names = {n.lower() for n, _ in capture["headers"]}
    params = {k for k, _ in capture["query_params"] + capture["form_params"]}
    return "authorization" in names or "X-Amz-Signature" in params or "Signature" in params


def _load() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(CAPTURES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            capture = json.loads(line)
            if _signed(capture):
                cases.append((f"{path.stem}:{capture['n']}:{capture.get('tag', '')}", capture))
    return cases


CASES = _load()


def _request(capture: dict) -> IncomingRequest:
    host = next(v for n, v in capture["headers"] if n.lower() == "host")
    return IncomingRequest(
        method=capture["method"],
        host=host,
        path=capture["path"],
        query=capture["query"],
        headers=[tuple(h) for h in capture["headers"]],
        body=capture["body"].encode(),
    )


def _signing_time(capture: dict) -> float:
    params = dict(capture["query_params"] + capture["form_params"])
    headers = {n.lower(): v for n, v in capture["headers"]}
    stamp = headers.get("x-amz-date") or params.get("X-Amz-Date")
    if stamp:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    if "Timestamp" in params:
        return datetime.fromisoformat(params["Timestamp"].replace("Z", "+00:00")).timestamp()
    return capture["t"]


def _params(req: IncomingRequest) -> list[tuple[str, str]]:
    pairs = parse_qsl(req.query, keep_blank_values=True)
    if req.body and req.method == "POST":
        pairs += parse_qsl(req.body.decode(), keep_blank_values=True)
    return pairs


def _verify(req: IncomingRequest, now: float, secret: str = SECRET):
    async def lookup(key: str) -> str | None:
        return secret if key == KEY else None

    return asyncio.run(verify(req, _params(req), lookup, now=now))


def test_there_are_captures_for_every_client():
    assert len(CASES) >= 400
    assert {case.split(":")[0] for case, _ in CASES} >= {
        "boto3",
        "awscli",
        "node",
        "boto2",
        "boto2_sigv2",
        "libcloud_v2",
        "libcloud_v4",
    }


@pytest.mark.parametrize(("case", "capture"), CASES, ids=[c for c, _ in CASES])
def test_capture_verifies_and_tampering_fails(case, capture):
    req, now = _request(capture), _signing_time(capture)
    caller = _verify(req, now)
    assert caller.access_key == KEY

    def refused(tampered: IncomingRequest, secret: str = SECRET) -> str:
        with pytest.raises(EC2Error) as err:
            _verify(tampered, now, secret)
        return err.value.code

    assert refused(req, secret=SECRET[:-1] + "X") == "AuthFailure"
    moved = [(n, v + "0" if n.lower() == "host" else v) for n, v in req.headers]
    assert refused(replace(req, host=req.host + "0", headers=moved)) == "AuthFailure"
    if req.body:
        body = req.body.replace(b"Action=", b"Action=X", 1)
        assert refused(replace(req, body=body)) == "AuthFailure"
    if req.query:
        query = req.query.replace("Action=", "Action=X", 1)
        if query != req.query:
            assert refused(replace(req, query=query)) == "AuthFailure"
    with pytest.raises(EC2Error) as err:
        _verify(req, now + 3600)
    assert err.value.code == "RequestExpired"


def test_skew_both_ways_is_refused():
    case, capture = next(c for c in CASES if c[0].startswith("boto3"))
    req, now = _request(capture), _signing_time(capture)
    for skew in (-16 * 60, 16 * 60):
        with pytest.raises(EC2Error) as err:
            _verify(req, now + skew)
        assert err.value.code == "RequestExpired"
    _verify(req, now + 14 * 60)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/ec2/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=A/20261126/r/s/aws4_request, SignedHeaders=x, Signature=ab",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 \x00\xff",
    ],
)
def test_malformed_authorization_is_a_client_error(authorization):
    req = IncomingRequest(
        "POST",
        "h:1",
        "/",
        "",
        [("Host", "h:1"), ("X-Amz-Date", "20261126T210728Z"), ("Authorization", authorization)],
        b"",
    )
    with pytest.raises(EC2Error) as err:
        _verify(req, datetime(2026, 11, 26, 21, 7, 28, tzinfo=UTC).timestamp())
    assert 400 <= err.value.status < 500


def test_unsigned_request():
    req = IncomingRequest("GET", "h", "/", "Action=DescribeRegions", [("Host", "h")], b"")
    with pytest.raises(EC2Error) as err:
        _verify(req, 0)
    assert (err.value.code, err.value.status) == ("MissingAuthenticationToken", 403)


def _sigv2(extra: dict[str, str], secret: str = SECRET) -> tuple[IncomingRequest, dict]:
    from ec2gw.auth.verify import sigv2_signature

    params = {
        "Action": "DescribeRegions",
        "Version": "2016-11-15",
        "AWSAccessKeyId": KEY,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        **extra,
    }
    req = IncomingRequest("POST", "127.0.0.1:8773", "/", "", [("Host", "127.0.0.1:8773")], b"")
    params["Signature"] = sigv2_signature(req, params, secret)
    from urllib.parse import urlencode

    body = urlencode(params).encode()
    return replace(req, body=body), params


def test_sigv2_expires_and_timestamp_are_enforced():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()
    ok, _ = _sigv2({"Expires": "2026-11-26T12:05:00Z"})
    assert _verify(ok, now).signature_version == "v2"
    stale, _ = _sigv2({"Expires": "2026-11-26T11:59:00Z"})
    with pytest.raises(EC2Error) as err:
        _verify(stale, now)
    assert err.value.code == "RequestExpired"
    old, _ = _sigv2({"Timestamp": "2026-11-26T11:40:00Z"})
    with pytest.raises(EC2Error) as err:
        _verify(old, now)
    assert err.value.code == "RequestExpired"
    sha1, _ = _sigv2({"Timestamp": "2026-11-26T12:00:00Z", "SignatureMethod": "HmacSHA1"})
    assert _verify(sha1, now).access_key == KEY
    for bad in ({"Timestamp": "yesterday"}, {}):
        req, _ = _sigv2(bad)
        with pytest.raises(EC2Error) as err:
            _verify(req, now)
        assert 400 <= err.value.status < 500
    md5 = replace(ok, body=ok.body.replace(b"HmacSHA256", b"HmacMD5"))
    with pytest.raises(EC2Error) as err:
        _verify(md5, now)
    assert err.value.code == "IncompleteSignature"
