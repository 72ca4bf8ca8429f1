"""`one.user.*`, `one.userpool.info`, `one.group.*`, `one.grouppool.info`."""

from __future__ import annotations

import hashlib
import secrets
import time

from ec2gw.onesim import acl, documents
from ec2gw.onesim.acl import ADMIN, CREATE, MANAGE, USE, Caller
from ec2gw.onesim.api.base import (
    Obj,
    allocate_error,
    api_error,
    parse,
    rpc,
    update_template,
)
from ec2gw.onesim.cloud import Cloud, sha256
from ec2gw.onesim.rpc import (
    ACTION,
    INTERNAL,
    NO_EXISTS,
    OneError,
)


def user_auth_view(user: Obj) -> Obj:
    """A user as an owned object: it owns itself (`User` has uid = its own id)."""
    return {"id": user["id"], "uid": user["id"], "gid": user["gid"]}


def fetch_user(cloud: Cloud, caller: Caller, uid: int, op: int, method: str) -> Obj:
    user = cloud.get("user", uid, method)
    cloud.authorize(caller, "user", user_auth_view(user), op, method)
    return user


_BAD_NAME = set(" :\t\n\v\f\r")
_BAD_USER_NAME = "&|:\\\";/'#{}$<>\t\n\v\f\r :"  # PoolObjectSQL's and User's
_BAD_PASSWORD = " \t\n\v\f\r"


def _password_problem(password: str) -> str:
    """`User::pass_is_valid`'s message, or ''."""
    if not password:
        return "Invalid password, it cannot be empty"
    bad = next((c for c in password if c in _BAD_PASSWORD), None)
    return f"Invalid password, character '{bad}' is not allowed" if bad else ""


def _name_problem(name: str) -> str:
    """`PoolObjectSQL::name_is_valid`'s message for a user name, or ''."""
    if not name:
        return "Invalid NAME, it cannot be empty"
    bad = next((c for c in name if c in _BAD_USER_NAME), None)
    if bad:
        return f"Invalid NAME, char '{bad}' is not allowed"
    return "Invalid NAME, max length is 128 chars" if len(name) > 128 else ""


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
    # UserPool::allocate's errors are INTERNAL failures with its message alone
    # (UserAllocate::pool_allocate): password, then name, then duplicates
    problem = (_password_problem(password) if driver == "core" else "") or _name_problem(name)
    if problem:
        raise OneError(INTERNAL, f"[{method}] {problem}.")
    for user in cloud.pools["user"].values():
        if user["name"] == name:
            raise OneError(INTERNAL, f"[{method}] NAME is already taken by USER {user['id']}.")
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
    update_template(user, text, append, method, kind="user")
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
