"""ClientToken idempotency and per-key serialisation, shared by the actions that need them.

EC2 makes a retried create with the same ClientToken return the first result, and a reuse
with other parameters `IdempotentParameterMismatch`: the digest of the request's other
parameters is stored with the created object and compared on a retry. Within one gateway
process, requests for the same key (a user's token, a security group being edited) run one
at a time, so a retry racing its own first attempt finds what the first one made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import Hashable, Mapping
from typing import Any

from ec2gw.protocol.errors import EC2Error, invalid_value

MAX_TOKEN = 64

# Weak values: a lock lives exactly as long as some request holds or awaits it.
_locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()


def lock_for(key: Hashable) -> asyncio.Lock:
    """The lock of `key` in this process; hold the returned object while using it."""
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


def check_token(token: str) -> str:
    if len(token) > MAX_TOKEN:
        raise invalid_value(
            "ClientToken", token[:MAX_TOKEN] + "...", f"At most {MAX_TOKEN} characters."
        )
    return token


def request_digest(params: Mapping[str, Any]) -> str:
    """What a request asks for, without its ClientToken and DryRun."""
    relevant = {k: v for k, v in params.items() if k not in ("ClientToken", "DryRun")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def mismatch() -> EC2Error:
    return EC2Error(
        "IdempotentParameterMismatch",
        "The client token you have provided is associated with a resource that is already "
        "deleted or has different parameters.",
    )
