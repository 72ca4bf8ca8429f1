"""SigV4 verification (Authorization header and presigned query), with botocore's own code.

botocore's `SigV4Auth` computes the canonical request, the string to sign and the
signature; we only tell it what the client signed instead of letting it guess
(`shared/reference/ec2-clients.md` §5):

* the signed headers are exactly the client's `SignedHeaders`, values as received, the
  `host` value being the Host header with its port;
* the query is decoded and handed over as pairs, so botocore re-encodes it the RFC 3986 way
  (libcloud sends `+` but signs `%20`);
* the payload hash is the hash of the body we actually received, never the client's claim;
* region and service come from the client's scope verbatim (boto 2 signs `0`/`127` for an
  IP endpoint); what to do with them is the caller's policy, not ours.

`add_auth()` is never called: it re-stamps the date and rewrites headers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from ec2gw.auth.common import (
    Caller,
    IncomingRequest,
    SecretLookup,
    check_skew,
    expired,
    header_values,
    incomplete,
    secret_for,
)
from ec2gw.protocol.errors import auth_failure

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # AWS's limit for X-Amz-Expires
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_EXPIRES = re.compile(r"[0-9]{1,7}")
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


@lru_cache(maxsize=512)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key of one (secret, day, region, service): four HMACs saved per request.

    Bounded LRU; the secret is part of the cache key, so a rotated secret never hits an old
    entry, and a revoked key never gets this far (its lookup fails first).
    """
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class _Signer(SigV4Auth):
    """botocore's SigV4 computation, told what the client signed instead of guessing it."""

    def __init__(
        self, secret: str, region: str, service: str, signed: HTTPHeaders, payload_hash: str
    ) -> None:
        super().__init__(Credentials("-", secret), service, region)
        self._signed = signed
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:  # noqa: ARG002
        return self._signed

    def payload(self, request: AWSRequest) -> str:  # noqa: ARG002
        return self._payload_hash

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        """botocore's final HMAC step, over a cached derived key."""
        key = signing_key(
            self.credentials.secret_key,
            request.context["timestamp"][:8],
            self._region_name,
            self._service_name,
        )
        return self._sign(key, string_to_sign, hex=True)


def compute_signature(
    req: IncomingRequest,
    *,
    method: str,
    query_pairs: list[tuple[str, str]],
    signed_names: list[str],
    payload_hash: str,
    amz_date: str,
    secret: str,
    region: str,
    service: str,
) -> str:
    """The hex SigV4 signature of `req` as a client with `secret` would have computed it."""
    received = header_values(req.headers)
    received["host"] = [req.host]
    signed = HTTPHeaders()
    for name in signed_names:
        for value in received.get(name, ()):
            signed[name] = value
    # The netloc is irrelevant (headers_to_sign is ours); a fixed one keeps a hostile Host
    # header out of urlsplit. The path is decoded once and re-quoted by botocore, like the
    # client's signer quoted the path it was given.
    path = unquote(req.path)
    if not path.startswith("/"):
        path = "/" + path
    request = AWSRequest(method=method, url="http://gateway" + path)
    request.params = query_pairs
    request.context["timestamp"] = amz_date
    signer = _Signer(secret, region, service, signed, payload_hash)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)


