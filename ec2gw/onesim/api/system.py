"""`one.system.*` and `one.acl.*`."""

from __future__ import annotations

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


@rpc("one.acl.info")
def acl_info(cloud: Cloud, caller: Caller, method: str) -> str:
    visible = cloud.rules if caller.is_admin else []
    items = [
        "<ACL>"
        + documents.e("ID", r.id)
        + documents.e("USER", f"{r.user:X}")
        + documents.e("RESOURCE", f"{r.resource:X}")
        + documents.e("RIGHTS", f"{r.rights:X}")
        + documents.e("ZONE", f"{r.zone:X}")
        + documents.e("STRING", r.text())
        + "</ACL>"
        for r in visible
    ]
    return documents.pool("ACL_POOL", items)


@rpc("one.acl.addrule", "sss", 3)
def acl_addrule(cloud: Cloud, caller: Caller, method: str, user: str, res: str, rights: str) -> int:
    if not caller.is_admin:
        raise OneError(
            AUTHORIZATION, f"[{method}] User [{caller.uid}] : Not authorized to perform MANAGE ACL."
        )
    try:
        rule = acl.Rule(cloud.new_id("acl"), int(user, 16), int(res, 16), int(rights, 16))
    except ValueError:
        raise OneError(INTERNAL, f"[{method}] Error parsing rule") from None
    cloud.rules.append(rule)
    cloud.save_rules()
    return rule.id


@rpc("one.acl.delrule", "i")
def acl_delrule(cloud: Cloud, caller: Caller, method: str, rule_id: int) -> int:
    if not caller.is_admin:
        raise OneError(
            AUTHORIZATION, f"[{method}] User [{caller.uid}] : Not authorized to perform MANAGE ACL."
        )
    if not any(r.id == rule_id for r in cloud.rules):
        raise OneError(INTERNAL, f"[{method}] Rule {rule_id} does not exist", rule_id)
    cloud.rules = [r for r in cloud.rules if r.id != rule_id]
    cloud.save_rules()
    return rule_id
