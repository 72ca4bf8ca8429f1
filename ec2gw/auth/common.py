"""Types and error helpers shared by the SigV4 and SigV2 verifiers.

Error policy (one rule, so clients and operators can rely on it):

* no credentials at all                      -> MissingAuthenticationToken 403 (what EC2 answers)
* credentials present but malformed/missing  -> IncompleteSignature 400, with a message naming
  pieces (scope, SignedHeaders, date format,    the piece, since nothing secret is involved
  SigV2 method/version/timestamp, ...)
* outside the time window / presign expired  -> RequestExpired 400
* unknown key, wrong signature, body hash    -> AuthFailure 401, always the same message, so a
  mismatch                                      probe learns nothing about which part failed

Malformed includes UNSIGNED-PAYLOAD / STREAMING-* payload hashes, two auth mechanisms in one
request, a repeated SigV2 parameter, and X-Amz-Expires outside 1..604800.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from ec2gw.protocol.errors import EC2Error, auth_failure

SecretLookup = Callable[[str], Awaitable[str | None]]

# Longest access key id worth a lookup; anything longer cannot be one of ours.
MAX_ACCESS_KEY_LENGTH = 128

_UNRESERVED_ONLY = re.compile(r"[A-Za-z0-9_.~-]*")


@dataclass(frozen=True)
class IncomingRequest:
    method: str  # "GET" / "POST"
    host: str  # Host header exactly as received (with its port if sent)
    path: str  # raw request path, still percent-encoded
    query: str  # raw query string, without '?'
    headers: list[tuple[str, str]]  # as received, duplicates kept
    body: bytes  # raw body


@dataclass(frozen=True)
class Caller:
    access_key: str
    signature_version: str  # "v4", "v4-presigned", "v2"
    region: str | None  # SigV4 scope region, verbatim (None for v2)
    service: str | None  # SigV4 scope service, verbatim (None for v2)


def incomplete(detail: str) -> EC2Error:
    return EC2Error("IncompleteSignature", detail)


def expired(detail: str) -> EC2Error:
    return EC2Error("RequestExpired", "Request has expired.", detail=detail)


def missing_credentials() -> EC2Error:
    return EC2Error(
        "MissingAuthenticationToken",
        "The request must contain either a valid (registered) AWS access key ID or X.509 "
        "certificate.",
        403,
    )


def check_skew(signed_at: datetime, now: float, max_skew: int) -> None:
    """RequestExpired when the signing time is more than `max_skew` seconds off, either way."""
    if abs(signed_at.timestamp() - now) > max_skew:
        raise expired(f"signed {signed_at.timestamp() - now:+.0f} s from the gateway's clock")


def rfc3986(text: str) -> str:
    """`text` UTF-8 percent-encoded except RFC 3986 unreserved characters, as AWS signs it.

    Equal to `quote(text, safe="-_.~")`; most names and values need no escaping, and a
    match is a third of what a quote() call costs.
    """
    return text if _UNRESERVED_ONLY.fullmatch(text) else quote(text, safe="-_.~")


def query_pairs(query: str, errors: str = "replace") -> list[tuple[str, str]]:
    """The decoded pairs of a raw query string: `parse_qsl(query, keep_blank_values=True,
    errors=errors)`.

    The same rules ('&' only, empty fields skipped, '+' is a space, a missing '=' gives an
    empty value, invalid UTF-8 handled by `errors`), in half the time.
    """
    pairs: list[tuple[str, str]] = []
    for field in query.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append(
                (
                    unquote(name.replace("+", " "), errors=errors),
                    unquote(value.replace("+", " "), errors=errors),
                )
            )
    return pairs


def header_values(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Header values by lower-cased name, in order received, duplicates kept."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)
    return values


async def secret_for(lookup: SecretLookup, access_key: str) -> str:
    """The key's secret, or AuthFailure (same answer as a wrong signature: no key probing)."""
    if (
        not access_key
        or len(access_key) > MAX_ACCESS_KEY_LENGTH
        or not (access_key.isascii() and access_key.isprintable())
    ):
        raise auth_failure("malformed access key id")
    secret = await lookup(access_key)
    if not secret:
        raise auth_failure("unknown or inactive access key, or disabled user")
    return secret