def _parse_scope(credential: str, amz_date: str) -> tuple[str, str, str]:
    """access key, region, service from `AK/YYYYMMDD/region/service/aws4_request`."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise incomplete(
            "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request."
        )
    access_key, date, region, service, _ = parts
    if date != amz_date[:8]:
        raise incomplete(f"Credential scope date {date[:16]} does not match the request date.")
    return access_key, region, service


def _parse_amz_date(value: str) -> datetime:
    if _AMZ_DATE.fullmatch(value):
        try:
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            pass
    raise incomplete(f"Invalid X-Amz-Date {value[:32]!r}: expected YYYYMMDDTHHMMSSZ.")


def _signed_names(value: str) -> list[str]:
    names = [name.strip() for name in value.lower().split(";")]
    if "host" not in names:
        raise incomplete("The host header must be signed (SignedHeaders lacks 'host').")
    return names


def payload_hash(req: IncomingRequest) -> str:
    """sha256 of the received body; a client-sent X-Amz-Content-Sha256 must agree with it."""
    actual = hashlib.sha256(req.body).hexdigest()
    for value in header_values(req.headers).get("x-amz-content-sha256", ()):
        claimed = value.strip()
        if claimed == "UNSIGNED-PAYLOAD" or claimed.startswith("STREAMING-"):
            # A body the signature would not cover: a deliberate refusal, said plainly.
            raise incomplete(f"X-Amz-Content-Sha256 {claimed[:40]!r} is not accepted.")
        if claimed != actual:
            raise auth_failure()
    return actual


def _only(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    if not found:
        return None
    if len(found) > 1:
        raise incomplete(f"{name} must be given once.")
    return found[0].strip()


def _request_time(req: IncomingRequest) -> tuple[str, datetime]:
    """(timestamp as signed, datetime) from X-Amz-Date, or else from Date (RFC 1123)."""
    headers = header_values(req.headers)
    amz_date = _only(headers, "x-amz-date")
    if amz_date is not None:
        return amz_date, _parse_amz_date(amz_date)
    date = _only(headers, "date")
    if date is None:
        raise incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    try:
        signed_at = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise incomplete(f"Invalid Date header {date[:40]!r}.") from None
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    signed_at = signed_at.astimezone(UTC)
    return signed_at.strftime("%Y%m%dT%H%M%SZ"), signed_at


def _authorization_fields(authorization: str) -> dict[str, str]:
    """`Credential=…, SignedHeaders=…, Signature=…` (`,` or `, ` between them)."""
    fields: dict[str, str] = {}
    for item in authorization[len(ALGORITHM) :].split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            fields.setdefault(key, value.strip())
    for key in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(key):
            raise incomplete(f"Authorization header requires '{key}' parameter.")
    return fields


async def verify_header(
    req: IncomingRequest,
    authorization: str,
    query_pairs: list[tuple[str, str]],
    lookup: SecretLookup,
    now: float,
    max_skew: int,
) -> Caller:
    """Verify `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`."""
    fields = _authorization_fields(authorization)
    signed_names = _signed_names(fields["SignedHeaders"])
    amz_date, signed_at = _request_time(req)
    access_key, region, service = _parse_scope(fields["Credential"], amz_date)
    check_skew(signed_at, now, max_skew)
    body_hash = payload_hash(req)
    secret = await secret_for(lookup, access_key)
    expected = compute_signature(
        req,
        method=req.method,
        query_pairs=query_pairs,
        signed_names=signed_names,
        payload_hash=body_hash,
        amz_date=amz_date,
        secret=secret,
        region=region,
        service=service,
    )
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        raise auth_failure()
    return Caller(access_key, "v4", region, service)


def _presign_params(query_pairs: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in query_pairs:
        if key in _PRESIGN_PARAMS:
            if key in found:
                raise incomplete(f"{key} must be given once.")
            found[key] = value
    for key in _PRESIGN_PARAMS:
        if not found.get(key):
            raise incomplete(f"A presigned request requires the '{key}' parameter.")
    if found["X-Amz-Algorithm"] != ALGORITHM:
        raise incomplete(f"X-Amz-Algorithm must be {ALGORITHM}.")
    return found


async def verify_presigned(
    req: IncomingRequest,
    query_pairs: list[tuple[str, str]],
    lookup: SecretLookup,
    now: float,
    max_skew: int,
) -> Caller:
    """Verify a presigned URL (`X-Amz-Algorithm`, `X-Amz-Credential`, … in the query)."""
    query = _presign_params(query_pairs)
    amz_date = query["X-Amz-Date"]
    signed_at = _parse_amz_date(amz_date)
    access_key, region, service = _parse_scope(query["X-Amz-Credential"], amz_date)
    lifetime = query["X-Amz-Expires"]
    if not _EXPIRES.fullmatch(lifetime) or not 1 <= int(lifetime) <= MAX_PRESIGN_SECONDS:
        raise incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_SECONDS} seconds.")
    if signed_at.timestamp() - now > max_skew or now > signed_at.timestamp() + int(lifetime):
        raise expired()
    signed_names = _signed_names(query["X-Amz-SignedHeaders"])
    body_hash = payload_hash(req)
    secret = await secret_for(lookup, access_key)
    canonical_pairs = [(k, v) for k, v in query_pairs if k != "X-Amz-Signature"]
    given = query["X-Amz-Signature"].encode()
    # botocore presigns EC2 (Query protocol) URLs with the operation's method, POST, though
    # they are usually fetched with GET (boto/boto3#756): a GET may also match as POST.
    received = req.method.upper()
    for method in (received, "POST") if received == "GET" else (received,):
        expected = compute_signature(
            req,
            method=method,
            query_pairs=canonical_pairs,
            signed_names=signed_names,
            payload_hash=body_hash,
            amz_date=amz_date,
            secret=secret,
            region=region,
            service=service,
        )
        if hmac.compare_digest(expected.encode(), given):
            return Caller(access_key, "v4-presigned", region, service)
    raise auth_failure()
