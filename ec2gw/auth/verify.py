"""Who is calling: AWS signature verification (SigV4 header, SigV4 presigned, SigV2).

`verify()` picks the scheme from what the request carries, verifies it and returns the
`Caller`, or raises `EC2Error` (policy in `ec2gw.auth.common`):

* `Authorization: AWS4-HMAC-SHA256 …`        -> `sigv4.verify_header`
* `X-Amz-Algorithm` / `X-Amz-Signature` query -> `sigv4.verify_presigned`
* `Signature`, `SignatureVersion`, … params   -> `sigv2.verify_sigv2`
* nothing                                     -> MissingAuthenticationToken (403)

Two mechanisms at once are refused rather than one of them silently preferred. A session
token (`X-Amz-Security-Token`, SigV2 `SecurityToken`) is covered by the signature like any
signed header or parameter and otherwise ignored: ec2gw issues no temporary credentials and
the access key's secret alone proves who signed, so every real client request verifies,
boto3 with session credentials included.
"""

from __future__ import annotations

import time

from ec2gw.auth import sigv2, sigv4
from ec2gw.auth.common import (
    Caller,
    IncomingRequest,
    SecretLookup,
    header_values,
    incomplete,
    missing_credentials,
    query_pairs,
)

__all__ = ["Caller", "IncomingRequest", "SecretLookup", "verify"]

_PRESIGN_MARKERS = frozenset({"X-Amz-Algorithm", "X-Amz-Signature", "X-Amz-Credential"})


async def verify(
    req: IncomingRequest,
    params: list[tuple[str, str]],
    lookup: SecretLookup,
    *,
    now: float | None = None,
    max_skew: int = 900,
) -> Caller:
    """Check the request's signature; return the caller or raise the EC2 error.

    `params` are the decoded query + form params (what the action will read); SigV2 signs
    those, SigV4 signs the raw query and the body, which this function reads from `req`.
    """
    now = time.time() if now is None else now
    headers = header_values(req.headers)
    authorization = headers.get("authorization")
    pairs = query_pairs(req.query) if req.query else []
    presigned = any(key in _PRESIGN_MARKERS for key, _ in pairs)
    if authorization:
        if len(authorization) > 1 or presigned:
            raise incomplete("Only one authentication mechanism may be used per request.")
        value = authorization[0].strip()
        if not value.startswith(sigv4.ALGORITHM + " "):
            raise incomplete(f"Unsupported Authorization header: only {sigv4.ALGORITHM}.")
        return await sigv4.verify_header(req, value, pairs, lookup, now, max_skew, headers=headers)
    if presigned:
        return await sigv4.verify_presigned(req, pairs, lookup, now, max_skew, headers=headers)
    if any(key in sigv2.MARKERS for key, _ in params):
        return await sigv2.verify_sigv2(req, params, lookup, now, max_skew)
    raise missing_credentials()
