"""Who is calling: AWS signature verification (SigV4 header, SigV4 presigned, SigV2).

The canonical forms are botocore's own (`SigV4Auth.canonical_request` and friends), fed
with exactly what the client signed: its signed headers as received, the Host header with
its port, the decoded query re-encoded by botocore, the body's real hash. Region and
service are taken from the client's scope verbatim (boto 2 signs `0`/`127` for an IP
endpoint). Signatures are compared in constant time, and a failure never says which part
was wrong (`shared/reference/ec2-clients.md` §5). A session token, if a client sends one,
is covered by the signature like any signed header and otherwise ignored: ec2gw issues no
temporary credentials, and the secret alone proves who signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote, unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from ec2gw.protocol.errors import EC2Error, auth_failure

SecretLookup = Callable[[str], Awaitable[str | None]]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    host: str  # Host header exactly as received (with its port)
    path: str  # raw path, still percent-encoded
    query: str  # raw query string
    headers: list[tuple[str, str]]  # as received, duplicates kept
    body: bytes


@dataclass(frozen=True)
class Caller:
    access_key: str
    signature_version: str  # "v4", "v4-presigned", "v2"
    region: str | None
    service: str | None


def _incomplete(detail: str) -> EC2Error:
    return EC2Error("IncompleteSignature", detail)


def _expired() -> EC2Error:
    return EC2Error("RequestExpired", "Request has expired.")


def _check_skew(signed_at: datetime, now: float, max_skew: int) -> None:
    if abs(signed_at.timestamp() - now) > max_skew:
        raise _expired()


def _amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _incomplete(f"Invalid date format: {value[:32]}") from None


class _Verifier(SigV4Auth):
    """botocore's SigV4 computation, told what the client signed instead of guessing it."""

    def __init__(self, secret: str, region: str, service: str, signed: HTTPHeaders, payload: str):
        super().__init__(Credentials("-", secret), service, region)
        self._signed = signed
        self._payload = payload

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:  # noqa: ARG002
        return self._signed

    def payload(self, request: AWSRequest) -> str:  # noqa: ARG002
        return self._payload


def _sigv4_signature(
    req: IncomingRequest,
    method: str,
    query_pairs: list[tuple[str, str]],
    signed_names: list[str],
    payload: str,
    amz_date: str,
    secret: str,
    region: str,
    service: str,
) -> str:
    received: dict[str, list[str]] = {}
    for name, value in req.headers:
        received.setdefault(name.lower(), []).append(value)
    signed = HTTPHeaders()
    for name in signed_names:
        for value in received.get(name, []):
            signed[name] = value
    request = AWSRequest(method=method, url="http://" + req.host + unquote(req.path or "/"))
    request.params = query_pairs
    request.context["timestamp"] = amz_date
    verifier = _Verifier(secret, region, service, signed, payload)
    canonical = verifier.canonical_request(request)
    return verifier.signature(verifier.string_to_sign(request, canonical), request)


