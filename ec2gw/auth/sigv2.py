"""SigV2 verification (libcloud's default for the classic regions, boto-era tools).

The string to sign is botocore's `SigV2Auth.calc_signature` one (the tests cross-check it):

    METHOD \\n lower-cased Host header as received \\n raw path \\n
    params except Signature, sorted by name, key and value RFC 3986-encoded, joined by '&'

botocore only does HmacSHA256; HmacSHA1 uses the same string with another digest. SigV2
signs parameters, not headers, so it covers exactly the params the action will read: the
caller passes the merged query + form params, and a name given twice is refused, since the
signature could only cover one of the two values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from ec2gw.auth.common import (
    Caller,
    IncomingRequest,
    SecretLookup,
    check_skew,
    expired,
    incomplete,
    rfc3986,
    secret_for,
)
from ec2gw.protocol.errors import auth_failure

DIGESTS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}

# The params that make a request a SigV2 attempt (any one of them).
MARKERS = frozenset({"Signature", "SignatureVersion", "SignatureMethod", "AWSAccessKeyId"})


def string_to_sign(req: IncomingRequest, params: Mapping[str, str]) -> str:
    pairs = [
        f"{rfc3986(key)}={rfc3986(value)}"
        for key, value in sorted(params.items())
        if key != "Signature"
    ]
    return f"{req.method}\n{req.host.lower()}\n{req.path or '/'}\n" + "&".join(pairs)


def sigv2_signature(req: IncomingRequest, params: Mapping[str, str], secret: str) -> str:
    """Base64 SigV2 signature of `req`; `params["SignatureMethod"]` picks the digest."""
    digest = DIGESTS[params["SignatureMethod"]]
    text = string_to_sign(req, params).encode()
    return base64.b64encode(hmac.new(secret.encode(), text, digest).digest()).decode()


def _unique(params: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in params:
        if key in fields:
            raise incomplete(f"Parameter {key[:64]!r} is given more than once.")
        fields[key] = value
    return fields


def _parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed.timestamp()  # out-of-range offsets fail here, not later
    except (ValueError, OverflowError):
        raise incomplete(f"Invalid {name} {value[:32]!r}: expected YYYY-MM-DDTHH:MM:SSZ.") from None
    return parsed


def _check_time(fields: dict[str, str], now: float, max_skew: int) -> None:
    """`Timestamp` within the skew window, or `Expires` not yet passed (exactly one of them)."""
    timestamp, expires = fields.get("Timestamp"), fields.get("Expires")
    if (timestamp is None) == (expires is None):
        raise incomplete("A SigV2 request must carry exactly one of Timestamp and Expires.")
    if timestamp is not None:
        check_skew(_parse_time("Timestamp", timestamp), now, max_skew)
    elif _parse_time("Expires", expires or "").timestamp() < now:
        raise expired("SigV2 Expires has passed")


async def verify_sigv2(
    req: IncomingRequest,
    params: list[tuple[str, str]],
    lookup: SecretLookup,
    now: float,
    max_skew: int,
) -> Caller:
    """Verify `SignatureVersion=2` + `Signature` carried in the params."""
    fields = _unique(params)
    if fields.get("SignatureVersion") != "2":
        raise incomplete("Only SignatureVersion 2 and AWS4-HMAC-SHA256 are supported.")
    if fields.get("SignatureMethod") not in DIGESTS:
        raise incomplete("SignatureMethod must be HmacSHA256 or HmacSHA1.")
    for name in ("AWSAccessKeyId", "Signature"):
        if not fields.get(name):
            raise incomplete(f"A SigV2 request requires the '{name}' parameter.")
    _check_time(fields, now, max_skew)
    secret = await secret_for(lookup, fields["AWSAccessKeyId"])
    expected = sigv2_signature(req, fields, secret)
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        raise auth_failure("signature mismatch")
    return Caller(fields["AWSAccessKeyId"], "v2", None, None)
