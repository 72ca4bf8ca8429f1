"""SigV4 verification (Authorization header and presigned query).

The canonical request, string to sign and signature are computed here with plain string
operations, `urllib.parse.quote`/`unquote` and hashlib/hmac, reproducing botocore's
`SigV4Auth` canonicalisation for what a client signed (`shared/reference/ec2-clients.md`
§5). botocore is the oracle, in the tests only: they compare our canonical request and
signature with `SigV4Auth`'s on generated paths, queries and headers, and every request
captured from a real client must verify. (Calling botocore here cost about a third of a
trivial request.) What we take from the client rather than guess:

* the signed headers are exactly the client's `SignedHeaders`, values as received (runs of
  whitespace collapsed, repeated headers joined with ','), the `host` value being the Host
  header with its port; a signed name that was not received is left out, as botocore does;
* the path is decoded once, dot segments and empty segments removed, and re-quoted
  (`safe='/~'`), like the client's signer quoted the path it was given;
* the query is decoded and re-encoded the RFC 3986 way (libcloud sends `+` but signs `%20`),
  pairs sorted by encoded key, then encoded value;
* the payload hash is the hash of the body we actually received, never the client's claim;
* region and service come from the client's scope verbatim (boto 2 signs `0`/`127` for an
  IP endpoint); what to do with them is the caller's policy, not ours.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote

from ec2gw.auth.common import (
    Caller,
    IncomingRequest,
    SecretLookup,
    check_skew,
    expired,
    header_values,
    incomplete,
    rfc3986,
    secret_for,
)
from ec2gw.protocol.errors import auth_failure

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # AWS's limit for X-Amz-Expires
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
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


def canonical_path(raw_path: str) -> str:
    """The raw (percent-encoded) path decoded, normalised and quoted as botocore does.

    Normalised = `botocore.utils.normalize_url_path`: '.' and empty segments dropped, '..'
    pops one, the leading '/' kept, a trailing '/' kept unless nothing is left.
    """
    if raw_path == "/":
        return "/"
    path = unquote(raw_path)
    if not path.startswith("/"):
        path = "/" + path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normalised = "/" + "/".join(segments)
    if segments and path.endswith("/"):
        normalised += "/"
    return quote(normalised, safe="/~")


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """Decoded pairs re-encoded (RFC 3986), sorted by encoded key, then encoded value."""
    if not pairs:
        return ""
    encoded = sorted([(rfc3986(key), rfc3986(value)) for key, value in pairs])
    return "&".join([f"{key}={value}" for key, value in encoded])


def canonical_headers(
    signed_names: list[str], received: dict[str, list[str]], host: str
) -> tuple[str, str]:
    """(canonical header lines, signed header list) over the names that have a value.

    A name listed n times in SignedHeaders contributes its values n times, as botocore's
    header map (which appends on every assignment) does.
    """
    lines: list[str] = []
    names: list[str] = []
    for name in sorted(set(signed_names)):
        values = [host] if name == "host" else received.get(name)
        if not values:
            continue
        joined = ",".join([" ".join(value.split()) for value in values])
        repeat = signed_names.count(name)
        if repeat > 1:
            joined = ",".join([joined] * repeat)
        lines.append(f"{name}:{joined}")
        names.append(name)
    return "\n".join(lines), ";".join(names)


def _canonical_tail(
    req: IncomingRequest,
    query_pairs: list[tuple[str, str]],
    signed_names: list[str],
    payload_hash: str,
    received: dict[str, list[str]],
) -> str:
    """The canonical request after its method line (the same for every method tried)."""
    lines, names = canonical_headers(signed_names, received, req.host)
    path, query = canonical_path(req.path), canonical_query(query_pairs)
    return f"{path}\n{query}\n{lines}\n\n{names}\n{payload_hash}"


def canonical_request(
    req: IncomingRequest,
    *,
    method: str,
    query_pairs: list[tuple[str, str]],
    signed_names: list[str],
    payload_hash: str,
    headers: dict[str, list[str]] | None = None,
) -> str:
    """The SigV4 canonical request of `req` (`headers`: `header_values(req.headers)`)."""
    received = header_values(req.headers) if headers is None else headers
    tail = _canonical_tail(req, query_pairs, signed_names, payload_hash, received)
    return f"{method.upper()}\n{tail}"


def _sign(canonical: str, amz_date: str, secret: str, region: str, service: str) -> str:
    """The hex signature of a canonical request: string to sign, then one HMAC."""
    date = amz_date[:8]
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    text = f"{ALGORITHM}\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{digest}"
    key = signing_key(secret, date, region, service)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


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
    headers: dict[str, list[str]] | None = None,
) -> str:
    """The hex SigV4 signature of `req` as a client with `secret` would have computed it."""
    canonical = canonical_request(
        req,
        method=method,
        query_pairs=query_pairs,
        signed_names=signed_names,
        payload_hash=payload_hash,
        headers=headers,
    )
    return _sign(canonical, amz_date, secret, region, service)


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
    """`YYYYMMDDTHHMMSSZ` (ASCII digits) read by hand: strptime costs 5 µs a call.

    The datetime constructor refuses what is not a date (month 13, Feb 30, second 60).
    """
    if (
        len(value) == 16
        and value[8] == "T"
        and value[15] == "Z"
        and value.isascii()
        and value[:8].isdigit()
        and value[9:15].isdigit()
    ):
        try:
            return datetime(
                int(value[:4]),
                int(value[4:6]),
                int(value[6:8]),
                int(value[9:11]),
                int(value[11:13]),
                int(value[13:15]),
                tzinfo=UTC,
            )
        except ValueError:
            pass
    raise incomplete(f"Invalid X-Amz-Date {value[:32]!r}: expected YYYYMMDDTHHMMSSZ.")


def _signed_names(value: str) -> list[str]:
    names = [name.strip() for name in value.lower().split(";")]
    if "host" not in names:
        raise incomplete("The host header must be signed (SignedHeaders lacks 'host').")
    return names


def payload_hash(req: IncomingRequest, headers: dict[str, list[str]] | None = None) -> str:
    """sha256 of the received body; a client-sent X-Amz-Content-Sha256 must agree with it."""
    actual = hashlib.sha256(req.body).hexdigest() if req.body else EMPTY_SHA256
    received = header_values(req.headers) if headers is None else headers
    for value in received.get("x-amz-content-sha256", ()):
        claimed = value.strip()
        if claimed == "UNSIGNED-PAYLOAD" or claimed.startswith("STREAMING-"):
            # A body the signature would not cover: a deliberate refusal, said plainly.
            raise incomplete(f"X-Amz-Content-Sha256 {claimed[:40]!r} is not accepted.")
        if claimed != actual:
            raise auth_failure("X-Amz-Content-Sha256 does not match the body")
    return actual


def _only(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    if not found:
        return None
    if len(found) > 1:
        raise incomplete(f"{name} must be given once.")
    return found[0].strip()


def _request_time(headers: dict[str, list[str]]) -> tuple[str, datetime]:
    """(timestamp as signed, datetime) from X-Amz-Date, or else from Date (RFC 1123)."""
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
    headers: dict[str, list[str]] | None = None,
) -> Caller:
    """Verify `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.

    `headers` is `header_values(req.headers)` when the caller has it already.
    """
    received = header_values(req.headers) if headers is None else headers
    fields = _authorization_fields(authorization)
    signed_names = _signed_names(fields["SignedHeaders"])
    amz_date, signed_at = _request_time(received)
    access_key, region, service = _parse_scope(fields["Credential"], amz_date)
    check_skew(signed_at, now, max_skew)
    body_hash = payload_hash(req, received)
    secret = await secret_for(lookup, access_key)
    canonical = canonical_request(
        req,
        method=req.method,
        query_pairs=query_pairs,
        signed_names=signed_names,
        payload_hash=body_hash,
        headers=received,
    )
    expected = _sign(canonical, amz_date, secret, region, service)
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        raise auth_failure("signature mismatch")
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
    headers: dict[str, list[str]] | None = None,
) -> Caller:
    """Verify a presigned URL (`X-Amz-Algorithm`, `X-Amz-Credential`, … in the query).

    `headers` is `header_values(req.headers)` when the caller has it already.
    """
    received = header_values(req.headers) if headers is None else headers
    query = _presign_params(query_pairs)
    amz_date = query["X-Amz-Date"]
    signed_at = _parse_amz_date(amz_date)
    access_key, region, service = _parse_scope(query["X-Amz-Credential"], amz_date)
    lifetime = query["X-Amz-Expires"]
    digits = len(lifetime) <= 7 and lifetime.isascii() and lifetime.isdigit()
    if not digits or not 1 <= int(lifetime) <= MAX_PRESIGN_SECONDS:
        raise incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_SECONDS} seconds.")
    if signed_at.timestamp() - now > max_skew or now > signed_at.timestamp() + int(lifetime):
        raise expired("presigned URL outside its X-Amz-Date + X-Amz-Expires")
    signed_names = _signed_names(query["X-Amz-SignedHeaders"])
    body_hash = payload_hash(req, received)
    secret = await secret_for(lookup, access_key)
    canonical_pairs = [(k, v) for k, v in query_pairs if k != "X-Amz-Signature"]
    given = query["X-Amz-Signature"].encode()
    tail = _canonical_tail(req, canonical_pairs, signed_names, body_hash, received)
    # botocore presigns EC2 (Query protocol) URLs with the operation's method, POST, though
    # they are usually fetched with GET (boto/boto3#756): a GET may also match as POST,
    # which is tried first, being the common case.
    method = req.method.upper()
    for tried in ("POST", method) if method == "GET" else (method,):
        expected = _sign(f"{tried}\n{tail}", amz_date, secret, region, service)
        if hmac.compare_digest(expected.encode(), given):
            return Caller(access_key, "v4-presigned", region, service)
    raise auth_failure("signature mismatch")
