"""Which SigV4 scope regions a gateway accepts (issue 18 item 7).

The signature itself holds whatever region the client signed for (`sigv4` verifies it
with the client's own scope): boto 2 signs `0` for an IP-address endpoint, libcloud one of
its AWS region names. What this module decides is whether a verified request signed for
*another* region is answered, and it refuses only a scope that names a real region that
is not this gateway's, since the client then believes it talks to that region and would
otherwise get this one's instances silently:

* one of botocore's AWS region names (`us-east-1` out of habit), or anything shaped like
  one (`us-est-1`);
* the region of another zone of this OpenNebula (the message names that zone's gateway
  when its zone template has `EC2_ENDPOINT`);
* a near miss of this gateway's region (`OpenNebula`, `opennebla`): a typo.

Anything else (`0`, a host name's label) names no region and is accepted, as before.
`[gateway] accept_any_signing_region = true` accepts every scope, for clients stuck on a
fixed region. The answer is EC2's for a signature failure, `AuthFailure` (401), with
AWS's SigV4 wording for a wrong scope region ("Credential should be scoped to a valid
region, not '…'") followed by the region this endpoint serves: only a caller whose
signature verified gets it, so nothing leaks to a probe.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ec2gw.protocol.errors import EC2Error

# us-east-1, us-gov-west-1, ap-southeast-2, cn-north-1, eu-isoe-west-1, eusc-de-east-1
_AWS_SHAPE = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}")
_SHOWN = 64  # characters of a client-given region quoted back


@lru_cache(maxsize=1)
def aws_region_names() -> frozenset[str]:
    """Every region of every AWS partition in botocore's endpoints data, and every name EC2
    has an endpoint for there (`us-east-1`, `cn-north-1`, `fips-us-east-1`...): what
    `get_available_regions("ec2")` lists per partition, read in 20 ms instead of 500."""
    from botocore.loaders import Loader

    names: set[str] = set()
    for partition in Loader().load_data("endpoints").get("partitions", []):
        names.update(partition.get("regions", {}))
        names.update(partition.get("services", {}).get("ec2", {}).get("endpoints", {}))
    return frozenset(names)


def _distance(a: str, b: str, bound: int) -> int:
    """Levenshtein distance of `a` and `b`, or `bound + 1` once it exceeds `bound`."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        if min(current) > bound:
            return bound + 1
        previous = current
    return previous[-1]


def near_miss(scope: str, local: str) -> bool:
    """`scope` is `local` but for case or a typo: 1 edit for a region of 4-7 characters,
    2 from 8 on; a shorter region only case-insensitively (`0` is no typo of `eu`)."""
    a, b = scope.lower(), local.lower()
    if a == b:
        return True
    if len(b) < 4 or len(a) > 2 * len(b):
        return False
    bound = 1 if len(b) < 8 else 2
    return _distance(a, b, bound) <= bound


def refusal(scope: str, local: str, zones: dict[str, tuple[int, str]]) -> EC2Error | None:
    """The error for a request signed for region `scope` at a gateway serving `local`, or
    None if it is to be answered. `zones`: region name -> (zone id, EC2_ENDPOINT or "") of
    every zone of this OpenNebula (`regions.federation_regions`)."""
    if scope == local:
        return None
    shown = scope[:_SHOWN]
    hint = ""
    other = zones.get(scope)
    if other is not None:
        zone_id, endpoint = other
        reason = f"the region of OpenNebula zone {zone_id}"
        if endpoint:
            hint = f" Region '{shown}' is served at {endpoint}."
        else:
            hint = f" Region '{shown}' is OpenNebula zone {zone_id}, served by its own gateway."
    elif scope in aws_region_names():
        reason = "an AWS region"
    elif _AWS_SHAPE.fullmatch(scope):
        reason = "shaped like an AWS region name"
    elif near_miss(scope, local):
        reason = "a near miss of this endpoint's region"
    else:
        return None
    return EC2Error(
        "AuthFailure",
        f"Credential should be scoped to a valid region, not '{shown}'. "
        f"This endpoint serves region '{local}': sign for it.{hint}",
        detail=f"signing region {shown!r} refused ({reason}); this endpoint serves "
        f"{local!r}; [gateway] accept_any_signing_region = true would accept it",
    )
