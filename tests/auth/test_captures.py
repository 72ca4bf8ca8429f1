"""Every signed request captured from a real client verifies; every tampered copy fails.

The captures (boto3, aws cli, JS SDK v3, boto 2, libcloud; SigV4 header, presigned, SigV2)
are the ground truth for canonicalisation: a verifier that rejects one of them rejects a
real client.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ec2gw.auth import sigv4
from ec2gw.auth.sigv2 import sigv2_signature, string_to_sign
from ec2gw.auth.verify import IncomingRequest
from ec2gw.protocol.errors import EC2Error
from tests.auth.conftest import CAPTURES, KEY, SECRET, Capture, header, params_of, run_verify

AUTH_FAILURE = ("AuthFailure", "AWS was not able to validate the provided access credentials")
OTHER_KEY = "AKIDOTHEREXAMPLE"


def refusal(req: IncomingRequest, now: float, **kwargs) -> tuple[str, str]:
    with pytest.raises(EC2Error) as err:
        run_verify(req, now, **kwargs)
    return err.value.code, err.value.message


def with_header(req: IncomingRequest, name: str, change) -> IncomingRequest:
    headers = [(n, change(v) if n.lower() == name else v) for n, v in req.headers]
    host = change(req.host) if name == "host" else req.host
    return replace(req, headers=headers, host=host)


def v4_fields(req: IncomingRequest) -> dict[str, str]:
    value = header(req, "authorization") or ""
    parts = (item.strip().partition("=") for item in value[len("AWS4-HMAC-SHA256") :].split(","))
    return {key: val for key, _, val in parts}


def test_captures_cover_every_client_and_scheme(shared):
    files = Counter(c.id.split(":")[0] for c in CAPTURES)
    schemes = Counter(c.scheme for c in CAPTURES)
    assert {"boto3", "awscli", "node", "boto2", "boto2_sigv2", "libcloud_v2", "libcloud_v4"} <= set(
        files
    )
    assert schemes["v4"] >= 340 and schemes["v4-presigned"] >= 2 and schemes["v2"] >= 78
    assert len(CAPTURES) >= 427 + 13, f"{len(CAPTURES)} signed captures: {dict(schemes)}"


def test_params_are_decoded_like_the_capture_tool(shared):
    """Our test decoding of query + form equals the capture tool's (for the .jsonl records)."""
    import json

    for path in sorted((shared / "fixtures" / "client-captures").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            req = IncomingRequest(
                record["method"], "h", record["path"], record["query"], record["headers"], b""
            )
            req = replace(req, body=record["body"].encode())
            expected = [tuple(p) for p in record["query_params"] + record["form_params"]]
            assert params_of(req) == expected, f"{path.name}:{record['n']}"


def test_capture_verifies(capture: Capture):
    caller = run_verify(capture.request, capture.signed_at, params=capture.params)
    assert caller.access_key == KEY
    assert caller.signature_version == capture.scheme
    if capture.scheme == "v2":
        assert (caller.region, caller.service) == (None, None)
    else:
        assert caller.region and caller.service


VERIFIABLE = CAPTURES
VERIFIABLE_IDS = [c.id for c in VERIFIABLE]


def _tampered(capture: Capture) -> dict[str, IncomingRequest]:
    """Named copies of the request, each changed in one signed place."""
    req = capture.request
    copies: dict[str, IncomingRequest] = {
        "host": with_header(req, "host", lambda v: v + "0"),
        "host-case": with_header(req, "host", lambda v: "X" + v),
    }
    if "Action=" in req.body.decode():
        copies["body-param"] = replace(req, body=req.body.replace(b"Action=", b"Action=X", 1))
    if "Action=" in req.query:
        copies["query-param"] = replace(req, query=req.query.replace("Action=", "Action=X", 1))
    if capture.scheme != "v2" and req.body:
        last = req.body[-1:]
        flipped = bytes([last[0] ^ 0x01])
        copies["body-byte"] = replace(req, body=req.body[:-1] + flipped)
        copies["body-extra"] = replace(req, body=req.body + b"&DryRun=true")
    if capture.scheme == "v4":
        for name in v4_fields(req)["SignedHeaders"].split(";"):
            if name not in ("host", "x-amz-date"):
                copies[f"header:{name}"] = with_header(req, name, lambda v: v + "x")
        copies["x-amz-date+1s"] = with_header(req, "x-amz-date", _one_second_later)
        copies["signature"] = with_header(req, "authorization", _flip_signature)
    if capture.scheme == "v4-presigned":
        copies["query-extra"] = replace(req, query=req.query + "&DryRun=true")
        copies["method"] = replace(req, method="PUT")
        copies["body-added"] = replace(req, body=b"Action=TerminateInstances")
    if capture.scheme == "v2":
        copies["param-extra"] = _with_params(capture, [("Tampered", "1")])
    return copies


def _one_second_later(value: str) -> str:
    seconds = int(value[13:15])
    return value[:13] + f"{(seconds + 1) % 60:02d}" + value[15:]


def _flip_signature(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def _with_params(capture: Capture, extra: list[tuple[str, str]]) -> IncomingRequest:
    """The SigV2 request with its params re-encoded, plus `extra`, where they were sent."""
    req = capture.request
    encoded = urlencode(capture.params + extra, quote_via=quote)
    if req.method == "GET":
        return replace(req, query=encoded)
    return replace(req, query="", body=encoded.encode())


@pytest.mark.parametrize("capture", VERIFIABLE, ids=VERIFIABLE_IDS)
def test_tampered_capture_is_refused(capture: Capture):
    now = capture.signed_at
    answers = {label: refusal(copy, now) for label, copy in _tampered(capture).items()}
    answers["wrong-secret"] = refusal(capture.request, now, secrets={KEY: SECRET[:-1] + "X"})
    answers["secret-prefix"] = refusal(capture.request, now, secrets={KEY: SECRET[:-1]})
    wrong = {label: answer for label, answer in answers.items() if answer != AUTH_FAILURE}
    assert not wrong, f"not refused with AuthFailure: {wrong}"


def _resigned(capture: Capture, access_key: str) -> IncomingRequest:
    """The request signed again, correctly, under another access key id (same secret)."""
    req = capture.request
    if capture.scheme == "v2":
        params = [(k, access_key if k == "AWSAccessKeyId" else v) for k, v in capture.params]
        fields = dict(params)
        signature = sigv2_signature(replace(req, query="", body=b""), fields, SECRET)
        params = [(k, signature if k == "Signature" else v) for k, v in params]
        return _with_params(replace(capture, params=params), [])
    if capture.scheme == "v4-presigned":
        pairs = [
            (k, v.replace(KEY, access_key) if k == "X-Amz-Credential" else v)
            for k, v in parse_qsl(req.query, keep_blank_values=True)
        ]
        values = dict(pairs)
        unsigned = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        signature = sigv4.compute_signature(
            req,
            method="POST",
            query_pairs=unsigned,
            signed_names=["host"],
            payload_hash=sigv4.payload_hash(req),
            amz_date=values["X-Amz-Date"],
            secret=SECRET,
            region=values["X-Amz-Credential"].split("/")[2],
            service=values["X-Amz-Credential"].split("/")[3],
        )
        query = urlencode(unsigned + [("X-Amz-Signature", signature)], quote_via=quote)
        return replace(req, query=query)
    fields = v4_fields(req)
    _, date, region, service, _ = fields["Credential"].split("/")
    signature = sigv4.compute_signature(
        req,
        method=req.method,
        query_pairs=parse_qsl(req.query, keep_blank_values=True),
        signed_names=fields["SignedHeaders"].split(";"),
        payload_hash=sigv4.payload_hash(req),
        amz_date=header(req, "x-amz-date") or "",
        secret=SECRET,
        region=region,
        service=service,
    )
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{date}/{region}/{service}/aws4_request, "
        f"SignedHeaders={fields['SignedHeaders']}, Signature={signature}"
    )
    return with_header(req, "authorization", lambda _: authorization)


@pytest.mark.parametrize("capture", VERIFIABLE, ids=VERIFIABLE_IDS)
def test_resigned_with_an_unknown_key_is_refused(capture: Capture):
    resigned = _resigned(capture, OTHER_KEY)
    asked: list[str] = []
    assert refusal(resigned, capture.signed_at, asked=asked) == AUTH_FAILURE
    assert asked == [OTHER_KEY]
    # The same request verifies once the key exists: the refusal was about the key alone.
    caller = run_verify(resigned, capture.signed_at, secrets={OTHER_KEY: SECRET})
    assert caller.access_key == OTHER_KEY


@pytest.mark.parametrize("capture", VERIFIABLE, ids=VERIFIABLE_IDS)
def test_clock_skew_and_expiry(capture: Capture):
    now = capture.signed_at
    if capture.scheme == "v4-presigned":
        lifetime = int(dict(capture.params)["X-Amz-Expires"])
        run_verify(capture.request, now + lifetime)
        assert refusal(capture.request, now + lifetime + 1)[0] == "RequestExpired"
        assert refusal(capture.request, now - 16 * 60)[0] == "RequestExpired"
        return
    for skew in (-16 * 60, 16 * 60):
        assert refusal(capture.request, now + skew)[0] == "RequestExpired"
    for skew in (-14 * 60, 14 * 60):
        run_verify(capture.request, now + skew)


@pytest.mark.parametrize("capture", [c for c in CAPTURES if c.scheme == "v2"], ids=lambda c: c.id)
def test_sigv2_string_to_sign_is_botocores(capture: Capture):
    req, fields = capture.request, dict(capture.params)
    qs, signature = SigV2Auth(Credentials(KEY, SECRET)).calc_signature(
        AWSRequest(method=req.method, url="http://" + req.host.lower() + req.path), fields
    )
    assert string_to_sign(req, fields).split("\n", 3)[3] == qs
    assert sigv2_signature(req, fields, SECRET) == signature == fields["Signature"]
