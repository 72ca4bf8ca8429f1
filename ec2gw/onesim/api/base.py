"""The method registry, `dispatch`, and helpers shared by the methods of every object.

Each method is registered with its parameter types after the session (`i` int, `s` string,
`b` boolean, `A` array) and how many are required; `dispatch` authenticates first, then
checks the parameters (a wrong type or a missing one is an XML-RPC fault −501, as
xmlrpc-c's `paramList::getInt` etc. raise), then runs the method under the cloud lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ec2gw.onesim.acl import ADMIN, MANAGE, USE, Caller
from ec2gw.onesim.cloud import OBJECT_NAMES, Cloud
from ec2gw.onesim.rpc import (
    ACTION,
    ALLOCATE,
    FAULT_NO_SUCH_METHOD,
    FAULT_TYPE,
    INTERNAL,
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


def parse(text: str, method: str, replace_mode: bool = False) -> Template:
    try:
        return Template.parse(text, replace_mode)
    except TemplateError as err:
        raise OneError(INTERNAL, f"[{method}] {err}") from None


def allocate_error(kind: str, method: str, text: str) -> OneError:
    return OneError(ALLOCATE, f"[{method}] Error allocating a new {OBJECT_NAMES[kind]}. {text}")


def api_error(method: str, text: str) -> OneError:
    return OneError(XML_RPC_API, f"[{method}] {text}")


# Object kinds whose templates oned keeps in replace mode (ImageTemplate, UserTemplate).
REPLACE_MODE = {"image", "user"}


def update_template(
    obj: Obj, text: str, append: int, method: str, key: str = "template", kind: str = ""
) -> None:
    """`one.<kind>.update`: replace the template (0) or merge into it (1)."""
    replace_mode = kind in REPLACE_MODE
    new = parse(text, method, replace_mode)
    if append == 1:
        merged = Template.from_json(obj.get(key, []), replace_mode)
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
