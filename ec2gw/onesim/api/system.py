"""`one.system.*` and `one.acl.*`."""

from __future__ import annotations

import re

from ec2gw.onesim import acl, documents, dummy
from ec2gw.onesim.acl import Caller
from ec2gw.onesim.api.base import (
    VERSION,
    rpc,
)
from ec2gw.onesim.cloud import Cloud
from ec2gw.onesim.rpc import (
    AUTHORIZATION,
    INTERNAL,
    OneError,
)


@rpc("one.system.version")
def system_version(cloud: Cloud, caller: Caller, method: str) -> str:
    return VERSION


@rpc("one.system.config")
def system_config(cloud: Cloud, caller: Caller, method: str) -> str:
    if not caller.is_admin:
        return (
            "<OPENNEBULA_CONFIGURATION>"
            + "".join(
                f"<{k}><![CDATA[{v}]]></{k}>"
                for k, v in (("API_LIST_ORDER", "DESC"), ("DEFAULT_UMASK", "177"))
            )
            + "</OPENNEBULA_CONFIGURATION>"
        )
    return dummy.SYSTEM_CONFIG


def _acl_admin(cloud: Cloud, caller: Caller, method: str) -> None:
    """Every `one.acl.*` call needs MANAGE ACL, which only the oneadmin group has."""
    if not caller.is_admin:
        raise OneError(
            AUTHORIZATION, f"[{method}] User [{caller.uid}] : Not authorized to perform MANAGE ACL."
        )


@rpc("one.acl.info")
def acl_info(cloud: Cloud, caller: Caller, method: str) -> str:
    _acl_admin(cloud, caller, method)
    items = [
        "<ACL>"
        + documents.e("ID", r.id)
        + documents.e("USER", f"{r.user:x}")
        + documents.e("RESOURCE", f"{r.resource:x}")
        + documents.e("RIGHTS", f"{r.rights:x}")
        + documents.e("ZONE", f"{r.zone:x}")
        + documents.e("STRING", r.text())
        + "</ACL>"
        for r in cloud.rules
    ]
    return documents.pool("ACL_POOL", items)


_HEX = re.compile(r"\s*([+-]?(?:0[xX])?[0-9a-fA-F]+)")


def _hex(text: str) -> int:
    """What `istringstream >> hex` reads: the leading hex digits, 0 when there are none."""
    m = _HEX.match(text)
    if not m:
        return 0
    digits = m.group(1)
    try:
        return int(digits, 16) & 0xFFFFFFFFFFFFFFFF
    except ValueError:  # a bare "0x" prefix
        return 0


@rpc("one.acl.addrule", "ssss", 3)
def acl_addrule(
    cloud: Cloud, caller: Caller, method: str, user: str, res: str, rights: str, zone: str = ""
) -> int:
    """Hex strings; without a zone the rule applies to this zone (`#0`), not to all."""
    zone_bits = _hex(zone) if zone else acl.ZONE_0
    _acl_admin(cloud, caller, method)
    next_id = cloud.next_ids.get("acl", 0)
    rule = acl.Rule(next_id, _hex(user), _hex(res), _hex(rights), zone_bits)
    same = (rule.user, rule.resource, rule.rights, rule.zone)
    if any((r.user, r.resource, r.rights, r.zone) == same for r in cloud.rules):
        raise OneError(INTERNAL, f"[{method}] Rule {rule.text()} already exists")
    problem = rule.malformed()
    if problem:
        raise OneError(INTERNAL, f"[{method}] Rule {rule.text()} is malformed: {problem}")
    cloud.new_id("acl")
    cloud.rules.append(rule)
    cloud.save_rules()
    return rule.id


@rpc("one.acl.delrule", "i")
def acl_delrule(cloud: Cloud, caller: Caller, method: str, rule_id: int) -> int:
    _acl_admin(cloud, caller, method)
    if not any(r.id == rule_id for r in cloud.rules):
        raise OneError(INTERNAL, f"[{method}] Rule {rule_id} does not exist", rule_id)
    cloud.rules = [r for r in cloud.rules if r.id != rule_id]
    cloud.save_rules()
    return rule_id
