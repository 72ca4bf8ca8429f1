"""`one.secgroup.*` and `one.secgrouppool.info`."""

from __future__ import annotations

from ec2gw.onesim import documents
from ec2gw.onesim.acl import CREATE, MANAGE, USE, Caller
from ec2gw.onesim.api.base import (
    allocate_error,
    list_pool,
    new_owned,
    parse,
    rpc,
    update_template,
)
from ec2gw.onesim.cloud import Cloud
from ec2gw.onesim.rpc import (
    ACTION,
    INTERNAL,
    OneError,
)
from ec2gw.onesim.template import Template

_PROTOCOLS = {"TCP", "UDP", "ICMP", "ICMPV6", "IPSEC", "ALL"}


def check_rules(tmpl: Template, method: str, kind_error) -> None:
    for rule in tmpl.vectors("RULE"):
        protocol = rule.get("PROTOCOL", "").upper()
        if protocol not in _PROTOCOLS:
            raise kind_error(
                "Wrong PROTOCOL in rule. Valid options: TCP, UDP, ICMP, ICMPV6, IPSEC, ALL."
            )
        if rule.get("RULE_TYPE", "").upper() not in ("INBOUND", "OUTBOUND"):
            raise kind_error("Wrong RULE_TYPE in rule. Valid options: INBOUND, OUTBOUND.")
        rule["PROTOCOL"], rule["RULE_TYPE"] = protocol, rule["RULE_TYPE"].upper()
        if "RANGE" in rule and protocol not in ("TCP", "UDP"):
            raise kind_error("RANGE is supported only for TCP and UDP protocols.")


@rpc("one.secgroup.allocate", "s")
def secgroup_allocate(cloud: Cloud, caller: Caller, method: str, text: str) -> int:
    tmpl = parse(text, method)
    cloud.authorize(caller, "secgroup", None, CREATE, method)
    name = tmpl.get("NAME") or ""
    if not name:
        raise OneError(INTERNAL, f"[{method}] Invalid NAME, it cannot be empty")
    check_rules(tmpl, method, lambda text: allocate_error("secgroup", method, text))
    cloud.check_name("secgroup", name, caller.uid, method)
    tmpl.erase("NAME")
    obj = new_owned(cloud, caller, "secgroup", name)
    obj.update(template=tmpl.to_json(), updated_vms=[])
    return cloud.add("secgroup", obj)["id"]


@rpc("one.secgroup.info", "ib", 1)
def secgroup_info(cloud: Cloud, caller: Caller, method: str, sid: int, dec: bool = False) -> str:
    return documents.secgroup(cloud.fetch(caller, "secgroup", sid, USE, method))


@rpc("one.secgrouppool.info", "iii")
def secgrouppool_info(
    cloud: Cloud, caller: Caller, method: str, flag: int, start: int, end: int
) -> str:
    objs = list_pool(cloud, caller, "secgroup", flag, start, end, method)
    return documents.pool("SECURITY_GROUP_POOL", [documents.secgroup(s) for s in objs])


@rpc("one.secgroup.update", "isi", 2)
def secgroup_update(
    cloud: Cloud, caller: Caller, method: str, sid: int, text: str, append: int = 0
) -> int:
    obj = cloud.fetch(caller, "secgroup", sid, MANAGE, method)
    new = parse(text, method)
    check_rules(
        new, method, lambda text: OneError(INTERNAL, f"[{method}] Cannot update template. {text}")
    )
    update_template(obj, new.to_text(), append, method)
    cloud.touch("secgroup", obj)
    return sid


@rpc("one.secgroup.delete", "i")
def secgroup_delete(cloud: Cloud, caller: Caller, method: str, sid: int) -> int:
    obj = cloud.fetch(caller, "secgroup", sid, MANAGE, method)
    if sid == 0:
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete security group. The default security group (ID 0) "
            "cannot be deleted.",
            sid,
        )
    if obj.get("updated_vms"):
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete security group. The security group has VMs using it",
            sid,
        )
    cloud.remove("secgroup", sid)
    return sid


@rpc("one.secgroup.clone", "is")
def secgroup_clone(cloud: Cloud, caller: Caller, method: str, sid: int, name: str) -> int:
    src = cloud.fetch(caller, "secgroup", sid, USE, method)
    cloud.authorize(caller, "secgroup", None, CREATE, method)
    cloud.check_name("secgroup", name, caller.uid, method)
    obj = new_owned(cloud, caller, "secgroup", name)
    obj.update(template=list(src["template"]), updated_vms=[])
    return cloud.add("secgroup", obj)["id"]