def _parse_scope(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise _incomplete("Authorization header credential scope is malformed.")
    access_key, date, region, service, _ = parts
    return access_key, date, region, service


def _payload_hash(req: IncomingRequest) -> str:
    actual = hashlib.sha256(req.body).hexdigest()
    for name, value in req.headers:
        if name.lower() == "x-amz-content-sha256" and value.strip() != actual:
            # UNSIGNED-PAYLOAD included: a body swap must never go unnoticed.
            raise auth_failure()
    return actual


async def _secret(lookup: SecretLookup, access_key: str) -> str:
    secret = await lookup(access_key)
    if not secret:
        raise auth_failure()
    return secret


async def _verify_header(
    req: IncomingRequest, authorization: str, lookup: SecretLookup, now: float, max_skew: int
) -> Caller:
    fields: dict[str, str] = {}
    for item in authorization[len(ALGORITHM) :].split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            fields[key] = value
    for key in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(key):
            raise _incomplete(f"Authorization header requires '{key}' parameter.")
    access_key, scope_date, region, service = _parse_scope(fields["Credential"])
    signed_names = fields["SignedHeaders"].lower().split(";")
    if "host" not in signed_names:
        raise _incomplete("'Host' must be a signed header.")
    headers = {n.lower(): v for n, v in req.headers}
    if "x-amz-date" in headers:
        amz_date = headers["x-amz-date"].strip()
        signed_at = _amz_date(amz_date)
    elif "date" in headers:
        try:
            signed_at = parsedate_to_datetime(headers["date"]).astimezone(UTC)
        except (TypeError, ValueError):
            raise _incomplete("Invalid Date header.") from None
        amz_date = signed_at.strftime("%Y%m%dT%H%M%SZ")
    else:
        raise _incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if scope_date != amz_date[:8]:
        raise _incomplete("Credential scope date does not match the request date.")
    _check_skew(signed_at, now, max_skew)
    query_pairs = parse_qsl(req.query, keep_blank_values=True)
    payload = _payload_hash(req)
    secret = await _secret(lookup, access_key)
    expected = _sigv4_signature(
        req, req.method, query_pairs, signed_names, payload, amz_date, secret, region, service
    )
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        raise auth_failure()
    return Caller(access_key, "v4", region, service)


async def _verify_presigned(
    req: IncomingRequest,
    query_pairs: list[tuple[str, str]],
    lookup: SecretLookup,
    now: float,
    max_skew: int,
) -> Caller:
    query = dict(query_pairs)
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise _incomplete("Unsupported X-Amz-Algorithm.")
    for key in (
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ):
        if not query.get(key):
            raise _incomplete(f"Presigned request requires the '{key}' parameter.")
    access_key, scope_date, region, service = _parse_scope(query["X-Amz-Credential"])
    amz_date = query["X-Amz-Date"]
    signed_at = _amz_date(amz_date)
    if scope_date != amz_date[:8]:
        raise _incomplete("Credential scope date does not match the request date.")
    expires = query["X-Amz-Expires"]
    if not expires.isdigit() or int(expires) > MAX_PRESIGN_SECONDS:
        raise EC2Error("AuthFailure", "X-Amz-Expires must be between 1 and 604800 seconds.")
    if signed_at.timestamp() - now > max_skew or now > signed_at.timestamp() + int(expires):
        raise _expired()
    signed_names = query["X-Amz-SignedHeaders"].lower().split(";")
    if "host" not in signed_names:
        raise _incomplete("'Host' must be a signed header.")
    payload = _payload_hash(req)
    secret = await _secret(lookup, access_key)
    canonical_pairs = [(k, v) for k, v in query_pairs if k != "X-Amz-Signature"]
    given = query["X-Amz-Signature"].encode()
    # botocore signs EC2 presigned URLs with the operation's method (POST) although they are
    # usually fetched with GET, so the other method is tried too.
    for method in dict.fromkeys((req.method, "POST")):
        expected = _sigv4_signature(
            req, method, canonical_pairs, signed_names, payload, amz_date, secret, region, service
        )
        if hmac.compare_digest(expected.encode(), given):
            return Caller(access_key, "v4-presigned", region, service)
    raise auth_failure()


def _sigv2_time(params: dict[str, str], now: float, max_skew: int) -> None:
    def parse(value: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _incomplete(f"Invalid timestamp: {value[:32]}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    if "Timestamp" in params:
        _check_skew(parse(params["Timestamp"]), now, max_skew)
    elif "Expires" in params:
        if parse(params["Expires"]).timestamp() < now:
            raise _expired()
    else:
        raise EC2Error("MissingParameter", "The request must contain the parameter Timestamp")


def sigv2_signature(req: IncomingRequest, params: dict[str, str], secret: str) -> str:
    digest = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}[params["SignatureMethod"]]
    pairs = [
        f"{quote(k.encode(), safe='')}={quote(v.encode(), safe='-_~')}"
        for k, v in sorted(params.items())
        if k != "Signature"
    ]
    text = f"{req.method}\n{req.host.lower()}\n{req.path or '/'}\n" + "&".join(pairs)
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), digest).digest()).decode()


async def _verify_sigv2(
    req: IncomingRequest,
    params: dict[str, str],
    lookup: SecretLookup,
    now: float,
    max_skew: int,
) -> Caller:
    if params.get("SignatureMethod") not in ("HmacSHA256", "HmacSHA1"):
        raise _incomplete("SignatureMethod must be HmacSHA256 or HmacSHA1.")
    access_key = params.get("AWSAccessKeyId")
    if not access_key:
        raise EC2Error("MissingParameter", "The request must contain the parameter AWSAccessKeyId")
    _sigv2_time(params, now, max_skew)
    secret = await _secret(lookup, access_key)
    expected = sigv2_signature(req, params, secret)
    if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
        raise auth_failure()
    return Caller(access_key, "v2", None, None)


async def verify(
    req: IncomingRequest,
    params: list[tuple[str, str]],
    lookup: SecretLookup,
    *,
    now: float | None = None,
    max_skew: int = 900,
) -> Caller:
    """Check the request's signature; return the caller or raise the EC2 error."""
    now = time.time() if now is None else now
    authorization = next((v for n, v in req.headers if n.lower() == "authorization"), "")
    if authorization.startswith(ALGORITHM + " "):
        return await _verify_header(req, authorization, lookup, now, max_skew)
    if authorization:
        raise _incomplete("Unsupported Authorization header.")
    query_pairs = parse_qsl(req.query, keep_blank_values=True)
    if any(k == "X-Amz-Algorithm" or k == "X-Amz-Signature" for k, _ in query_pairs):
        return await _verify_presigned(req, query_pairs, lookup, now, max_skew)
    merged = dict(params)
    if "Signature" in merged:
        if merged.get("SignatureVersion") != "2":
            raise _incomplete("Only SignatureVersion 2 and SigV4 are supported.")
        return await _verify_sigv2(req, merged, lookup, now, max_skew)
    raise EC2Error(
        "MissingAuthenticationToken",
        "The request must contain either a valid (registered) AWS access key ID or X.509 "
        "certificate.",
        403,
    )
