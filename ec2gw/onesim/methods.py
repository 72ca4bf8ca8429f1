"""The XML-RPC methods: oned's argument lists, checks, messages and effects.

Each method is registered with its parameter types after the session (`i` int, `s` string,
`b` boolean, `A` array) and how many are required; `dispatch` authenticates first, then
checks the parameters (a wrong type or a missing one is an XML-RPC fault −501, as
xmlrpc-c's `paramList::getInt` etc. raise), then runs the method under the cloud lock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ec2gw.onesim import acl, documents, dummy
from ec2gw.onesim import states as st
from ec2gw.onesim.acl import ADMIN, CREATE, MANAGE, USE, Caller
from ec2gw.onesim.cloud import OBJECT_NAMES, Cloud, new_uuid, now, sha256
from ec2gw.onesim.rpc import (
    ACTION,
    ALLOCATE,
    AUTHORIZATION,
    FAULT_NO_SUCH_METHOD,
    FAULT_TYPE,
    INTERNAL,
    NO_EXISTS,
    XML_RPC_API,
    OneError,
    RpcFault,
)
from ec2gw.onesim.template import Template, TemplateError

Obj = dict[str, Any]
VERSION = "6.10.5"


@dataclass
class Method:
    fn: Callable[..., Any]
    types: str
    required: int


METHODS: dict[str, Method] = {}


def rpc(name: str, types: str = "", required: int | None = None):
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        METHODS[name] = Method(fn, types, len(types) if required is None else required)
        return fn

    return register


_TYPE_TEXT = {
    "i": "integer",
    "s": "a string",
    "b": "boolean",
    "A": "an array",
}


def _check(value: object, kind: str) -> bool:
    if kind == "i":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "b":
        return isinstance(value, bool)
    if kind == "s":
        return isinstance(value, str)
    return isinstance(value, (list, tuple))


def dispatch(cloud: Cloud, method: str, params: tuple) -> Any:
    """Run one call; raises OneError (failure array) or RpcFault (XML-RPC fault)."""
    spec = METHODS.get(method)
    if spec is None:
        raise RpcFault(FAULT_NO_SUCH_METHOD, f"Method '{method}' not defined")
    if not params:
        raise RpcFault(FAULT_TYPE, "Not enough parameters")
    if not isinstance(params[0], str):
        raise RpcFault(FAULT_TYPE, "Parameter that is supposed to be a string is not")
    with cloud.lock:
        try:
            cloud.advance()
            caller = cloud.authenticate(params[0], method)
            args = params[1 : 1 + len(spec.types)]
            for i, kind in enumerate(spec.types):
                if i >= len(args):
                    if i < spec.required:
                        raise RpcFault(FAULT_TYPE, "Not enough parameters")
                    break
                if not _check(args[i], kind):
                    raise RpcFault(
                        FAULT_TYPE, f"Parameter that is supposed to be {_TYPE_TEXT[kind]} is not"
                    )
            result = spec.fn(cloud, caller, method, *args)
            cloud.advance()
            return result
        finally:
            cloud.flush()


# --- shared helpers -----------------------------------------------------------------------


def parse(text: str, method: str) -> Template:
    try:
        return Template.parse(text)
    except TemplateError as err:
        raise OneError(INTERNAL, f"[{method}] {err}") from None


def allocate_error(kind: str, method: str, text: str) -> OneError:
    return OneError(ALLOCATE, f"[{method}] Error allocating a new {OBJECT_NAMES[kind]}. {text}")


def api_error(method: str, text: str) -> OneError:
    return OneError(XML_RPC_API, f"[{method}] {text}")


def update_template(obj: Obj, text: str, append: int, method: str, key: str = "template") -> None:
    new = parse(text, method)
    if append == 1:
        merged = Template.from_json(obj.get(key, []))
        merged.merge(new)
        new = merged
    obj[key] = new.to_json()


def list_pool(
    cloud: Cloud, caller: Caller, kind: str, flag: int, start: int, end: int, method: str
) -> list[Obj]:
    """Filter flag, id range and pagination (`o,-n`), newest first (API_LIST_ORDER DESC)."""
    if flag < -4:
        raise api_error(method, "Incorrect filter_flag")
    objs = [o for o in cloud.pools[kind].values() if cloud.visible(caller, kind, o, flag)]
    if end >= -1 and start != -1:
        objs = [o for o in objs if o["id"] >= start and (end == -1 or o["id"] <= end)]
    objs.sort(key=lambda o: o["id"], reverse=True)
    if end < -1:
        offset = max(start, 0)
        objs = objs[offset : offset - end]
    return objs


def chmod(cloud: Cloud, caller: Caller, kind: str, oid: int, bits: tuple, method: str) -> int:
    obj = cloud.get(kind, oid, method)
    needs_admin = any(b == 1 for b in (bits[2], bits[5], bits[8]))
    cloud.authorize(caller, kind, obj, ADMIN if needs_admin else MANAGE, method)
    pairs = zip(obj["perms"], bits, strict=True)
    obj["perms"] = [old if new == -1 else int(bool(new)) for old, new in pairs]
    cloud.touch(kind, obj)
    return oid


def chown(
    cloud: Cloud, caller: Caller, kind: str, oid: int, uid: int, gid: int, method: str
) -> int:
    obj = cloud.get(kind, oid, method)
    cloud.authorize(caller, kind, obj, ADMIN if uid != -1 else MANAGE, method)
    if uid != -1:
        user = cloud.get("user", uid, method)
        obj["uid"], obj["uname"] = uid, user["name"]
    if gid != -1:
        group = cloud.get("group", gid, method)
        if not caller.is_admin and gid not in caller.groups:
            cloud.authorize(caller, "group", {"id": gid, "uid": -1, "gid": gid}, USE, method)
        obj["gid"], obj["gname"] = gid, group["name"]
    cloud.touch(kind, obj)
    return oid


def rename(cloud: Cloud, caller: Caller, kind: str, oid: int, name: str, method: str) -> int:
    obj = cloud.fetch(caller, kind, oid, MANAGE, method)
    if not name:
        raise OneError(ACTION, f"[{method}] New name cannot be empty", oid)
    for other in cloud.pools[kind].values():
        if (
            kind != "vm"
            and other is not obj
            and other["name"] == name
            and (other.get("uid") == obj.get("uid"))
        ):
            raise OneError(
                ACTION,
                f"[{method}] Object [{other['id']}] with the same name already exists",
                oid,
            )
    obj["name"] = name
    cloud.touch(kind, obj)
    return oid


def new_owned(cloud: Cloud, caller: Caller, kind: str, name: str, group_u: int = 0) -> Obj:
    return cloud.owned(cloud.new_id(kind), name, caller, group_u)


# --- system -------------------------------------------------------------------------------


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


# --- users and groups ---------------------------------------------------------------------


def user_auth_view(user: Obj) -> Obj:
    """A user as an owned object: it owns itself (`User` has uid = its own id)."""
    return {"id": user["id"], "uid": user["id"], "gid": user["gid"]}


def fetch_user(cloud: Cloud, caller: Caller, uid: int, op: int, method: str) -> Obj:
    user = cloud.get("user", uid, method)
    cloud.authorize(caller, "user", user_auth_view(user), op, method)
    return user


_BAD_NAME = set(" :\t\n\v\f\r")


@rpc("one.user.allocate", "sssA", 3)
def user_allocate(
    cloud: Cloud,
    caller: Caller,
    method: str,
    name: str,
    password: str,
    driver: str,
    groups: list | None = None,
) -> int:
    groups = [int(g) for g in (groups or [])]
    if not groups:
        groups = [1] if caller.is_admin else [caller.gid]
    for gid in groups:
        cloud.get("group", gid, method)
    cloud.authorize(caller, "user", None, CREATE, method)
    driver = driver or "core"
    if not name or any(c in _BAD_NAME for c in name):
        raise allocate_error("user", method, "Invalid NAME, it cannot contain spaces or ':'.")
    if driver == "core" and (not password or any(c.isspace() for c in password)):
        raise allocate_error(
            "user", method, "Invalid password, it must be non-empty without spaces."
        )
    cloud.check_name("user", name, None, method)
    stored = sha256(password) if driver == "core" else password
    user = cloud.add_user(cloud.new_id("user"), name, stored, driver, groups)
    user["gname"] = cloud.pools["group"][groups[0]]["name"]
    return user["id"]


@rpc("one.user.info", "ib", 1)
def user_info(cloud: Cloud, caller: Caller, method: str, uid: int, decrypt: bool = False) -> str:
    if uid == -1:  # only `info` reads -1 as "the caller" (RequestManagerInfo)
        uid = caller.uid
    return documents.user(cloud, fetch_user(cloud, caller, uid, USE, method))


@rpc("one.userpool.info")
def userpool_info(cloud: Cloud, caller: Caller, method: str) -> str:
    users = [u for u in cloud.pools["user"].values() if cloud.visible(caller, "user", u, -2)]
    users.sort(key=lambda u: u["id"], reverse=True)
    return documents.user_pool(cloud, users)


@rpc("one.user.update", "isi", 2)
def user_update(
    cloud: Cloud, caller: Caller, method: str, uid: int, text: str, append: int = 0
) -> int:
    user = fetch_user(cloud, caller, uid, MANAGE, method)
    update_template(user, text, append, method)
    cloud.touch("user", user)
    return user["id"]


@rpc("one.user.passwd", "is")
def user_passwd(cloud: Cloud, caller: Caller, method: str, uid: int, password: str) -> int:
    user = fetch_user(cloud, caller, uid, MANAGE, method)
    if user["driver"].startswith("server"):
        raise OneError(
            ACTION, f"[{method}] Password for driver '{user['driver']}' cannot be changed.", uid
        )
    if not password or any(c.isspace() for c in password):
        raise OneError(
            ACTION, f"[{method}] Invalid password, it must be non-empty without spaces.", uid
        )
    user["password"] = sha256(password) if user["driver"] == "core" else password
    user["tokens"] = []
    cloud.touch("user", user)
    return uid


@rpc("one.user.login", "ssii", 3)
def user_login(
    cloud: Cloud, caller: Caller, method: str, name: str, token: str, valid: int, egid: int = -1
) -> str:
    user = cloud.user_by_name(name)
    if user is None:
        raise OneError(NO_EXISTS, f"[{method}] Error getting user [-1].", -1)
    cloud.authorize(caller, "user", user_auth_view(user), MANAGE, method)
    tokens = [t for t in user["tokens"] if t["expires"] == -1 or t["expires"] > time.time()]
    if valid == 0:
        user["tokens"] = [t for t in tokens if token and t["token"] != token]
        cloud.touch("user", user)
        return token
    if egid != -1 and egid not in user["groups"]:
        raise api_error(method, "EGID is not in user group list")
    if egid == -1 and set(user["groups"]) != caller.groups and caller.uid != user["id"]:
        raise api_error(method, "Cannot create a full token with a specific group token")
    if len(tokens) >= 10:
        raise api_error(method, "Max number of tokens limit reached.")
    token = token or hashlib.sha256(str(secrets.randbits(64)).encode()).hexdigest()
    expires = -1 if valid < 0 else int(time.time()) + valid
    tokens.append({"token": token, "expires": expires, "egid": egid})
    user["tokens"] = tokens
    cloud.touch("user", user)
    return token


@rpc("one.user.enable", "ib")
def user_enable(cloud: Cloud, caller: Caller, method: str, uid: int, enable: bool) -> int:
    user = fetch_user(cloud, caller, uid, MANAGE, method)
    user["enabled"] = enable
    cloud.touch("user", user)
    return uid


@rpc("one.user.delete", "i")
def user_delete(cloud: Cloud, caller: Caller, method: str, uid: int) -> int:
    user = fetch_user(cloud, caller, uid, ADMIN, method)
    if uid == 0:
        raise OneError(ACTION, f"[{method}] Cannot delete user. oneadmin cannot be deleted.", uid)
    cloud.remove("user", user["id"])
    return uid


@rpc("one.user.chgrp", "ii")
def user_chgrp(cloud: Cloud, caller: Caller, method: str, uid: int, gid: int) -> int:
    user = fetch_user(cloud, caller, uid, MANAGE, method)
    group = cloud.get("group", gid, method)
    if not caller.is_admin:
        cloud.authorize(caller, "group", {"id": gid, "uid": -1, "gid": gid}, MANAGE, method)
    groups = set(user["groups"]) - {user["gid"]} | {gid}
    user.update(gid=gid, gname=group["name"], groups=sorted(groups))
    cloud.touch("user", user)
    return uid


@rpc("one.user.addgroup", "ii")
def user_addgroup(cloud: Cloud, caller: Caller, method: str, uid: int, gid: int) -> int:
    user = fetch_user(cloud, caller, uid, MANAGE, method)
    cloud.get("group", gid, method)
    user["groups"] = sorted(set(user["groups"]) | {gid})
    cloud.touch("user", user)
    return uid


@rpc("one.user.delgroup", "ii")
def user_delgroup(cloud: Cloud, caller: Caller, method: str, uid: int, gid: int) -> int:
    user = fetch_user(cloud, caller, uid, MANAGE, method)
    if gid == user["gid"]:
        raise OneError(ACTION, f"[{method}] Cannot remove user from its primary group.", uid)
    user["groups"] = sorted(set(user["groups"]) - {gid})
    cloud.touch("user", user)
    return uid


@rpc("one.user.chauth", "iss", 2)
def user_chauth(
    cloud: Cloud, caller: Caller, method: str, uid: int, driver: str, password: str = ""
) -> int:
    user = fetch_user(cloud, caller, uid, ADMIN, method)
    user["driver"] = driver or "core"
    if password:
        user["password"] = sha256(password) if user["driver"] == "core" else password
    cloud.touch("user", user)
    return uid


@rpc("one.user.quota", "is")
def user_quota(cloud: Cloud, caller: Caller, method: str, uid: int, text: str) -> int:
    user = fetch_user(cloud, caller, uid, ADMIN, method)
    if uid == 0:
        raise OneError(ACTION, f"[{method}] Cannot set quotas for oneadmin user", uid)
    tmpl = parse(text, method)
    quota = user.setdefault("quota", {})
    for limits in tmpl.vectors("VM"):
        vm_quota = quota.setdefault("VM", {})
        for key, value in limits.items():
            try:
                float(value)
            except ValueError:
                raise OneError(ACTION, f"[{method}] Invalid {key} quota value", uid) from None
            vm_quota[key] = value
    cloud.touch("user", user)
    return uid


@rpc("one.group.allocate", "s")
def group_allocate(cloud: Cloud, caller: Caller, method: str, name: str) -> int:
    cloud.authorize(caller, "group", None, CREATE, method)
    if not name or any(c in _BAD_NAME for c in name):
        raise allocate_error("group", method, "Invalid NAME.")
    cloud.check_name("group", name, None, method)
    gid = cloud.new_id("group")
    cloud.add("group", {"id": gid, "name": name, "template": [], "admins": []})
    # New groups join the default VDC, which gives them its cluster resources.
    rules = acl.vdc_rules(gid, cloud.next_ids.get("acl", len(cloud.rules)))
    cloud.next_ids["acl"] = rules[-1].id + 1
    cloud.rules.extend(rules)
    cloud.save_rules()
    return gid


def group_members(cloud: Cloud, gid: int) -> list[int]:
    return sorted(u["id"] for u in cloud.pools["user"].values() if gid in u["groups"])


@rpc("one.group.info", "ib", 1)
def group_info(cloud: Cloud, caller: Caller, method: str, gid: int, decrypt: bool = False) -> str:
    if gid == -1:
        gid = caller.gid
    group = cloud.get("group", gid, method)
    if not caller.is_admin and gid not in caller.groups:
        cloud.authorize(caller, "group", {"id": gid, "uid": -1, "gid": gid}, USE, method)
    return documents.group(group, group_members(cloud, gid))


@rpc("one.group.delete", "i")
def group_delete(cloud: Cloud, caller: Caller, method: str, gid: int) -> int:
    cloud.get("group", gid, method)
    cloud.authorize(caller, "group", {"id": gid, "uid": -1, "gid": gid}, ADMIN, method)
    if gid < 100 or group_members(cloud, gid):
        raise OneError(ACTION, f"[{method}] Cannot delete group. Group has users.", gid)
    cloud.remove("group", gid)
    cloud.rules = [r for r in cloud.rules if r.user != (acl.GROUP | gid)]
    cloud.save_rules()
    return gid


@rpc("one.grouppool.info")
def grouppool_info(cloud: Cloud, caller: Caller, method: str) -> str:
    groups = [g for g in cloud.pools["group"].values() if cloud.visible(caller, "group", g, -2)]
    groups.sort(key=lambda g: g["id"], reverse=True)
    return documents.group_pool([(g, group_members(cloud, g["id"])) for g in groups])


# --- infrastructure: hosts, clusters, datastores, zones ----------------------------------


def infra(obj: Obj) -> Obj:
    """Hosts, clusters and zones have no owner: uid/gid -1, owner-only permissions."""
    return {"id": obj["id"], "uid": -1, "gid": -1, "cluster_id": obj.get("cluster_id")}


def fetch_infra(cloud: Cloud, caller: Caller, kind: str, oid: int, op: int, method: str) -> Obj:
    obj = cloud.get(kind, oid, method)
    cloud.authorize(caller, kind, infra(obj), op, method)
    return obj


def cluster_of(cloud: Cloud, cid: int, method: str) -> Obj:
    return cloud.get("cluster", 0 if cid == -1 else cid, method)


@rpc("one.host.allocate", "sssi")
def host_allocate(
    cloud: Cloud, caller: Caller, method: str, name: str, im: str, vmm: str, cid: int
) -> int:
    cloud.authorize(caller, "host", None, CREATE, method)
    cluster = cluster_of(cloud, cid, method)
    if not name:
        raise allocate_error("host", method, "Invalid NAME.")
    cloud.check_name("host", name, None, method)
    hid = cloud.new_id("host")
    cloud.add(
        "host",
        {
            "id": hid,
            "name": name,
            "state": 2,
            "prev_state": 0,
            "im_mad": im,
            "vm_mad": vmm,
            "cluster_id": cluster["id"],
            "max_cpu": dummy.TOTAL_CPU,
            "max_mem": dummy.TOTAL_MEM,
            "last_mon_time": now(),
            "template": [list(a) for a in dummy.host_template(name, im, vmm)],
        },
    )
    cluster["hosts"].append(hid)
    cloud.touch("cluster", cluster)
    cloud.wake_scheduler()
    return hid


def host_doc(cloud: Cloud, host: Obj, monitoring: bool = True) -> str:
    cluster = cloud.pools["cluster"].get(host["cluster_id"], {"name": ""})
    usage = cloud.host_usage(host["id"])
    return documents.host(host, cluster["name"], usage, now(), monitoring)


@rpc("one.host.info", "ib", 1)
def host_info(cloud: Cloud, caller: Caller, method: str, hid: int, decrypt: bool = False) -> str:
    return host_doc(cloud, fetch_infra(cloud, caller, "host", hid, USE, method))


@rpc("one.hostpool.info")
def hostpool_info(cloud: Cloud, caller: Caller, method: str) -> str:
    hosts = [h for h in cloud.pools["host"].values() if cloud.visible(caller, "host", infra(h), -2)]
    hosts.sort(key=lambda h: h["id"], reverse=True)
    return documents.pool("HOST_POOL", [host_doc(cloud, h, monitoring=False) for h in hosts])


@rpc("one.host.status", "ii")
def host_status(cloud: Cloud, caller: Caller, method: str, hid: int, status: int) -> int:
    host = fetch_infra(cloud, caller, "host", hid, ADMIN, method)
    states = {0: 2, 1: 4, 2: 8}
    if status not in states:
        raise api_error(method, "Wrong status code")
    host["prev_state"], host["state"] = host["state"], states[status]
    cloud.touch("host", host)
    cloud.wake_scheduler()
    return hid


@rpc("one.host.update", "isi", 2)
def host_update(
    cloud: Cloud, caller: Caller, method: str, hid: int, text: str, append: int = 0
) -> int:
    host = fetch_infra(cloud, caller, "host", hid, ADMIN, method)
    new = parse(text, method)
    if append != 1:
        probe = Template(dummy.host_template(host["name"], host["im_mad"], host["vm_mad"]))
        probe.merge(new)
        new = probe
    else:
        merged = Template.from_json(host["template"])
        merged.merge(new)
        new = merged
    host["template"] = new.to_json()
    host["max_cpu"], host["max_mem"] = capacity(new)
    cloud.touch("host", host)
    cloud.wake_scheduler()
    return hid


def capacity(tmpl: Template) -> tuple[int, int]:
    """MAX_CPU/MAX_MEM = TOTAL minus RESERVED_CPU/RESERVED_MEM (absolute or %, may be < 0)."""

    def reserved(name: str, total: int) -> int:
        raw = (tmpl.get(name) or "").strip()
        if not raw:
            return 0
        try:
            return int(total * float(raw[:-1]) / 100) if raw.endswith("%") else int(float(raw))
        except ValueError:
            return 0

    return (
        dummy.TOTAL_CPU - reserved("RESERVED_CPU", dummy.TOTAL_CPU),
        dummy.TOTAL_MEM - reserved("RESERVED_MEM", dummy.TOTAL_MEM),
    )


@rpc("one.host.delete", "i")
def host_delete(cloud: Cloud, caller: Caller, method: str, hid: int) -> int:
    host = fetch_infra(cloud, caller, "host", hid, ADMIN, method)
    if cloud.host_usage(hid)["vms"]:
        raise OneError(
            ACTION, f"[{method}] Cannot delete host. Can not remove a host with running VMs", hid
        )
    cluster = cloud.pools["cluster"].get(host["cluster_id"])
    if cluster and hid in cluster["hosts"]:
        cluster["hosts"].remove(hid)
        cloud.touch("cluster", cluster)
    cloud.remove("host", hid)
    return hid


@rpc("one.host.rename", "is")
def host_rename(cloud: Cloud, caller: Caller, method: str, hid: int, name: str) -> int:
    host = fetch_infra(cloud, caller, "host", hid, ADMIN, method)
    cloud.check_name("host", name, None, method)
    host["name"] = name
    cloud.touch("host", host)
    return hid


@rpc("one.cluster.allocate", "s")
def cluster_allocate(cloud: Cloud, caller: Caller, method: str, name: str) -> int:
    cloud.authorize(caller, "cluster", None, CREATE, method)
    if not name:
        raise allocate_error("cluster", method, "Invalid NAME.")
    cloud.check_name("cluster", name, None, method)
    cid = cloud.new_id("cluster")
    cloud.add(
        "cluster",
        {
            "id": cid,
            "name": name,
            "hosts": [],
            "datastores": [],
            "vnets": [],
            "template": [["RESERVED_CPU", ""], ["RESERVED_MEM", ""]],
        },
    )
    return cid


@rpc("one.cluster.info", "ib", 1)
def cluster_info(cloud: Cloud, caller: Caller, method: str, cid: int, decrypt: bool = False) -> str:
    return documents.cluster(fetch_infra(cloud, caller, "cluster", cid, USE, method))


@rpc("one.clusterpool.info")
def clusterpool_info(cloud: Cloud, caller: Caller, method: str) -> str:
    clusters = [
        c for c in cloud.pools["cluster"].values() if cloud.visible(caller, "cluster", infra(c), -2)
    ]
    clusters.sort(key=lambda c: c["id"], reverse=True)
    return documents.pool("CLUSTER_POOL", [documents.cluster(c) for c in clusters])


@rpc("one.cluster.update", "isi", 2)
def cluster_update(
    cloud: Cloud, caller: Caller, method: str, cid: int, text: str, append: int = 0
) -> int:
    cluster = fetch_infra(cloud, caller, "cluster", cid, MANAGE, method)
    update_template(cluster, text, append, method)
    cloud.touch("cluster", cluster)
    return cid


@rpc("one.cluster.delete", "i")
def cluster_delete(cloud: Cloud, caller: Caller, method: str, cid: int) -> int:
    cluster = fetch_infra(cloud, caller, "cluster", cid, ADMIN, method)
    if cid == 0 or cluster["hosts"] or cluster["datastores"] or cluster["vnets"]:
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete cluster. Cluster {cid} is not empty, it contains "
            f"{len(cluster['hosts'])} hosts, {len(cluster['vnets'])} vnets and "
            f"{len(cluster['datastores'])} datastores.",
            cid,
        )
    cloud.remove("cluster", cid)
    return cid


@rpc("one.cluster.rename", "is")
def cluster_rename(cloud: Cloud, caller: Caller, method: str, cid: int, name: str) -> int:
    cluster = fetch_infra(cloud, caller, "cluster", cid, MANAGE, method)
    cloud.check_name("cluster", name, None, method)
    cluster["name"] = name
    cloud.touch("cluster", cluster)
    return cid


def _cluster_member(kind: str, key: str, add: bool):
    def member(cloud: Cloud, caller: Caller, method: str, cid: int, oid: int) -> int:
        cluster = fetch_infra(cloud, caller, "cluster", cid, ADMIN, method)
        obj = cloud.get(kind, oid, method)
        if kind == "host":
            old = cloud.pools["cluster"].get(obj["cluster_id"])
            if old is not None and oid in old["hosts"]:
                old["hosts"].remove(oid)
                cloud.touch("cluster", old)
            obj["cluster_id"] = cluster["id"] if add else 0
            target = cluster if add else cloud.pools["cluster"][0]
            if oid not in target["hosts"]:
                target["hosts"].append(oid)
        else:
            if add and cid not in obj["clusters"]:
                obj["clusters"].append(cid)
            if not add and cid in obj["clusters"]:
                obj["clusters"].remove(cid)
            if add and oid not in cluster[key]:
                cluster[key].append(oid)
            if not add and oid in cluster[key]:
                cluster[key].remove(oid)
        cluster[key].sort()
        cloud.touch(kind, obj)
        cloud.touch("cluster", cluster)
        cloud.wake_scheduler()
        return cid

    return member


for _kind, _key, _name in (
    ("host", "hosts", "host"),
    ("datastore", "datastores", "datastore"),
    ("vnet", "vnets", "vnet"),
):
    rpc(f"one.cluster.add{_name}", "ii")(_cluster_member(_kind, _key, True))
    rpc(f"one.cluster.del{_name}", "ii")(_cluster_member(_kind, _key, False))


@rpc("one.zone.info", "ib", 1)
def zone_info(cloud: Cloud, caller: Caller, method: str, zid: int, decrypt: bool = False) -> str:
    return documents.zone(fetch_infra(cloud, caller, "zone", zid, USE, method))


@rpc("one.zonepool.info")
def zonepool_info(cloud: Cloud, caller: Caller, method: str) -> str:
    zones = [z for z in cloud.pools["zone"].values() if cloud.visible(caller, "zone", infra(z), -2)]
    zones.sort(key=lambda z: z["id"], reverse=True)
    return documents.pool("ZONE_POOL", [documents.zone(z) for z in zones])


@rpc("one.datastore.allocate", "si")
def datastore_allocate(cloud: Cloud, caller: Caller, method: str, text: str, cid: int) -> int:
    cloud.authorize(caller, "datastore", None, CREATE, method)
    cluster = cluster_of(cloud, cid, method)
    tmpl = parse(text, method)
    name = tmpl.get("NAME") or ""
    if not name:
        raise allocate_error("datastore", method, "No NAME in template.")
    cloud.check_name("datastore", name, None, method)
    type_name = (tmpl.get("TYPE") or "IMAGE_DS").upper()
    ds_type = {"IMAGE_DS": 0, "SYSTEM_DS": 1, "FILE_DS": 2, "BACKUP_DS": 3}.get(type_name)
    if ds_type is None or ds_type == 3:
        raise allocate_error("datastore", method, f"Unknown or unsupported TYPE {type_name}.")
    tm_mad = tmpl.get("TM_MAD") or ""
    ds_mad = tmpl.get("DS_MAD") or ""
    if not tm_mad or (ds_type != 1 and not ds_mad):
        missing = "TM_MAD" if not tm_mad else "DS_MAD"
        raise allocate_error("datastore", method, f"No {missing} in template.")
    ds = cloud.datastore_obj(cloud.new_id("datastore"), name, ds_type, ds_mad, tm_mad, now())
    ds.update(cloud.owned(ds["id"], name, caller, group_u=1))
    base = Template.from_json(ds["template"])
    for attr_name, value in tmpl:
        if attr_name != "NAME":
            base.replace(attr_name, value)
    ds["template"] = base.to_json()
    ds["clusters"] = [cluster["id"]]
    cloud.add("datastore", ds)
    cluster["datastores"].append(ds["id"])
    cloud.touch("cluster", cluster)
    return ds["id"]


@rpc("one.datastore.info", "ib", 1)
def datastore_info(
    cloud: Cloud, caller: Caller, method: str, ds_id: int, decrypt: bool = False
) -> str:
    ds = cloud.fetch(caller, "datastore", ds_id, USE, method)
    return documents.datastore(ds, cloud.datastore_used(ds_id))


@rpc("one.datastorepool.info")
def datastorepool_info(cloud: Cloud, caller: Caller, method: str) -> str:
    pool = list_pool(cloud, caller, "datastore", -2, -1, -1, method)
    items = [documents.datastore(d, cloud.datastore_used(d["id"])) for d in pool]
    return documents.pool("DATASTORE_POOL", items)


@rpc("one.datastore.update", "isi", 2)
def datastore_update(
    cloud: Cloud, caller: Caller, method: str, ds_id: int, text: str, append: int = 0
) -> int:
    ds = cloud.fetch(caller, "datastore", ds_id, MANAGE, method)
    update_template(ds, text, append, method)
    tmpl = Template.from_json(ds["template"])
    ds["tm_mad"] = tmpl.get("TM_MAD") or ds["tm_mad"]
    if ds["type"] != 1:
        ds["ds_mad"] = tmpl.get("DS_MAD") or ds["ds_mad"]
    cloud.touch("datastore", ds)
    return ds_id


@rpc("one.datastore.delete", "i")
def datastore_delete(cloud: Cloud, caller: Caller, method: str, ds_id: int) -> int:
    ds = cloud.fetch(caller, "datastore", ds_id, ADMIN, method)
    if ds["images"]:
        raise OneError(
            ACTION, f"[{method}] Cannot delete datastore. Datastore is not empty.", ds_id
        )
    for cid in ds["clusters"]:
        cluster = cloud.pools["cluster"].get(cid)
        if cluster and ds_id in cluster["datastores"]:
            cluster["datastores"].remove(ds_id)
            cloud.touch("cluster", cluster)
    cloud.remove("datastore", ds_id)
    return ds_id


@rpc("one.datastore.chmod", "iiiiiiiiii")
def datastore_chmod(cloud: Cloud, caller: Caller, method: str, oid: int, *bits: int) -> int:
    return chmod(cloud, caller, "datastore", oid, bits, method)


# --- images -------------------------------------------------------------------------------

IMAGE_TYPES = {"OS": 0, "CDROM": 1, "DATABLOCK": 2, "KERNEL": 3, "RAMDISK": 4, "CONTEXT": 5}
IMAGE_TYPE_NAMES = {v: k for k, v in IMAGE_TYPES.items()}
IMAGE_STATE_NAMES = {
    0: "INIT",
    1: "READY",
    2: "USED",
    3: "DISABLED",
    4: "LOCKED",
    5: "ERROR",
    6: "CLONE",
    7: "DELETE",
    8: "USED_PERS",
}


def new_image(
    cloud: Cloud,
    caller: Caller,
    method: str,
    tmpl: Template,
    ds: Obj,
    size: int,
    path: str,
    img_type: int,
    persistent: bool,
) -> Obj:
    name = tmpl.get("NAME") or ""
    image = new_owned(cloud, caller, "image", name)
    for key in ("NAME", "PATH", "TYPE", "PERSISTENT", "SIZE", "SOURCE", "FORMAT", "FS"):
        tmpl.erase(key)
    if not tmpl.get("DEV_PREFIX"):
        tmpl.replace("DEV_PREFIX", "hd" if img_type == 1 else "sd")
    image.update(
        type=img_type,
        disk_type=0 if img_type != 1 else 1,
        persistent=int(persistent),
        regtime=now(),
        source="dummy_path",
        path=path,
        format="dummy_format" if img_type != 2 or path else "raw",
        fs="",
        size=size,
        state=4,
        prev_state=4,
        vms=[],
        clones=[],
        cloning_ops=0,
        cloning_id=-1,
        datastore_id=ds["id"],
        datastore=ds["name"],
        template=tmpl.to_json(),
        due=time.time() + cloud.lifecycle.image,
    )
    cloud.add("image", image)
    ds["images"].append(image["id"])
    cloud.touch("datastore", ds)
    return image


@rpc("one.image.allocate", "sib", 2)
def image_allocate(
    cloud: Cloud, caller: Caller, method: str, text: str, ds_id: int, skip: bool = False
) -> int:
    tmpl = parse(text, method)
    ds = cloud.fetch(caller, "datastore", ds_id, USE, method)
    cloud.authorize(caller, "image", None, CREATE, method)
    if ds["type"] == 1:
        raise allocate_error(
            "image", method, "New images cannot be allocated in a system datastore."
        )
    name = tmpl.get("NAME") or ""
    if not name:
        raise allocate_error("image", method, "No NAME in template.")
    type_name = (tmpl.get("TYPE") or "OS").upper()
    if type_name not in IMAGE_TYPES:
        raise allocate_error("image", method, f"Unknown type {type_name}.")
    img_type = IMAGE_TYPES[type_name]
    path = tmpl.get("PATH") or ""
    if not path and not tmpl.get("SOURCE") and (img_type != 2 or not tmpl.get("SIZE")):
        raise allocate_error(
            "image", method, "No PATH nor SOURCE in template, or SIZE for DATABLOCK."
        )
    try:
        # The dummy datastore's `stat` reports 1024 MB for every path.
        size = 1024 if path else int(float(tmpl.get("SIZE") or 0))
    except ValueError:
        raise allocate_error("image", method, "Wrong SIZE.") from None
    if not (skip and caller.is_admin):
        free = ds["total_mb"] - cloud.datastore_used(ds_id)
        if size > free:
            raise OneError(ACTION, f"[{method}] Not enough space in datastore", ds_id)
    cloud.check_name("image", name, caller.uid, method)
    persistent = (tmpl.get("PERSISTENT") or "NO").upper() in ("YES", "TRUE", "1")
    return new_image(cloud, caller, method, tmpl, ds, size, path, img_type, persistent)["id"]


@rpc("one.image.info", "ib", 1)
def image_info(cloud: Cloud, caller: Caller, method: str, iid: int, decrypt: bool = False) -> str:
    return documents.image(cloud.fetch(caller, "image", iid, USE, method))


@rpc("one.imagepool.info", "iii")
def imagepool_info(
    cloud: Cloud, caller: Caller, method: str, flag: int, start: int, end: int
) -> str:
    images = list_pool(cloud, caller, "image", flag, start, end, method)
    return documents.pool("IMAGE_POOL", [documents.image(i) for i in images])


@rpc("one.image.update", "isi", 2)
def image_update(
    cloud: Cloud, caller: Caller, method: str, iid: int, text: str, append: int = 0
) -> int:
    image = cloud.fetch(caller, "image", iid, MANAGE, method)
    update_template(image, text, append, method)
    cloud.touch("image", image)
    return iid


@rpc("one.image.delete", "ib", 1)
def image_delete(cloud: Cloud, caller: Caller, method: str, iid: int, force: bool = False) -> int:
    image = cloud.fetch(caller, "image", iid, MANAGE, method)
    if image["vms"]:
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete image. Cannot delete image {iid}, it is being used by "
            f"{len(image['vms'])} VMs",
            iid,
        )
    ds = cloud.pools["datastore"].get(image["datastore_id"])
    if ds and iid in ds["images"]:
        ds["images"].remove(iid)
        cloud.touch("datastore", ds)
    cloud.remove("image", iid)
    return iid


@rpc("one.image.clone", "isi", 2)
def image_clone(
    cloud: Cloud, caller: Caller, method: str, iid: int, name: str, ds_id: int = -1
) -> int:
    src = cloud.fetch(caller, "image", iid, USE, method)
    ds = cloud.fetch(
        caller, "datastore", src["datastore_id"] if ds_id == -1 else ds_id, USE, method
    )
    cloud.authorize(caller, "image", None, CREATE, method)
    if src["state"] not in (1, 2):
        raise OneError(
            ACTION, f"[{method}] Cannot clone image in state {IMAGE_STATE_NAMES[src['state']]}", iid
        )
    if src["size"] > ds["total_mb"] - cloud.datastore_used(ds["id"]):
        raise OneError(ACTION, f"[{method}] Not enough space in datastore", ds["id"])
    cloud.check_name("image", name, caller.uid, method)
    tmpl = Template.from_json(src["template"])
    tmpl.replace("NAME", name)
    image = new_image(cloud, caller, method, tmpl, ds, src["size"], src["path"], src["type"], False)
    src["clones"].append(image["id"])
    cloud.touch("image", src)
    return image["id"]


@rpc("one.image.persistent", "ib")
def image_persistent(cloud: Cloud, caller: Caller, method: str, iid: int, flag: bool) -> int:
    image = cloud.fetch(caller, "image", iid, MANAGE, method)
    if image["vms"]:
        raise OneError(ACTION, f"[{method}] Cannot change persistent state of image in use", iid)
    image["persistent"] = int(flag)
    cloud.touch("image", image)
    return iid


@rpc("one.image.enable", "ib")
def image_enable(cloud: Cloud, caller: Caller, method: str, iid: int, flag: bool) -> int:
    image = cloud.fetch(caller, "image", iid, MANAGE, method)
    if image["state"] not in (1, 3):
        action = "enable" if flag else "disable"
        raise OneError(
            ACTION,
            f"[{method}] Could not {action} image {iid}: Image cannot be "
            f"{action}d in state {IMAGE_STATE_NAMES[image['state']]}",
            iid,
        )
    image["prev_state"], image["state"] = image["state"], 1 if flag else 3
    cloud.touch("image", image)
    return iid


@rpc("one.image.chtype", "is")
def image_chtype(cloud: Cloud, caller: Caller, method: str, iid: int, type_name: str) -> int:
    image = cloud.fetch(caller, "image", iid, MANAGE, method)
    if type_name.upper() not in IMAGE_TYPES:
        raise OneError(ACTION, f"[{method}] Unknown type {type_name}", iid)
    image["type"] = IMAGE_TYPES[type_name.upper()]
    cloud.touch("image", image)
    return iid


# --- VM templates -------------------------------------------------------------------------


@rpc("one.template.allocate", "s")
def template_allocate(cloud: Cloud, caller: Caller, method: str, text: str) -> int:
    tmpl = parse(text, method)
    cloud.authorize(caller, "template", None, CREATE, method)
    name = tmpl.get("NAME") or ""
    if not name:
        raise allocate_error("template", method, "NAME cannot be empty.")
    cloud.check_name("template", name, caller.uid, method)
    tmpl.erase("NAME")
    obj = new_owned(cloud, caller, "template", name)
    obj.update(regtime=now(), template=tmpl.to_json())
    return cloud.add("template", obj)["id"]


@rpc("one.template.info", "ibb", 1)
def template_info(
    cloud: Cloud, caller: Caller, method: str, tid: int, extended: bool = False, dec: bool = False
) -> str:
    return documents.vm_template(cloud.fetch(caller, "template", tid, USE, method))


@rpc("one.templatepool.info", "iii")
def templatepool_info(
    cloud: Cloud, caller: Caller, method: str, flag: int, start: int, end: int
) -> str:
    objs = list_pool(cloud, caller, "template", flag, start, end, method)
    return documents.pool("VMTEMPLATE_POOL", [documents.vm_template(t) for t in objs])


@rpc("one.template.update", "isi", 2)
def template_update(
    cloud: Cloud, caller: Caller, method: str, tid: int, text: str, append: int = 0
) -> int:
    obj = cloud.fetch(caller, "template", tid, MANAGE, method)
    update_template(obj, text, append, method)
    tmpl = Template.from_json(obj["template"])
    if tmpl.erase("NAME"):
        obj["template"] = tmpl.to_json()
    cloud.touch("template", obj)
    return tid


@rpc("one.template.delete", "ib", 1)
def template_delete(
    cloud: Cloud, caller: Caller, method: str, tid: int, recursive: bool = False
) -> int:
    obj = cloud.fetch(caller, "template", tid, MANAGE, method)
    if recursive:
        for disk in Template.from_json(obj["template"]).vectors("DISK"):
            if disk.get("IMAGE_ID", "").isdigit() and int(disk["IMAGE_ID"]) in cloud.pools["image"]:
                image_delete(cloud, caller, "one.image.delete", int(disk["IMAGE_ID"]))
    cloud.remove("template", obj["id"])
    return tid


@rpc("one.template.clone", "isb", 2)
def template_clone(
    cloud: Cloud, caller: Caller, method: str, tid: int, name: str, recursive: bool = False
) -> int:
    src = cloud.fetch(caller, "template", tid, USE, method)
    cloud.authorize(caller, "template", None, CREATE, method)
    cloud.check_name("template", name, caller.uid, method)
    obj = new_owned(cloud, caller, "template", name)
    obj.update(regtime=now(), template=list(src["template"]))
    return cloud.add("template", obj)["id"]


@rpc("one.template.instantiate", "isbsb", 2)
def template_instantiate(
    cloud: Cloud,
    caller: Caller,
    method: str,
    tid: int,
    name: str,
    hold: bool | None = None,
    extra: str | None = None,
    persistent: bool = False,
) -> int:
    if hold is not None and extra is None:
        # oned <= 7.0 reads `hold` and `extra_template` together (VMTemplateInstantiate).
        raise RpcFault(FAULT_TYPE, "Not enough parameters")
    src = cloud.fetch(caller, "template", tid, USE, method)
    tmpl = Template.from_json(src["template"])
    if extra:
        tmpl.merge(parse(extra, method))
    tmpl.replace("TEMPLATE_ID", str(tid))
    tmpl.erase("NAME")
    if name:
        tmpl.add("NAME", name)
    return create_vm(cloud, caller, method, tmpl, bool(hold), default_name=src["name"])


# --- security groups ----------------------------------------------------------------------

_PROTOCOLS = {"TCP", "UDP", "ICMP", "ICMPV6", "IPSEC", "ALL"}


def check_rules(tmpl: Template, method: str, kind_error) -> None:
    for rule in tmpl.vectors("RULE"):
        protocol = rule.get("PROTOCOL", "").upper()
        if protocol not in _PROTOCOLS:
            raise kind_error(f"Invalid PROTOCOL {protocol}")
        if rule.get("RULE_TYPE", "").upper() not in ("INBOUND", "OUTBOUND"):
            raise kind_error("Invalid RULE_TYPE")
        rule["PROTOCOL"], rule["RULE_TYPE"] = protocol, rule["RULE_TYPE"].upper()
        if "RANGE" in rule and protocol not in ("TCP", "UDP"):
            raise kind_error("RANGE is not supported for this protocol")


@rpc("one.secgroup.allocate", "s")
def secgroup_allocate(cloud: Cloud, caller: Caller, method: str, text: str) -> int:
    tmpl = parse(text, method)
    cloud.authorize(caller, "secgroup", None, CREATE, method)
    name = tmpl.get("NAME") or ""
    if not name:
        raise allocate_error("secgroup", method, "No NAME in template.")
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
    check_rules(new, method, lambda text: OneError(ACTION, f"[{method}] {text}", sid))
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


# --- virtual networks ---------------------------------------------------------------------


def make_ar(spec: dict[str, str], ar_id: int, method: str, error) -> Obj:
    ar_type = spec.get("TYPE", "").upper()
    if ar_type not in ("IP4", "ETHER"):
        raise error(f"Unsupported address range TYPE {ar_type or '(none)'}")
    try:
        size = int(spec.get("SIZE", ""))
        if size <= 0:
            raise ValueError
    except ValueError:
        raise error("Wrong SIZE for address range") from None
    attrs = {k: v for k, v in spec.items()}
    attrs["TYPE"], attrs["SIZE"] = ar_type, str(size)
    if ar_type == "IP4":
        try:
            ip = ipaddress.IPv4Address(spec.get("IP", ""))
        except ValueError:
            raise error("Wrong IP address for address range") from None
        attrs["IP"] = str(ip)
        if "MAC" not in spec:
            attrs["MAC"] = "02:00:" + ":".join(f"{b:02x}" for b in ip.packed)
    elif "MAC" not in spec:
        attrs["MAC"] = "02:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))
    return {"ar_id": ar_id, "attrs": attrs, "leases": {}}


@rpc("one.vn.allocate", "si")
def vn_allocate(cloud: Cloud, caller: Caller, method: str, text: str, cid: int) -> int:
    tmpl = parse(text, method)
    cloud.authorize(caller, "vnet", None, CREATE, method)
    cluster = cluster_of(cloud, cid, method)

    def error(text: str) -> OneError:
        return allocate_error("vnet", method, text)

    name = tmpl.get("NAME") or ""
    if not name:
        raise error("No NAME in template.")
    vn_mad = tmpl.get("VN_MAD") or ""
    if not vn_mad:
        raise error("VN_MAD is mandatory.")
    if vn_mad in ("dummy", "fw") and not tmpl.get("BRIDGE"):
        raise error("BRIDGE is mandatory for driver dummy.")
    cloud.check_name("vnet", name, caller.uid, method)
    ars = [make_ar(spec, i, method, error) for i, spec in enumerate(tmpl.vectors("AR"))]
    tmpl.erase("AR")
    tmpl.erase("NAME")
    defaults = {
        "BRIDGE": "onebr" if not tmpl.get("BRIDGE") else tmpl.get("BRIDGE"),
        "BRIDGE_TYPE": "linux",
        "OUTER_VLAN_ID": "",
        "PHYDEV": "",
        "SECURITY_GROUPS": "0",
        "VLAN_ID": "",
    }
    for key, value in defaults.items():
        if not tmpl.has(key):
            tmpl.add(key, value)
    obj = new_owned(cloud, caller, "vnet", name)
    obj.update(
        clusters=[cluster["id"]],
        state=1,
        prev_state=1,
        parent_network_id="",
        template=tmpl.to_json(),
        ars=ars,
        next_ar=len(ars),
        updated_vms=[],
    )
    cloud.add("vnet", obj)
    cluster["vnets"].append(obj["id"])
    cloud.touch("cluster", cluster)
    return obj["id"]


def vn_doc(cloud: Cloud, caller: Caller, vn: Obj, extended: bool) -> str:
    def visible_vm(vid: int) -> bool:
        vm = cloud.pools["vm"].get(vid)
        return vm is not None and acl.authorize(caller, cloud.rules, "vm", vm, USE)

    return documents.vnet(vn, extended, visible_vm)


@rpc("one.vn.info", "ib", 1)
def vn_info(cloud: Cloud, caller: Caller, method: str, vid: int, dec: bool = False) -> str:
    return vn_doc(cloud, caller, cloud.fetch(caller, "vnet", vid, USE, method), True)


@rpc("one.vnpool.info", "iii")
def vnpool_info(cloud: Cloud, caller: Caller, method: str, flag: int, start: int, end: int) -> str:
    objs = list_pool(cloud, caller, "vnet", flag, start, end, method)
    return documents.pool("VNET_POOL", [vn_doc(cloud, caller, v, False) for v in objs])


@rpc("one.vn.update", "isi", 2)
def vn_update(
    cloud: Cloud, caller: Caller, method: str, vid: int, text: str, append: int = 0
) -> int:
    vn = cloud.fetch(caller, "vnet", vid, MANAGE, method)
    update_template(vn, text, append, method)
    cloud.touch("vnet", vn)
    return vid


@rpc("one.vn.delete", "i")
def vn_delete(cloud: Cloud, caller: Caller, method: str, vid: int) -> int:
    vn = cloud.fetch(caller, "vnet", vid, MANAGE, method)
    if any(ar["leases"] for ar in vn["ars"]):
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete virtual network. Can not remove a virtual network "
            "with leases in use",
            vid,
        )
    for cid in vn["clusters"]:
        cluster = cloud.pools["cluster"].get(cid)
        if cluster and vid in cluster["vnets"]:
            cluster["vnets"].remove(vid)
            cloud.touch("cluster", cluster)
    parent = vn.get("parent_network_id")
    if parent != "" and int(parent) in cloud.pools["vnet"]:
        pvn = cloud.pools["vnet"][int(parent)]
        for ar in pvn["ars"]:
            for idx, lease in list(ar["leases"].items()):
                if lease == {"kind": "vnet", "id": vid}:
                    del ar["leases"][idx]
        cloud.touch("vnet", pvn)
    cloud.remove("vnet", vid)
    return vid


@rpc("one.vn.add_ar", "is")
def vn_add_ar(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vn = cloud.fetch(caller, "vnet", vid, ADMIN, method)
    tmpl = parse(text, method)

    def error(text: str) -> OneError:
        return OneError(ACTION, f"[{method}] {text}", vid)

    specs = tmpl.vectors("AR")
    if not specs:
        raise error("Wrong AR definition. AR vector attribute is missing.")
    for spec in specs:
        vn["ars"].append(make_ar(spec, vn["next_ar"], method, error))
        vn["next_ar"] += 1
    cloud.touch("vnet", vn)
    return vid


@rpc("one.vn.rm_ar", "iib", 2)
def vn_rm_ar(
    cloud: Cloud, caller: Caller, method: str, vid: int, ar_id: int, force: bool = False
) -> int:
    vn = cloud.fetch(caller, "vnet", vid, ADMIN, method)
    ar = next((a for a in vn["ars"] if a["ar_id"] == ar_id), None)
    if ar is None:
        raise OneError(ACTION, f"[{method}] Address Range {ar_id} does not exist", vid)
    if ar["leases"] and not force:
        raise OneError(ACTION, f"[{method}] Address Range {ar_id} has leases in use", vid)
    vn["ars"].remove(ar)
    cloud.touch("vnet", vn)
    return vid


def _lease_spec(tmpl: Template, method: str, vid: int) -> dict[str, str]:
    spec = tmpl.vector("LEASES")
    if spec is None or not (spec.get("IP") or spec.get("MAC")):
        raise OneError(ACTION, f"[{method}] Wrong LEASES attribute, IP or MAC is missing", vid)
    return spec


def find_index(vn: Obj, spec: dict[str, str]) -> tuple[Obj, int] | None:
    for ar in vn["ars"]:
        if spec.get("AR_ID") not in (None, str(ar["ar_id"])):
            continue
        size = int(ar["attrs"]["SIZE"])
        for index in range(size):
            if spec.get("IP") and "IP" in ar["attrs"] and dummy.ip_at(ar, index) == spec["IP"]:
                return ar, index
            if spec.get("MAC") and dummy.mac_at(ar, index) == spec["MAC"].lower():
                return ar, index
    return None


@rpc("one.vn.hold", "is")
def vn_hold(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vn = cloud.fetch(caller, "vnet", vid, MANAGE, method)
    found = find_index(vn, _lease_spec(parse(text, method), method, vid))
    if found is None or str(found[1]) in found[0]["leases"]:
        raise OneError(ACTION, f"[{method}] Address is not part of the network or is used", vid)
    found[0]["leases"][str(found[1])] = {"kind": "vm", "id": -1}
    cloud.touch("vnet", vn)
    return vid


@rpc("one.vn.release", "is")
def vn_release(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vn = cloud.fetch(caller, "vnet", vid, MANAGE, method)
    found = find_index(vn, _lease_spec(parse(text, method), method, vid))
    if found is None or found[0]["leases"].get(str(found[1])) != {"kind": "vm", "id": -1}:
        raise OneError(ACTION, f"[{method}] Address is not on hold", vid)
    del found[0]["leases"][str(found[1])]
    cloud.touch("vnet", vn)
    return vid


@rpc("one.vn.reserve", "is")
def vn_reserve(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    """Reserve SIZE leases of `vid` into a new vnet (NAME) or an existing one (NETWORK_ID)."""
    parent = cloud.fetch(caller, "vnet", vid, USE, method)
    tmpl = parse(text, method)

    def error(text: str) -> OneError:
        return OneError(ACTION, f"[{method}] {text}", vid)

    try:
        size = int(tmpl.get("SIZE") or "")
    except ValueError:
        raise error("Reservation SIZE must be a greater than 0") from None
    if size <= 0:
        raise error("Reservation SIZE must be a greater than 0")
    spec = {k: tmpl.get(k) for k in ("IP", "MAC", "AR_ID") if tmpl.get(k)}
    indexes: list[tuple[Obj, int]] = []
    if "IP" in spec or "MAC" in spec:
        found = find_index(parent, spec)
        if found is None:
            raise error("Not enough free addresses in an address range")
        ar, first = found
        indexes = [(ar, first + i) for i in range(size)]
        if first + size > int(ar["attrs"]["SIZE"]) or any(
            str(i) in ar["leases"] for _, i in indexes
        ):
            raise error("Not enough free addresses in an address range")
    else:
        for ar in parent["ars"]:
            if spec.get("AR_ID") not in (None, str(ar["ar_id"])):
                continue
            free = [i for i in range(int(ar["attrs"]["SIZE"])) if str(i) not in ar["leases"]]
            if len(free) >= size:
                indexes = [(ar, i) for i in free[:size]]
                break
        if not indexes:
            raise error("Not enough free addresses in an address range")
    if tmpl.get("NETWORK_ID"):
        target = cloud.fetch(caller, "vnet", int(tmpl.get("NETWORK_ID")), MANAGE, method)
    else:
        name = tmpl.get("NAME") or ""
        if not name:
            raise error("NAME for the reservation has to be set")
        cloud.check_name("vnet", name, caller.uid, method)
        target = new_owned(cloud, caller, "vnet", name)
        target.update(
            clusters=list(parent["clusters"]),
            state=1,
            prev_state=1,
            parent_network_id=str(vid),
            template=list(parent["template"]),
            ars=[],
            next_ar=0,
            updated_vms=[],
        )
        cloud.add("vnet", target)
        for cid in parent["clusters"]:
            if cid in cloud.pools["cluster"]:
                cloud.pools["cluster"][cid]["vnets"].append(target["id"])
                cloud.touch("cluster", cloud.pools["cluster"][cid])
    ar, first = indexes[0]
    attrs = {k: v for k, v in ar["attrs"].items() if k in ("TYPE",)}
    attrs.update(SIZE=str(size), MAC=dummy.mac_at(ar, first), PARENT_NETWORK_AR_ID=str(ar["ar_id"]))
    if "IP" in ar["attrs"]:
        attrs["IP"] = dummy.ip_at(ar, first)
    target["ars"].append({"ar_id": target["next_ar"], "attrs": attrs, "leases": {}})
    target["next_ar"] += 1
    for a, i in indexes:
        a["leases"][str(i)] = {"kind": "vnet", "id": target["id"]}
    cloud.touch("vnet", parent)
    cloud.touch("vnet", target)
    return target["id"]


# --- generic chmod/chown/rename registrations ---------------------------------------------

for _kind, _prefix in (
    ("vm", "one.vm"),
    ("template", "one.template"),
    ("image", "one.image"),
    ("vnet", "one.vn"),
    ("secgroup", "one.secgroup"),
):

    def _make(kind: str):
        def do_chmod(cloud: Cloud, caller: Caller, method: str, oid: int, *bits: int) -> int:
            return chmod(cloud, caller, kind, oid, bits, method)

        def do_chown(
            cloud: Cloud, caller: Caller, method: str, oid: int, uid: int, gid: int
        ) -> int:
            return chown(cloud, caller, kind, oid, uid, gid, method)

        def do_rename(cloud: Cloud, caller: Caller, method: str, oid: int, name: str) -> int:
            return rename(cloud, caller, kind, oid, name, method)

        return do_chmod, do_chown, do_rename

    _chmod, _chown, _rename = _make(_kind)
    rpc(f"{_prefix}.chmod", "iiiiiiiiii")(_chmod)
    rpc(f"{_prefix}.chown", "iii")(_chown)
    rpc(f"{_prefix}.rename", "is")(_rename)


# --- virtual machines ---------------------------------------------------------------------

# Attributes oned keeps in the VM TEMPLATE; everything else goes to USER_TEMPLATE.
VM_TEMPLATE_ATTRS = {
    "CPU",
    "VCPU",
    "MEMORY",
    "DISK",
    "NIC",
    "NIC_ALIAS",
    "NIC_DEFAULT",
    "CONTEXT",
    "OS",
    "GRAPHICS",
    "INPUT",
    "FEATURES",
    "RAW",
    "PCI",
    "TEMPLATE_ID",
    "SUBMIT_ON_HOLD",
    "TOPOLOGY",
    "NUMA_NODE",
    "VMGROUP",
    "CPU_MODEL",
    "MEMORY_MAX",
    "VCPU_MAX",
    "MEMORY_SLOTS",
    "MEMORY_RESIZE_MODE",
    "HYPERV_OPTIONS",
    "SPICE_OPTIONS",
    "VIDEO",
    "IOTHREADS",
    "BACKUP_CONFIG",
    "EMULATOR",
    "CPU_COST",
    "MEMORY_COST",
    "DISK_COST",
    "SECURITY_GROUP_RULE",
}


def _positive_float(value: str | None) -> bool:
    try:
        return value is not None and float(value) > 0
    except ValueError:
        return False


def _positive_int(value: str | None) -> bool:
    try:
        return value is not None and int(value) > 0
    except ValueError:
        return False


def find_by_id_or_name(
    cloud: Cloud, caller: Caller, kind: str, spec: dict[str, str], key: str, method: str
) -> Obj:
    """A DISK/NIC reference: `<KEY>_ID`, or `<KEY>` (+ `<KEY>_UNAME`/`_UID`) by name."""
    id_key, uname_key, uid_key = f"{key}_ID", f"{key}_UNAME", f"{key}_UID"
    word = OBJECT_NAMES[kind].capitalize()
    if spec.get(id_key, "") != "":
        try:
            oid = int(spec[id_key])
        except ValueError:
            raise allocate_error("vm", method, f"Wrong {id_key} {spec[id_key]}.") from None
        obj = cloud.pools[kind].get(oid)
        if obj is None:
            raise allocate_error("vm", method, f"{word} {oid} does not exist.")
        return obj
    name = spec.get(key, "")
    owner = caller.uid
    if spec.get(uname_key):
        user = cloud.user_by_name(spec[uname_key])
        owner = user["id"] if user else -2
    elif spec.get(uid_key, "").isdigit():
        owner = int(spec[uid_key])
    for obj in cloud.pools[kind].values():
        if obj["name"] == name and obj["uid"] == owner:
            return obj
    raise allocate_error("vm", method, f'{word} "{name}" does not exist.')


def expand_disks(
    cloud: Cloud, caller: Caller, tmpl: Template, vm_id: int, method: str, first_id: int = 0
) -> list[tuple[dict[str, str], Obj | None]]:
    """Fill each DISK from its image/datastore (`VirtualMachineDisk::fill`)."""
    out = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    used_targets = {d.get("TARGET") for d in tmpl.vectors("DISK") if d.get("TARGET")}
    disk_id = first_id
    for disk in tmpl.vectors("DISK"):
        image = None
        if disk.get("IMAGE_ID", "") != "" or disk.get("IMAGE", "") != "":
            image = find_by_id_or_name(cloud, caller, "image", disk, "IMAGE", method)
            cloud.authorize(caller, "image", image, USE, method)
            if image["state"] == 8 or (image["persistent"] and image["vms"]):
                raise allocate_error(
                    "vm",
                    method,
                    f"Cannot acquire image {image['id']}, it is persistent and already in use",
                )
            if image["state"] not in (1, 2):
                raise allocate_error(
                    "vm",
                    method,
                    f"Cannot acquire image {image['id']}, it is in state: "
                    f"{IMAGE_STATE_NAMES[image['state']]}",
                )
            ds = cloud.pools["datastore"][image["datastore_id"]]
            ds_tmpl = Template.from_json(ds["template"])
            img_tmpl = Template.from_json(image["template"])
            prefix = disk.get("DEV_PREFIX") or img_tmpl.get("DEV_PREFIX") or "sd"
            filled = {
                "ALLOW_ORPHANS": ds_tmpl.get("ALLOW_ORPHANS", "NO"),
                "CLONE": "NO" if image["persistent"] else "YES",
                "CLONE_TARGET": ds_tmpl.get("CLONE_TARGET", "SYSTEM"),
                "CLUSTER_ID": ",".join(map(str, ds["clusters"])),
                "DATASTORE": ds["name"],
                "DATASTORE_ID": str(ds["id"]),
                "DEV_PREFIX": prefix,
                "DISK_SNAPSHOT_TOTAL_SIZE": "0",
                "DISK_TYPE": "FILE",
                "DRIVER": img_tmpl.get("DRIVER") or image["format"],
                "FORMAT": image["format"],
                "IMAGE": image["name"],
                "IMAGE_ID": str(image["id"]),
                "IMAGE_STATE": "2" if not image["persistent"] else "8",
                "LN_TARGET": ds_tmpl.get("LN_TARGET", "NONE"),
                "ORIGINAL_SIZE": str(image["size"]),
                "READONLY": "YES" if image["type"] == 1 else "NO",
                "SAVE": "YES" if image["persistent"] else "NO",
                "SIZE": str(image["size"]),
                "SOURCE": image["source"],
                "TM_MAD": ds["tm_mad"],
                "TYPE": "CDROM" if image["type"] == 1 else "FILE",
            }
            if disk.get("IMAGE_UNAME"):
                filled["IMAGE_UNAME"] = disk["IMAGE_UNAME"]
            for key, value in disk.items():
                if key not in ("IMAGE_ID", "IMAGE", "SIZE") or key == "SIZE" and image is None:
                    filled[key] = value
            if "SIZE" in disk and int(float(disk["SIZE"])) > image["size"]:
                filled["SIZE"] = str(int(float(disk["SIZE"])))
        else:
            if not _positive_int(disk.get("SIZE")):
                raise allocate_error("vm", method, "DISK must have an IMAGE or a SIZE.")
            filled = {"DISK_TYPE": "FILE", "TYPE": "fs", "FORMAT": "raw", "DEV_PREFIX": "sd"}
            filled.update({"DISK_SNAPSHOT_TOTAL_SIZE": "0"})
            filled.update(disk)
        filled["DISK_ID"] = str(disk_id)
        if not filled.get("TARGET"):
            prefix = filled.get("DEV_PREFIX", "sd")
            for letter in letters:
                if prefix + letter not in used_targets:
                    filled["TARGET"] = prefix + letter
                    used_targets.add(filled["TARGET"])
                    break
        disk.clear()
        disk.update(filled)
        out.append((disk, image))
        disk_id += 1
    return out


def acquire_lease(vn: Obj, nic: dict[str, str], vm_id: int, method: str) -> tuple[Obj, int]:
    wanted_ip, wanted_mac = nic.get("IP"), nic.get("MAC")
    for ar in vn["ars"]:
        if nic.get("AR_ID") not in (None, "", str(ar["ar_id"])):
            continue
        for index in range(int(ar["attrs"]["SIZE"])):
            if str(index) in ar["leases"]:
                continue
            if wanted_ip and ("IP" not in ar["attrs"] or dummy.ip_at(ar, index) != wanted_ip):
                continue
            if wanted_mac and dummy.mac_at(ar, index) != wanted_mac.lower():
                continue
            ar["leases"][str(index)] = {"kind": "vm", "id": vm_id}
            return ar, index
    what = f"IP {wanted_ip}" if wanted_ip else "a free address"
    raise allocate_error(
        "vm", method, f"Cannot get {what} for NIC from virtual network [{vn['id']}]."
    )


def expand_nics(
    cloud: Cloud, caller: Caller, tmpl: Template, vm_id: int, method: str, first_id: int = 0
) -> list[dict[str, str]]:
    """Lease an address for each NIC and fill it from its network (`nic_attribute`)."""
    inherit = {"GATEWAY", "DNS", "MTU", "METHOD", "METRIC", "EXTERNAL_IP", "FILTER"}
    nic_id = first_id
    leased: list[dict[str, str]] = []
    try:
        for nic in tmpl.vectors("NIC"):
            if nic.get("NETWORK_MODE", "").lower() == "auto" and not (
                nic.get("NETWORK_ID") or nic.get("NETWORK")
            ):
                candidates = sorted(
                    (
                        v
                        for v in cloud.pools["vnet"].values()
                        if acl.authorize(caller, cloud.rules, "vnet", v, USE)
                    ),
                    key=lambda v: v["id"],
                )
                if not candidates:
                    raise allocate_error("vm", method, "No virtual network for NIC in auto mode.")
                nic["NETWORK_ID"] = str(candidates[0]["id"])
            vn = find_by_id_or_name(cloud, caller, "vnet", nic, "NETWORK", method)
            cloud.authorize(caller, "vnet", vn, USE, method)
            ar, index = acquire_lease(vn, nic, vm_id, method)
            vt = Template.from_json(vn["template"])
            filled = {
                "AR_ID": str(ar["ar_id"]),
                "BRIDGE": vt.get("BRIDGE", ""),
                "BRIDGE_TYPE": vt.get("BRIDGE_TYPE", ""),
                "CLUSTER_ID": ",".join(map(str, vn["clusters"])),
                "MAC": dummy.mac_at(ar, index),
                "NAME": f"NIC{nic_id}",
                "NETWORK": vn["name"],
                "NETWORK_ID": str(vn["id"]),
                "NIC_ID": str(nic_id),
                "SECURITY_GROUPS": vt.get("SECURITY_GROUPS", "0"),
                "TARGET": f"one-{vm_id}-{nic_id}",
                "VN_MAD": vt.get("VN_MAD", ""),
            }
            if "IP" in ar["attrs"]:
                filled["IP"] = dummy.ip_at(ar, index)
            for key in ("PHYDEV", "VLAN_ID", "OUTER_VLAN_ID"):
                if vt.get(key):
                    filled[key] = vt.get(key)
            for key in inherit:
                value = vt.get(key) or ar["attrs"].get(key)
                if value:
                    filled[key] = value
            for key, value in nic.items():
                if key not in ("NETWORK", "NETWORK_ID", "NETWORK_UNAME", "NETWORK_UID"):
                    filled[key] = value
            if "NETWORK_UNAME" in nic:
                filled["NETWORK_UNAME"] = nic["NETWORK_UNAME"]
            nic.clear()
            nic.update(filled)
            leased.append(nic)
            if vm_id not in vn["updated_vms"]:
                vn["updated_vms"].append(vm_id)
            cloud.touch("vnet", vn)
            nic_id += 1
    except OneError:
        for nic in leased:
            cloud.free_lease(nic, vm_id)
        raise
    return leased


def context_for(
    cloud: Cloud, caller: Caller, vm_id: int, name: str, tmpl: Template, context: dict[str, str]
) -> dict[str, str]:
    """CONTEXT with `$USER[...]`-style variables resolved and ETHx_* for each NIC."""
    user = cloud.pools["user"].get(caller.uid)
    user_tmpl = Template.from_json(user["template"]) if user else Template()
    variables = {
        "UID": str(caller.uid),
        "UNAME": caller.name,
        "GID": str(caller.gid),
        "GNAME": caller.gname,
        "NAME": name,
        "VMID": str(vm_id),
        "TEMPLATE_ID": tmpl.get("TEMPLATE_ID") or "",
    }

    def resolve(value: str) -> str:
        import re

        def user_attr(m: re.Match) -> str:
            return user_tmpl.get(m.group(1).strip()) or ""

        value = re.sub(r"\$USER\[([A-Za-z0-9_ ]+)\]", user_attr, value)
        return re.sub(r"\$([A-Z_]+)", lambda m: variables.get(m.group(1), m.group(0)), value)

    out = {k: resolve(v) for k, v in context.items()}
    disks = tmpl.vectors("DISK")
    out["DISK_ID"] = str(len(disks))
    out.setdefault("TARGET", "hda")
    if out.get("NETWORK", "").upper() == "YES":
        for i, nic in enumerate(tmpl.vectors("NIC")):
            vn = cloud.pools["vnet"].get(int(nic["NETWORK_ID"]))
            vt = Template.from_json(vn["template"]) if vn else Template()
            eth = {
                "DNS": vt.get("DNS", ""),
                "EXTERNAL": "",
                "GATEWAY": vt.get("GATEWAY", ""),
                "IP": nic.get("IP", ""),
                "IP6": "",
                "IP6_GATEWAY": "",
                "IP6_METHOD": "",
                "IP6_METRIC": "",
                "IP6_PREFIX_LENGTH": "",
                "IP6_ULA": "",
                "MAC": nic.get("MAC", ""),
                "MASK": vt.get("NETWORK_MASK", ""),
                "METHOD": "",
                "METRIC": "",
                "MTU": vt.get("GUEST_MTU", ""),
                "NETWORK": vt.get("NETWORK_ADDRESS", ""),
                "SEARCH_DOMAIN": vt.get("SEARCH_DOMAIN", ""),
                "VLAN_ID": vt.get("VLAN_ID", ""),
                "VROUTER_IP": "",
                "VROUTER_IP6": "",
                "VROUTER_MANAGEMENT": "",
            }
            for key, value in eth.items():
                out.setdefault(f"ETH{i}_{key}", value)
    return out


def security_rules(cloud: Cloud, tmpl: Template) -> list[dict[str, str]]:
    rules = []
    seen: set[int] = set()
    for nic in tmpl.vectors("NIC"):
        for sg_id in (nic.get("SECURITY_GROUPS") or "").split(","):
            if not sg_id.strip().isdigit() or int(sg_id) in seen:
                continue
            seen.add(int(sg_id))
            sg = cloud.pools["secgroup"].get(int(sg_id))
            if sg is None:
                continue
            for rule in Template.from_json(sg["template"]).vectors("RULE"):
                rules.append(
                    {**rule, "SECURITY_GROUP_ID": str(sg["id"]), "SECURITY_GROUP_NAME": sg["name"]}
                )
    return rules


def create_vm(
    cloud: Cloud,
    caller: Caller,
    method: str,
    tmpl: Template,
    hold: bool,
    default_name: str = "one",
) -> int:
    """`one.vm.allocate` / `one.template.instantiate`: check, build, lease, queue."""
    cloud.authorize(caller, "vm", None, CREATE, method)
    if not _positive_int(tmpl.get("MEMORY")):
        raise allocate_error("vm", method, "MEMORY attribute must be a positive integer value.")
    if not _positive_float(tmpl.get("CPU")):
        raise allocate_error(
            "vm", method, "CPU attribute must be a positive float or integer value."
        )
    if tmpl.get("VCPU") is not None and not _positive_int(tmpl.get("VCPU")):
        raise allocate_error("vm", method, "VCPU attribute must be a positive integer value.")
    cpu, memory = float(tmpl.get("CPU")), float(tmpl.get("MEMORY"))
    cloud.check_vm_quota(
        caller,
        {
            "VMS": 1,
            "CPU": cpu,
            "MEMORY": memory,
            "RUNNING_VMS": 1,
            "RUNNING_CPU": cpu,
            "RUNNING_MEMORY": memory,
        },
        method,
    )
    vm_id = cloud.next_ids.get("vm", 0)
    name = tmpl.get("NAME") or f"{default_name}-{vm_id}"
    tmpl.erase("NAME")
    user_tmpl = Template([(n, v) for n, v in tmpl if n not in VM_TEMPLATE_ATTRS])
    vm_tmpl = Template([(n, v) for n, v in tmpl if n in VM_TEMPLATE_ATTRS])
    disks = expand_disks(cloud, caller, vm_tmpl, vm_id, method)
    nics = expand_nics(cloud, caller, vm_tmpl, vm_id, method)
    cloud.new_id("vm")
    for _disk, image in disks:
        if image is not None:
            image["vms"].append(vm_id)
            image["prev_state"], image["state"] = image["state"], 8 if image["persistent"] else 2
            cloud.touch("image", image)
    context = vm_tmpl.vector("CONTEXT")
    if context is not None:
        vm_tmpl.erase("CONTEXT")
        vm_tmpl.add("CONTEXT", context_for(cloud, caller, vm_id, name, vm_tmpl, context))
    for rule in security_rules(cloud, vm_tmpl):
        vm_tmpl.add("SECURITY_GROUP_RULE", rule)
    # Every image datastore and network constrains the clusters the VM may run in.
    cluster_sets = [
        {int(c) for c in spec.get("CLUSTER_ID", "").split(",") if c}
        for spec in [d for d, image in disks if image is not None] + nics
    ]
    clusters = sorted(set.intersection(*cluster_sets)) if cluster_sets else []
    if cluster_sets and not clusters:
        for nic in nics:
            cloud.free_lease(nic, vm_id)
        raise allocate_error("vm", method, "Incompatible cluster IDs in DISK and NIC.")
    reqs = "!(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)"
    if clusters:
        cl = " | ".join(f"CLUSTER_ID = {c}" for c in clusters)
        reqs = f"({cl}) & {reqs}"
        ds_cl = " | ".join(f'"CLUSTERS/ID" @> {c}' for c in clusters)
        vm_tmpl.replace("AUTOMATIC_DS_REQUIREMENTS", f"({ds_cl})")
        if nics:
            vm_tmpl.replace("AUTOMATIC_NIC_REQUIREMENTS", f"({ds_cl})")
    vm_tmpl.replace("AUTOMATIC_REQUIREMENTS", reqs)
    os_vec = vm_tmpl.vector("OS") or {}
    vm_tmpl.erase("OS")
    os_vec.setdefault("UUID", new_uuid())
    vm_tmpl.add("OS", os_vec)
    if hold:
        vm_tmpl.replace("SUBMIT_ON_HOLD", "YES")
    vm_tmpl.replace("VMID", str(vm_id))
    vm = cloud.owned(vm_id, name, caller)
    vm.update(
        last_poll=0,
        state=st.HOLD if hold else st.PENDING,
        lcm_state=0,
        prev_state=st.HOLD if hold else st.PENDING,
        prev_lcm_state=0,
        resched=0,
        stime=now(),
        etime=0,
        deploy_id="",
        monitoring={},
        template=vm_tmpl.to_json(),
        user_template=user_tmpl.to_json(),
        history=[],
        due=None if hold else time.time() + cloud.lifecycle.schedule,
    )
    cloud.add("vm", vm)
    return vm_id


@rpc("one.vm.allocate", "sb", 1)
def vm_allocate(cloud: Cloud, caller: Caller, method: str, text: str, hold: bool = False) -> int:
    tmpl = parse(text, method)
    return create_vm(cloud, caller, method, tmpl, hold)


@rpc("one.vm.info", "ib", 1)
def vm_info(cloud: Cloud, caller: Caller, method: str, vid: int, decrypt: bool = False) -> str:
    return documents.vm_full(cloud.fetch(caller, "vm", vid, USE, method))


@rpc("one.vm.monitoring", "i")
def vm_monitoring(cloud: Cloud, caller: Caller, method: str, vid: int) -> str:
    return documents.vm_monitoring(cloud.fetch(caller, "vm", vid, USE, method))


def vm_pool(
    cloud: Cloud, caller: Caller, method: str, flag: int, start: int, end: int, state: int
) -> list[Obj]:
    if state < -2 or state > st.CLONING_FAILURE:
        raise api_error(method, "Incorrect filter_flag, state")
    vms = list_pool(cloud, caller, "vm", flag, -1, -1, method)
    if state == -1:
        vms = [v for v in vms if v["state"] != st.DONE]
    elif state >= 0:
        vms = [v for v in vms if v["state"] == state]
    if end >= -1 and start != -1:
        vms = [v for v in vms if v["id"] >= start and (end == -1 or v["id"] <= end)]
    if end < -1:
        offset = max(start, 0)
        vms = vms[offset : offset - end]
    return vms


@rpc("one.vmpool.info", "iiiis", 4)
def vmpool_info(
    cloud: Cloud,
    caller: Caller,
    method: str,
    flag: int,
    start: int,
    end: int,
    state: int,
    query: str = "",
) -> str:
    if query:
        raise OneError(
            INTERNAL, f"[{method}] JSON query search is not supported by the SQL backend"
        )
    vms = vm_pool(cloud, caller, method, flag, start, end, state)
    return documents.pool("VM_POOL", [documents.vm_short(v) for v in vms])


@rpc("one.vmpool.infoextended", "iiiis", 4)
def vmpool_infoextended(
    cloud: Cloud,
    caller: Caller,
    method: str,
    flag: int,
    start: int,
    end: int,
    state: int,
    query: str = "",
) -> str:
    if query:
        raise OneError(
            INTERNAL, f"[{method}] JSON query search is not supported by the SQL backend"
        )
    vms = vm_pool(cloud, caller, method, flag, start, end, state)
    return documents.pool("VM_POOL", [documents.vm_full(v, all_history=False) for v in vms])


@rpc("one.vmpool.infoset", "sb")
def vmpool_infoset(cloud: Cloud, caller: Caller, method: str, ids: str, extended: bool) -> str:
    try:
        wanted = {int(x) for x in ids.split(",") if x.strip()}
    except ValueError:
        raise api_error(method, "Wrong list of IDs") from None
    vms = [v for v in list_pool(cloud, caller, "vm", -2, -1, -1, method) if v["id"] in wanted]
    render = (lambda v: documents.vm_full(v, False)) if extended else documents.vm_short
    return documents.pool("VM_POOL", [render(v) for v in vms])


@rpc("one.vm.update", "isi", 2)
def vm_update(
    cloud: Cloud, caller: Caller, method: str, vid: int, text: str, append: int = 0
) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    update_template(vm, text, append, method, key="user_template")
    cloud.touch("vm", vm)
    return vid


@rpc("one.vm.updateconf", "isi", 2)
def vm_updateconf(
    cloud: Cloud, caller: Caller, method: str, vid: int, text: str, append: int = 0
) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    if vm["state"] == st.DONE:
        raise OneError(ACTION, f"[{method}] Configuration cannot be updated in state DONE", vid)
    new = parse(text, method)
    tmpl = Template.from_json(vm["template"])
    allowed = {
        "OS",
        "FEATURES",
        "INPUT",
        "GRAPHICS",
        "RAW",
        "CONTEXT",
        "CPU_MODEL",
        "BACKUP_CONFIG",
    }
    for name in new.names() & allowed:
        values = new.vectors(name)
        if append == 1 and tmpl.vector(name) is not None and values:
            merged = dict(tmpl.vector(name))
            merged.update(values[0])
            values = [merged]
        tmpl.erase(name)
        for value in values:
            tmpl.add(name, value)
    vm["template"] = tmpl.to_json()
    cloud.touch("vm", vm)
    return vid


def wrong_state(method: str, action: str, vm: Obj) -> OneError:
    return OneError(
        ACTION,
        f'[{method}] Error performing action "{action}": This action is not available for '
        f"state {st.state_name(vm)}",
    )


VM_ACTIONS = {
    "terminate",
    "terminate-hard",
    "undeploy",
    "undeploy-hard",
    "hold",
    "release",
    "stop",
    "suspend",
    "resume",
    "reboot",
    "reboot-hard",
    "poweroff",
    "poweroff-hard",
    "resched",
    "unresched",
}


@rpc("one.vm.action", "si")
def vm_action(cloud: Cloud, caller: Caller, method: str, action: str, vid: int) -> int:
    if action not in VM_ACTIONS:
        raise OneError(ACTION, f'[{method}] Action "{action}" is not supported')
    vm = cloud.get("vm", vid, method)
    cloud.authorize(caller, "vm", vm, ADMIN if action in st.ADMIN_ACTIONS else MANAGE, method)
    lc = cloud.lifecycle
    state, lcm = vm["state"], vm["lcm_state"]
    running = state == st.ACTIVE and lcm in (st.RUNNING, st.UNKNOWN)
    if action in ("terminate", "terminate-hard"):
        if running or (action == "terminate-hard" and state == st.ACTIVE and lcm == st.SHUTDOWN):
            cloud.close_history(vm, action, caller)
            cloud.set_state(vm, st.ACTIVE, st.SHUTDOWN, lc.shutdown)
        elif state in (st.POWEROFF, st.SUSPENDED, st.STOPPED, st.UNDEPLOYED):
            cloud.close_history(vm, action, caller)
            if vm["history"]:
                vm["history"][-1]["estime"] = now()
            cloud.set_state(vm, st.ACTIVE, st.EPILOG, lc.epilog)
        elif state in (st.INIT, st.PENDING, st.HOLD, st.CLONING, st.CLONING_FAILURE) or (
            state == st.ACTIVE and lcm in st.FAILURE_LCM
        ):
            cloud.close_history(vm, action, caller)
            cloud.finish(vm)
        else:
            raise wrong_state(method, action, vm)
    elif action in ("undeploy", "undeploy-hard"):
        if running:
            cloud.close_history(vm, action, caller)
            cloud.set_state(vm, st.ACTIVE, st.SHUTDOWN_UNDEPLOY, lc.shutdown)
        elif state == st.POWEROFF:
            cloud.close_history(vm, action, caller)
            vm["history"][-1]["estime"] = now()
            cloud.set_state(vm, st.ACTIVE, st.EPILOG_UNDEPLOY, lc.epilog)
        else:
            raise wrong_state(method, action, vm)
    elif action == "stop":
        if state == st.ACTIVE and lcm == st.RUNNING:
            cloud.close_history(vm, action, caller)
            cloud.set_state(vm, st.ACTIVE, st.SAVE_STOP, lc.shutdown)
        elif state == st.SUSPENDED:
            cloud.close_history(vm, action, caller)
            vm["history"][-1]["estime"] = now()
            cloud.set_state(vm, st.ACTIVE, st.EPILOG_STOP, lc.epilog)
        else:
            raise wrong_state(method, action, vm)
    elif action == "suspend":
        if not (state == st.ACTIVE and lcm == st.RUNNING):
            raise wrong_state(method, action, vm)
        cloud.close_history(vm, action, caller)
        cloud.set_state(vm, st.ACTIVE, st.SAVE_SUSPEND, lc.shutdown)
    elif action in ("poweroff", "poweroff-hard"):
        if not (running or (action == "poweroff-hard" and lcm == st.SHUTDOWN_POWEROFF)):
            raise wrong_state(method, action, vm)
        cloud.close_history(vm, action, caller)
        cloud.set_state(vm, st.ACTIVE, st.SHUTDOWN_POWEROFF, lc.shutdown)
    elif action == "resume":
        resume(cloud, caller, method, vm)
    elif action in ("reboot", "reboot-hard"):
        if not (state == st.ACTIVE and lcm == st.RUNNING):
            raise wrong_state(method, action, vm)
    elif action == "hold":
        if state != st.PENDING:
            raise wrong_state(method, action, vm)
        cloud.set_state(vm, st.HOLD)
    elif action == "release":
        if state != st.HOLD:
            raise wrong_state(method, action, vm)
        cloud.set_state(vm, st.PENDING, 0, lc.schedule)
    elif action in ("resched", "unresched"):
        if not (running or state == st.POWEROFF):
            raise wrong_state(method, action, vm)
        vm["resched"] = int(action == "resched")
        cloud.touch("vm", vm)
    return vid


def resume(cloud: Cloud, caller: Caller, method: str, vm: Obj) -> None:
    state, lcm = vm["state"], vm["lcm_state"]
    tmpl = Template.from_json(vm["template"])
    cpu, memory = float(tmpl.get("CPU", "0")), float(tmpl.get("MEMORY", "0"))
    if state in (st.STOPPED, st.UNDEPLOYED):
        cloud.check_vm_quota(
            caller,
            {"RUNNING_VMS": 1, "RUNNING_CPU": cpu, "RUNNING_MEMORY": memory},
            method,
            user=cloud.pools["user"].get(vm["uid"]),
        )
        vm["resume_from"] = state
        cloud.set_state(vm, st.PENDING, 0, cloud.lifecycle.schedule)
    elif state in (st.SUSPENDED, st.POWEROFF) or (state == st.ACTIVE and lcm == st.UNKNOWN):
        nxt = {st.SUSPENDED: st.BOOT_SUSPENDED, st.POWEROFF: st.BOOT_POWEROFF}.get(
            state, st.BOOT_UNKNOWN
        )
        cloud.copy_history(vm)
        cloud.set_state(vm, st.ACTIVE, nxt, cloud.lifecycle.boot)
    else:
        raise wrong_state(method, "resume", vm)


@rpc("one.vm.deploy", "iibis", 2)
def vm_deploy(
    cloud: Cloud,
    caller: Caller,
    method: str,
    vid: int,
    hid: int,
    enforce: bool = False,
    ds_id: int = -1,
    nic_tmpl: str = "",
) -> int:
    vm = cloud.get("vm", vid, method)
    cloud.authorize(caller, "vm", vm, ADMIN, method)
    host = cloud.get("host", hid, method)
    cloud.authorize(caller, "host", infra(host), MANAGE, method)
    if vm["state"] not in (st.PENDING, st.HOLD, st.STOPPED, st.UNDEPLOYED):
        raise OneError(
            ACTION, f"[{method}] Deploy action is not available for state {st.state_name(vm)}", vid
        )
    if host["state"] == 8:
        raise OneError(ACTION, f"[{method}] Host is offline, cannot use it to deploy VM", vid)
    if enforce:
        tmpl = Template.from_json(vm["template"])
        usage = cloud.host_usage(hid)
        if (
            usage["cpu"] + float(tmpl.get("CPU", "0")) * 100 > host["max_cpu"]
            or usage["memory"] + int(float(tmpl.get("MEMORY", "0"))) * 1024 > host["max_mem"]
        ):
            raise OneError(
                ACTION,
                f"[{method}] Host {hid} does not have enough capacity to deploy VM {vid}",
                vid,
            )
    if vm["state"] in (st.STOPPED, st.UNDEPLOYED):
        vm["resume_from"] = vm["state"]
    cloud.deploy(vm, host, 0 if ds_id == -1 else ds_id)
    return vid


@rpc("one.vm.resize", "isb", 2)
def vm_resize(
    cloud: Cloud, caller: Caller, method: str, vid: int, text: str, enforce: bool = False
) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    allowed = (st.PENDING, st.HOLD, st.POWEROFF, st.UNDEPLOYED, st.CLONING, st.CLONING_FAILURE)
    if vm["state"] not in allowed and not (
        vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING
    ):
        raise OneError(
            ACTION, f"[{method}] Resize action is not available for state {st.state_name(vm)}", vid
        )
    new = parse(text, method)
    tmpl = Template.from_json(vm["template"])
    if new.get("CPU") is not None and not _positive_float(new.get("CPU")):
        raise OneError(ACTION, f"[{method}] CPU must be a positive float or integer value.", vid)
    if new.get("MEMORY") is not None and not _positive_int(new.get("MEMORY")):
        raise OneError(ACTION, f"[{method}] MEMORY must be a positive integer value.", vid)
    if new.get("VCPU") is not None and not _positive_int(new.get("VCPU")):
        raise OneError(ACTION, f"[{method}] VCPU must be a positive integer value.", vid)
    d_cpu = float(new.get("CPU") or tmpl.get("CPU")) - float(tmpl.get("CPU"))
    d_mem = float(new.get("MEMORY") or tmpl.get("MEMORY")) - float(tmpl.get("MEMORY"))
    cloud.check_vm_quota(
        caller,
        {"CPU": max(d_cpu, 0), "MEMORY": max(d_mem, 0)},
        method,
        user=cloud.pools["user"].get(vm["uid"]),
    )
    if st.holds_host(vm) and (d_cpu > 0 or d_mem > 0):
        host = cloud.pools["host"][vm["history"][-1]["hid"]]
        usage = cloud.host_usage(host["id"])
        if (
            usage["cpu"] + d_cpu * 100 > host["max_cpu"]
            or usage["memory"] + d_mem * 1024 > host["max_mem"]
        ):
            raise OneError(
                ACTION, f"[{method}] Host {host['id']} does not have enough capacity", vid
            )
    for key in ("CPU", "MEMORY", "VCPU"):
        if new.get(key) is not None:
            tmpl.replace(key, new.get(key))
    vm["template"] = tmpl.to_json()
    cloud.touch("vm", vm)
    return vid


def hotplug_state(method: str, vm: Obj, what: str) -> None:
    if not (
        vm["state"] == st.POWEROFF or (vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING)
    ):
        raise OneError(
            ACTION,
            f"[{method}] Could not {what} on VM {vm['id']}, wrong state {st.state_name(vm)}.",
            vm["id"],
        )


@rpc("one.vm.attach", "is")
def vm_attach(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "attach a new disk")
    new = parse(text, method)
    disks = new.vectors("DISK")
    if len(disks) != 1:
        raise OneError(ACTION, f"[{method}] Wrong number of DISK attributes.", vid)
    tmpl = Template.from_json(vm["template"])
    existing = tmpl.vectors("DISK")
    next_id = max([int(d["DISK_ID"]) for d in existing] + [len(existing) - 1]) + 1
    context = tmpl.vector("CONTEXT")
    if context is not None and context.get("DISK_ID", "").isdigit():
        next_id = max(next_id, int(context["DISK_ID"]) + 1)
    probe = Template([("DISK", disks[0])] + [("DISK", d) for d in existing])
    filled = expand_disks(cloud, caller, Template([("DISK", disks[0])]), vid, method, next_id)
    disk, image = filled[0]
    taken = {d.get("TARGET") for _, d in probe if isinstance(d, dict) and d is not disks[0]}
    if disk.get("TARGET") in taken:
        prefix = disk.get("DEV_PREFIX", "sd")
        for letter in "abcdefghijklmnopqrstuvwxyz":
            if prefix + letter not in taken:
                disk["TARGET"] = prefix + letter
                break
    if image is not None:
        image["vms"].append(vid)
        image["prev_state"], image["state"] = image["state"], 8 if image["persistent"] else 2
        cloud.touch("image", image)
    tmpl.add("DISK", disk)
    vm["template"] = tmpl.to_json()
    cloud.close_history(vm, "disk-attach", caller)
    if vm["state"] == st.ACTIVE:
        cloud.set_state(vm, st.ACTIVE, st.HOTPLUG, 0)
    cloud.touch("vm", vm)
    return vid


@rpc("one.vm.detach", "ii")
def vm_detach(cloud: Cloud, caller: Caller, method: str, vid: int, disk_id: int) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "detach disk")
    tmpl = Template.from_json(vm["template"])
    disks = tmpl.vectors("DISK")
    target = next((d for d in disks if d.get("DISK_ID") == str(disk_id)), None)
    if target is None:
        raise OneError(ACTION, f"[{method}] VM {vid}: DISK {disk_id} does not exist.", vid)
    tmpl.attrs = [(n, v) for n, v in tmpl.attrs if v is not target]
    cloud.release_image(target, vid)
    vm["template"] = tmpl.to_json()
    if vm["state"] == st.ACTIVE:
        cloud.set_state(vm, st.ACTIVE, st.HOTPLUG, 0)
    cloud.touch("vm", vm)
    return vid


@rpc("one.vm.attachnic", "is")
def vm_attachnic(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "attach a new NIC")
    new = parse(text, method)
    nics = new.vectors("NIC")
    if len(nics) != 1:
        raise OneError(ACTION, f"[{method}] Wrong number of NIC attributes.", vid)
    tmpl = Template.from_json(vm["template"])
    existing = tmpl.vectors("NIC")
    next_id = max([int(n["NIC_ID"]) for n in existing] + [-1]) + 1
    vm_caller = (
        cloud.caller_for(cloud.pools["user"][vm["uid"]])
        if vm["uid"] in cloud.pools["user"]
        else caller
    )
    filled = expand_nics(cloud, vm_caller, Template([("NIC", nics[0])]), vid, method, next_id)
    tmpl.add("NIC", filled[0])
    for rule in security_rules(cloud, Template([("NIC", filled[0])])):
        if rule not in tmpl.vectors("SECURITY_GROUP_RULE"):
            tmpl.add("SECURITY_GROUP_RULE", rule)
    vm["template"] = tmpl.to_json()
    if vm["state"] == st.ACTIVE:
        cloud.set_state(vm, st.ACTIVE, st.HOTPLUG_NIC, 0)
    cloud.touch("vm", vm)
    return vid


@rpc("one.vm.detachnic", "ii")
def vm_detachnic(cloud: Cloud, caller: Caller, method: str, vid: int, nic_id: int) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "detach NIC")
    tmpl = Template.from_json(vm["template"])
    target = next((n for n in tmpl.vectors("NIC") if n.get("NIC_ID") == str(nic_id)), None)
    if target is None:
        raise OneError(ACTION, f"[{method}] VM {vid}: NIC {nic_id} does not exist.", vid)
    tmpl.attrs = [(n, v) for n, v in tmpl.attrs if v is not target]
    cloud.release_resources(vm, nics=[target])
    vm["template"] = tmpl.to_json()
    if vm["state"] == st.ACTIVE:
        cloud.set_state(vm, st.ACTIVE, st.HOTPLUG_NIC, 0)
    cloud.touch("vm", vm)
    return vid


@rpc("one.vm.disksaveas", "iissi")
def vm_disksaveas(
    cloud: Cloud,
    caller: Caller,
    method: str,
    vid: int,
    disk_id: int,
    name: str,
    img_type: str,
    snap_id: int,
) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    if not (
        vm["state"] in (st.POWEROFF, st.SUSPENDED)
        or (vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING)
    ):
        raise OneError(
            INTERNAL, f"[{method}] VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.", vid
        )
    tmpl = Template.from_json(vm["template"])
    disk = next((d for d in tmpl.vectors("DISK") if d.get("DISK_ID") == str(disk_id)), None)
    if disk is None or not disk.get("IMAGE_ID", "").isdigit():
        raise OneError(INTERNAL, f"[{method}] Cannot use DISK. Disk {disk_id} has no image.", vid)
    src = cloud.get("image", int(disk["IMAGE_ID"]), method)
    ds = cloud.fetch(caller, "datastore", src["datastore_id"], USE, method)
    cloud.authorize(caller, "image", None, CREATE, method)
    type_name = (img_type or IMAGE_TYPE_NAMES[src["type"]]).upper()
    if type_name not in IMAGE_TYPES:
        raise OneError(INTERNAL, f"[{method}] Cannot save_as image of type {type_name}", vid)
    size = int(float(disk.get("SIZE", src["size"])))
    if size > ds["total_mb"] - cloud.datastore_used(ds["id"]):
        raise OneError(ACTION, f"[{method}] Not enough space in datastore", vid)
    try:
        cloud.check_name("image", name, caller.uid, method)
    except OneError as err:
        raise OneError(ALLOCATE, err.message.replace("virtual machine", "image"), vid) from None
    # Like `VirtualMachineDiskSaveas`: a fresh template, not a copy of the source image's.
    new_tmpl = Template([("NAME", name)])
    src_tmpl = Template.from_json(src["template"])
    for key in ("DEV_PREFIX", "DRIVER"):
        if src_tmpl.get(key):
            new_tmpl.replace(key, src_tmpl.get(key))
    new_tmpl.replace("SAVED_DISK_ID", str(disk_id))
    new_tmpl.replace("SAVED_IMAGE_ID", str(src["id"]))
    new_tmpl.replace("SAVED_VM_ID", str(vid))
    new_tmpl.replace("SAVE_AS_HOT", "YES")
    image = new_image(cloud, caller, method, new_tmpl, ds, size, "", IMAGE_TYPES[type_name], False)
    image["path"] = ""
    return image["id"]


@rpc("one.vm.disksnapshotcreate", "iis")
def vm_disksnapshotcreate(
    cloud: Cloud, caller: Caller, method: str, vid: int, disk_id: int, name: str
) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    if not (
        vm["state"] in (st.POWEROFF, st.SUSPENDED)
        or (vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING)
    ):
        raise OneError(
            ACTION,
            f'[{method}] Error performing action "disk-snapshot-create": This action is not '
            f"available for state {st.state_name(vm)}",
            vid,
        )
    tmpl = Template.from_json(vm["template"])
    disk = next((d for d in tmpl.vectors("DISK") if d.get("DISK_ID") == str(disk_id)), None)
    if disk is None:
        raise OneError(ACTION, f"[{method}] VM disk does not exist", vid)
    snaps = vm.setdefault("snapshots", {}).setdefault(
        str(disk_id), {"list": [], "current": -1, "next": 0}
    )
    snap_id = snaps["next"]
    snaps["list"].append(
        {
            "id": snap_id,
            "name": name or f"snapshot-{snap_id}",
            "date": now(),
            "size": disk.get("SIZE", "0"),
        }
    )
    snaps["next"] += 1
    snaps["current"] = snap_id
    cloud.touch("vm", vm)
    return snap_id


@rpc("one.vm.disksnapshotdelete", "iii")
def vm_disksnapshotdelete(
    cloud: Cloud, caller: Caller, method: str, vid: int, disk_id: int, snap_id: int
) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    snaps = vm.get("snapshots", {}).get(str(disk_id))
    if snaps is None or not any(s["id"] == snap_id for s in snaps["list"]):
        raise OneError(ACTION, f"[{method}] Snapshot does not exist", vid)
    snaps["list"] = [s for s in snaps["list"] if s["id"] != snap_id]
    if snaps["current"] == snap_id:
        snaps["current"] = -1
    cloud.touch("vm", vm)
    return snap_id


@rpc("one.vm.recover", "ii")
def vm_recover(cloud: Cloud, caller: Caller, method: str, vid: int, op: int) -> int:
    vm = cloud.get("vm", vid, method)
    cloud.authorize(caller, "vm", vm, ADMIN, method)
    transient = vm.get("due") is not None or (
        vm["state"] == st.ACTIVE and vm["lcm_state"] in st.FAILURE_LCM
    )
    if op in (0, 1, 2):
        if not transient or vm["state"] == st.PENDING:
            raise OneError(
                ACTION,
                f"[{method}] Recover action is not available for state {st.state_name(vm)}",
                vid,
            )
        if op in (1, 2):
            cloud.step(vm)
        return vid
    if op == 3:
        if vm["state"] == st.DONE:
            raise OneError(ACTION, f"[{method}] VM is already DONE", vid)
        cloud.close_history(vm, "recover", caller)
        cloud.finish(vm)
    elif op == 4:
        cloud.release_resources(vm)
        tmpl = Template.from_json(vm["template"])
        vm["history"] = []
        vm["deploy_id"] = ""
        vm["template"] = tmpl.to_json()
        cloud.set_state(vm, st.PENDING, 0, cloud.lifecycle.schedule)
    elif op == 5:
        cloud.release_resources(vm)
        cloud.remove("vm", vid)
    else:
        raise api_error(method, "Wrong recover operation code")
    return vid
