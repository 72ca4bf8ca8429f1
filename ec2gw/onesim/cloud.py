"""The state of the embedded OpenNebula: pools, identities, the VM lifecycle and scheduler.

Everything runs under one lock; a call reads and changes the in-memory pools and, before
its reply is sent, the objects it changed are written to SQLite (`Store`). Timed lifecycle
steps (PROLOG → BOOT → RUNNING, SHUTDOWN → EPILOG → DONE, …) are kept as a `due` time on
the VM; `advance()` performs every step that is due, repeatedly, so with zero delays a VM
is RUNNING when `one.vm.allocate` returns, and with delays a background ticker (and every
call) moves them on.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ec2gw.onesim import acl, dummy
from ec2gw.onesim import states as st
from ec2gw.onesim.acl import Caller, Rule
from ec2gw.onesim.requirements import RequirementError, matches
from ec2gw.onesim.rpc import (
    ALLOCATE,
    AUTHENTICATION,
    AUTHORIZATION,
    NO_EXISTS,
    OneError,
)
from ec2gw.onesim.store import MEMBER_FIELDS, MemberChange, Store
from ec2gw.onesim.template import Template, cdata
from ec2gw.onesim.usage import QUOTA_METRICS, VmIndex

Obj = dict[str, Any]

# A disk's attributes while oned saves it (`VirtualMachineDisk::clear_saveas`).
SAVE_AS_DISK_KEYS = (
    "HOTPLUG_SAVE_AS",
    "HOTPLUG_SAVE_AS_SOURCE",
    "HOTPLUG_SAVE_AS_SNAPSHOT_ID",
    "HOTPLUG_SAVE_AS_ACTIVE",
)

# Words oned uses for objects in messages (`RequestLogger::object_name`).
OBJECT_NAMES = {
    "vm": "virtual machine",
    "host": "host",
    "vnet": "virtual network",
    "image": "image",
    "user": "user",
    "template": "virtual machine template",
    "group": "group",
    "datastore": "datastore",
    "cluster": "cluster",
    "zone": "zone",
    "secgroup": "security group",
    "acl": "ACL",
}
KINDS = tuple(OBJECT_NAMES)

# First id of objects created after bootstrap (oned reserves 0–99 for system objects).
FIRST_ID = {"group": 100, "cluster": 100, "datastore": 100, "zone": 100, "secgroup": 100}

# The default security group's DESCRIPTION (`SecurityGroupPool`).
DEFAULT_SG_DESCRIPTION = (
    "The default security group is added to every network. Use it to add default filter "
    "rules for your networks. You may remove this security group from any network by "
    "updating its properties."
)

SCHED_RETRY = 1.0  # seconds between scheduling attempts of a VM that did not fit


@dataclass(frozen=True)
class Lifecycle:
    """Seconds each step of the simulated drivers takes (0 = immediate)."""

    schedule: float = 0.0
    prolog: float = 0.0
    boot: float = 0.0
    shutdown: float = 0.0
    epilog: float = 0.0
    image: float = 0.0  # an allocated image stays LOCKED this long
    # The datastore driver's answer for a disk saved from a VM (mkfs, then the copy): a
    # template replaced in between loses SAVE_AS_HOT and the VM stays in HOTPLUG_SAVEAS.
    saveas: float = 0.025  # each of the two answers (oned 6.10.5 + dummy: ~25 ms)
    saveas_copy: float | None = None  # the second answer (the copy) alone; None = saveas
    # Deletes are asynchronous: an image stays in DELETE, a network in LOCK_DELETE (its
    # parent's leases still held), this long; oned 6.10.5 with dummy drivers takes ~15 ms.
    # 0 by default: the gateway does not wait for a delete to finish yet.
    delete: float = 0.0


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def now() -> int:
    return int(time.time())


def log_time(ts: float | None = None) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(ts))


class Cloud:
    def __init__(self, data_dir: Path, lifecycle: Lifecycle, endpoint: str) -> None:
        self.lock = threading.RLock()
        self.lifecycle = lifecycle
        self.data_dir = data_dir
        self.endpoint = endpoint
        self.store = Store(data_dir / "one.db")
        self.pools: dict[str, dict[int, Obj]] = {k: {} for k in KINDS}
        self.next_ids: dict[str, int] = {}
        self.rules: list[Rule] = []
        self.dirty: set[tuple[str, int]] = set()
        self.meta_dirty: dict[str, Any] = {}
        self.member_changes: list[MemberChange] = []
        self.request_id = 0
        self.index = VmIndex()  # per-host/per-user totals and due steps of the VM pool
        # PENDING VMs the scheduler could not place (`sched_failed`): what a capacity
        # change wakes up.
        self.unplaced: set[int] = set()
        # Images and networks being deleted: (kind, id) -> when the driver answers.
        self.deleting: dict[tuple[str, int], float] = {}
        loaded = self.store.load()
        if loaded:
            for kind, objs in loaded.items():
                self.pools.setdefault(kind, {}).update(objs)
            self.next_ids = self.store.get_meta("next_ids", {})
            self.rules = [Rule(*r) for r in self.store.get_meta("acl", [])]
            for vm in self.pools["vm"].values():
                self.index.mark(vm["id"])
                if vm.get("sched_failed"):
                    self.unplaced.add(vm["id"])
            for kind, state in (("image", 7), ("vnet", 3)):  # deletes left half done
                for obj in self.pools[kind].values():
                    if obj.get("state") == state:
                        self.deleting[(kind, obj["id"])] = time.time()
        else:
            self.bootstrap()
            self.flush()
        # The plaintext secrets oned keeps in ~oneadmin/.one/{one_auth,sunstone_auth}.
        self.oneadmin_password: str = self.store.get_meta("oneadmin_password")
        self.server_secret: str = self.store.get_meta("server_secret")
        zone = self.pools["zone"].get(0)
        if zone is not None:  # the endpoint follows the port we listen on now
            t = Template.from_json(zone["template"])
            t.replace("ENDPOINT", endpoint)
            zone["template"] = t.to_json()
            self.touch("zone", zone)
        self.flush()

    # --- persistence --------------------------------------------------------------------

    def touch(self, kind: str, obj: Obj) -> None:
        self.dirty.add((kind, obj["id"]))
        if kind == "vm":
            self.index.mark(obj["id"])

    def flush(self) -> None:
        writes = [(k, oid, self.pools[k].get(oid)) for k, oid in sorted(self.dirty)]
        meta = dict(self.meta_dirty)
        meta["next_ids"] = self.next_ids
        self.store.write(writes, meta, self.member_changes)
        self.dirty.clear()
        self.meta_dirty.clear()
        self.member_changes.clear()

    def add_member(self, kind: str, obj: Obj, vm_id: int) -> None:
        """Append `vm_id` to the object's VM list (`MEMBER_FIELDS`), stored as one row."""
        obj.setdefault(MEMBER_FIELDS[kind], []).append(vm_id)
        self.member_changes.append((kind, obj["id"], vm_id, True))
        self.touch(kind, obj)

    def remove_member(self, kind: str, obj: Obj, vm_id: int) -> None:
        """Remove the first `vm_id` from the object's VM list, if there."""
        members = obj.get(MEMBER_FIELDS[kind], [])
        if vm_id in members:
            members.remove(vm_id)
            self.member_changes.append((kind, obj["id"], vm_id, False))
        self.touch(kind, obj)

    def new_id(self, kind: str) -> int:
        oid = self.next_ids.get(kind, FIRST_ID.get(kind, 0))
        self.next_ids[kind] = oid + 1
        return oid

    def add(self, kind: str, obj: Obj) -> Obj:
        self.pools[kind][obj["id"]] = obj
        self.touch(kind, obj)
        return obj

    def remove(self, kind: str, oid: int) -> None:
        self.pools[kind].pop(oid, None)
        self.dirty.add((kind, oid))
        if kind == "vm":
            self.index.mark(oid)
            self.unplaced.discard(oid)

    def save_rules(self) -> None:
        self.meta_dirty["acl"] = [r.to_json() for r in self.rules]

    # --- bootstrap ----------------------------------------------------------------------

    def bootstrap(self) -> None:
        """What oned creates on an empty database (the `*Pool` constructors)."""
        t = now()
        password = secrets.token_hex(16)
        server_secret = secrets.token_hex(32)
        self.meta_dirty["oneadmin_password"] = password
        self.meta_dirty["server_secret"] = server_secret
        for gid, name in ((0, "oneadmin"), (1, "users")):
            self.add("group", {"id": gid, "name": name, "template": [], "admins": []})
        self.next_ids["group"] = 100
        self.add_user(0, "oneadmin", sha256(password), "core", [0])
        self.add_user(1, "serveradmin", sha256(server_secret), "server_cipher", [0])
        self.next_ids["user"] = 2
        self.add(
            "zone",
            {
                "id": 0,
                "name": "OpenNebula",
                "state": 0,
                "template": [["ENDPOINT", self.endpoint]],
            },
        )
        self.next_ids["zone"] = 100
        self.add(
            "cluster",
            {
                "id": 0,
                "name": "default",
                "hosts": [],
                "datastores": [0, 1, 2],
                "vnets": [],
                "template": [["RESERVED_CPU", ""], ["RESERVED_MEM", ""]],
            },
        )
        self.next_ids["cluster"] = 100
        for ds_id, name, ds_type in ((0, "system", 1), (1, "default", 0), (2, "files", 2)):
            self.add("datastore", self.datastore_obj(ds_id, name, ds_type, "dummy", "dummy", t))
        self.next_ids["datastore"] = 100
        rules = [
            {"PROTOCOL": "ALL", "RULE_TYPE": "OUTBOUND"},
            {"PROTOCOL": "ALL", "RULE_TYPE": "INBOUND"},
        ]
        self.add(
            "secgroup",
            {
                **self.owned(0, "default", Caller(0, 0, {0}, "oneadmin", "oneadmin")),
                # `SecurityGroupPool`: uma u-- u--, every user may use the default group.
                "perms": [1, 1, 1, 1, 0, 0, 1, 0, 0],
                "template": [["DESCRIPTION", DEFAULT_SG_DESCRIPTION]]
                + [["RULE", r] for r in rules],
            },
        )
        self.next_ids["secgroup"] = 100
        self.rules = acl.bootstrap_rules()
        self.next_ids["acl"] = len(self.rules)
        self.save_rules()

    def add_user(self, uid: int, name: str, password: str, driver: str, groups: list[int]) -> Obj:
        gid = groups[0]
        return self.add(
            "user",
            {
                "id": uid,
                "name": name,
                "gid": gid,
                "gname": self.pools["group"][gid]["name"],
                "groups": sorted(set(groups)),
                "password": password,
                "driver": driver,
                "enabled": True,
                "template": [["TOKEN_PASSWORD", secrets.token_hex(32)]],
                "tokens": [],
                "quota": {},
            },
        )

    def datastore_obj(
        self, ds_id: int, name: str, ds_type: int, ds_mad: str, tm_mad: str, t: int
    ) -> Obj:
        type_name = {0: "IMAGE_DS", 1: "SYSTEM_DS", 2: "FILE_DS"}[ds_type]
        template: list[list[Any]] = [["ALLOW_ORPHANS", "NO"]]
        if ds_type != 2:
            template.append(["DISK_TYPE", "FILE"])
        if ds_type == 1:
            template += [["DS_MIGRATE", "YES"], ["SHARED", "YES"]]
            ds_mad = "-"
        else:
            template += [["CLONE_TARGET", "SYSTEM"], ["DS_MAD", ds_mad], ["LN_TARGET", "NONE"]]
        template += [
            ["RESTRICTED_DIRS", "/"],
            ["SAFE_DIRS", "/var/tmp"],
            ["TM_MAD", tm_mad],
            ["TYPE", type_name],
        ]
        return {
            **self.owned(ds_id, name, Caller(0, 0, {0}, "oneadmin", "oneadmin")),
            "perms": [1, 1, 0, 1, 0, 0, 0, 0, 0],
            "ds_mad": ds_mad,
            "tm_mad": tm_mad,
            "base_path": f"/var/lib/one/datastores/{ds_id}",
            "type": ds_type,
            "disk_type": 0,
            "state": 0,
            "clusters": [0],
            "total_mb": 20480 if ds_type != 1 else 4796800,
            "images": [],
            "template": template,
        }

    def owned(self, oid: int, name: str, caller: Caller, group_u: int = 0) -> Obj:
        """The fields every owned object has, for an object `caller` creates."""
        return {
            "id": oid,
            "name": name,
            "uid": caller.uid,
            "gid": caller.gid,
            "uname": caller.name,
            "gname": caller.gname,
            "perms": acl.umask_perms(caller.umask, group_u),
        }

    # --- secrets ------------------------------------------------------------------------

    # --- authentication -----------------------------------------------------------------

    def user_by_name(self, name: str) -> Obj | None:
        for u in self.pools["user"].values():
            if u["name"] == name:
                return u
        return None

    def caller_for(self, user: Obj, egid: int = -1) -> Caller:
        groups = set(user["groups"])
        gid, gname = user["gid"], user["gname"]
        if egid != -1 and egid in groups:
            groups = {egid}
            gid, gname = egid, self.pools["group"][egid]["name"]
        umask = Template.from_json(user["template"]).get("UMASK")
        return Caller(
            user["id"], gid, groups, user["name"], gname, int(umask, 8) if umask else 0o177
        )

    def authenticate(self, session: str, method: str) -> Caller:
        """`UserPool::authenticate`: password, login token or server_cipher session."""
        fail = OneError(
            AUTHENTICATION, f"[{method}] User couldn't be authenticated, aborting call."
        )
        name, sep, secret = session.partition(":")
        user = self.user_by_name(name) if sep else None
        if user is None or not user["enabled"]:
            raise fail
        if user["driver"].startswith("server"):
            return self._authenticate_server(user, secret, fail)
        t = time.time()
        for tok in user.get("tokens", []):
            if tok["token"] == secret and (tok["expires"] == -1 or tok["expires"] > t):
                return self.caller_for(user, tok["egid"])
        if user["driver"] == "core" and sha256(secret) == user["password"]:
            return self.caller_for(user)
        raise fail

    def _authenticate_server(self, server: Obj, rest: str, fail: OneError) -> Caller:
        """`serveradmin:<target>[:<egid>]:<b64>`, checked like the server_cipher driver."""
        parts = rest.split(":")
        if len(parts) == 2:
            target_name, token, egid = parts[0], parts[1], -1
        elif len(parts) == 3 and parts[1].lstrip("-").isdigit():
            target_name, token, egid = parts[0], parts[2], int(parts[1])
        else:
            raise fail
        target = self.user_by_name(target_name)
        if target is None:
            raise fail
        key = server["password"][:32].encode()
        try:
            raw = base64.b64decode(token, validate=True)
            dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
            data = dec.update(raw) + dec.finalize()
            unpad = padding.PKCS7(128).unpadder()
            plain = (unpad.update(data) + unpad.finalize()).decode()
            srv, expiry = plain.split(":", 1)[0], int(plain.rsplit(":", 1)[1])
        except Exception:  # noqa: BLE001 - any undecipherable token is a failed login
            raise fail from None
        if srv != server["name"] or time.time() >= expiry:
            raise fail
        return self.caller_for(target, egid)

    # --- lookups and authorization -----------------------------------------------------

    def get(self, kind: str, oid: int, method: str) -> Obj:
        obj = self.pools[kind].get(oid)
        if obj is None:
            raise OneError(
                NO_EXISTS, f"[{method}] Error getting {OBJECT_NAMES[kind]} [{oid}].", oid
            )
        return obj

    def authorize(self, caller: Caller, kind: str, obj: Obj | None, op: int, method: str) -> None:
        if not acl.authorize(caller, self.rules, kind, obj, op):
            oid = obj["id"] if obj is not None else -1
            msg = acl.denial(kind, op, oid)
            # oned leaves the reply's object id at -1 here (`Request::basic_authorization`).
            raise OneError(AUTHORIZATION, f"[{method}] User [{caller.uid}] : {msg}.")

    def authorize_all(
        self, caller: Caller, checks: list[tuple[str, Obj | None, int]], method: str
    ) -> None:
        """One `AuthRequest` of several checks: every denial is named, joined by '; '
        (`AuthRequest::add_auth`)."""
        denials = [
            acl.denial(kind, op, obj["id"] if obj is not None else -1)
            for kind, obj, op in checks
            if not acl.authorize(caller, self.rules, kind, obj, op)
        ]
        if denials:
            raise OneError(AUTHORIZATION, f"[{method}] User [{caller.uid}] : {'; '.join(denials)}.")

    def fetch(self, caller: Caller, kind: str, oid: int, op: int, method: str) -> Obj:
        """NO_EXISTS first, then AUTHORIZATION — as oned (existence leaks)."""
        obj = self.get(kind, oid, method)
        self.authorize(caller, kind, obj, op, method)
        return obj

    def visible(self, caller: Caller, kind: str, obj: Obj, flag: int) -> bool:
        """`PoolSQL::usr_filter` + `acl_filter` for pool listings."""
        if kind == "group":
            return caller.is_admin or obj["id"] in caller.groups
        if kind == "user" and not caller.is_admin:
            return obj["id"] == caller.uid
        uid, gid = obj.get("uid", -1), obj.get("gid", -1)
        if flag == -3:
            return uid == caller.uid
        if flag == -4 and gid != caller.gid:
            return False
        if flag == -1 and not (uid == caller.uid or gid in caller.groups):
            return False
        if flag >= 0 and uid != flag:
            return False
        if caller.is_admin or (flag >= 0 and flag == caller.uid):
            return True
        if flag == -4:
            return uid == caller.uid or acl.authorize(caller, self.rules, kind, obj, acl.USE)
        return acl.authorize(caller, self.rules, kind, obj, acl.USE)

    def check_name(self, kind: str, name: str, uid: int | None, method: str) -> None:
        """Names are unique per owner (or globally for unowned objects)."""
        for obj in self.pools[kind].values():
            if obj["name"] == name and (uid is None or obj.get("uid") == uid):
                if kind == "vm":
                    continue
                word = acl.TYPE_BITS[kind][1]
                raise OneError(
                    ALLOCATE,
                    f"[{method}] Error allocating a new {OBJECT_NAMES[kind]}. "
                    f"NAME is already taken by {word} {obj['id']}.",
                )

    # --- capacity and usage -------------------------------------------------------------

    def host_usage(self, host_id: int) -> dict[str, Any]:
        """Capacity the VMs on the host hold, with their ids (for the host's XML)."""
        cpu, memory, count = self.host_load(host_id)
        vm_ids = sorted(self.index.host(host_id).vms)
        return {"cpu": cpu, "memory": memory, "vms": count, "vm_ids": vm_ids}

    def host_load(self, host_id: int) -> tuple[float, int, int]:
        """CPU (×100) and memory (KB) held on the host, and how many VMs hold them."""
        self.index.sync(self.pools["vm"])
        load = self.index.host(host_id)
        return float(load.cpu), load.memory, len(load.vms)

    def datastore_used(self, ds_id: int) -> int:
        return sum(
            int(img["size"]) for img in self.pools["image"].values() if img["datastore_id"] == ds_id
        )

    def vm_usage(self, uid: int) -> dict[str, float]:
        self.index.sync(self.pools["vm"])
        metrics = self.index.user(uid).metrics
        return {m: float(metrics[m]) for m in QUOTA_METRICS}

    def check_vm_quota(
        self, caller: Caller, add: dict[str, float], method: str, user: Obj | None = None
    ) -> None:
        """`Quota::check`: user VM quota (oneadmin is never limited)."""
        user = user or self.pools["user"].get(caller.uid)
        if user is None or user["id"] == 0:
            return
        limits = user.get("quota", {}).get("VM", {})
        usage = self.vm_usage(user["id"])
        for metric, delta in add.items():
            limit = float(limits.get(metric, -1))
            if limit >= 0 and usage.get(metric, 0) + delta > limit:
                raise OneError(
                    AUTHORIZATION,
                    f"[{method}] User [{caller.uid}] : User [{user['id']}] limit of "
                    f"{limit:g} reached for {metric} quota in VM.",
                )

    def quota_xml(self, user: Obj, section: str) -> str:
        if user["id"] == 0:  # oneadmin is never accounted
            return f"<{section}></{section}>"
        if section == "VM_QUOTA":
            limits = user.get("quota", {}).get("VM", {})
            usage = self.vm_usage(user["id"])
            if not limits and not usage["VMS"]:
                return "<VM_QUOTA></VM_QUOTA>"
            body = ""
            for metric in ("CPU", "MEMORY", "RUNNING_CPU", "RUNNING_MEMORY", "RUNNING_VMS"):
                body += cdata(metric, limits.get(metric, "-1"))
                body += cdata(f"{metric}_USED", _fmt(usage[metric], metric))
            for metric in ("SYSTEM_DISK_SIZE", "VMS"):
                body += cdata(metric, limits.get(metric, "-1"))
                body += cdata(f"{metric}_USED", _fmt(usage[metric], metric))
            return f"<VM_QUOTA><VM>{body}</VM></VM_QUOTA>"
        if section == "NETWORK_QUOTA":
            self.index.sync(self.pools["vm"])
            counts = self.index.user(user["id"]).networks
            body = "".join(
                "<NETWORK>"
                + cdata("ID", nid)
                + cdata("LEASES", "-1")
                + cdata("LEASES_USED", n)
                + "</NETWORK>"
                for nid, n in sorted(counts.items())
            )
            return f"<NETWORK_QUOTA>{body}</NETWORK_QUOTA>"
        if section == "IMAGE_QUOTA":
            self.index.sync(self.pools["vm"])
            counts = self.index.user(user["id"]).images
            body = "".join(
                "<IMAGE>"
                + cdata("ID", iid)
                + cdata("RVMS", "-1")
                + cdata("RVMS_USED", n)
                + "</IMAGE>"
                for iid, n in sorted(counts.items())
            )
            return f"<IMAGE_QUOTA>{body}</IMAGE_QUOTA>"
        sizes: dict[int, list[int]] = {}
        for img in self.pools["image"].values():
            if img["uid"] == user["id"]:
                entry = sizes.setdefault(img["datastore_id"], [0, 0])
                entry[0] += 1
                entry[1] += int(img["size"])
        body = "".join(
            "<DATASTORE>"
            + cdata("ID", ds)
            + cdata("IMAGES", "-1")
            + cdata("IMAGES_USED", n)
            + cdata("SIZE", "-1")
            + cdata("SIZE_USED", size)
            + "</DATASTORE>"
            for ds, (n, size) in sorted(sizes.items())
        )
        return f"<DATASTORE_QUOTA>{body}</DATASTORE_QUOTA>"

    # --- the lifecycle engine -----------------------------------------------------------

    def set_state(self, vm: Obj, state: int, lcm: int = 0, delay: float | None = None) -> None:
        # oned writes PREV_* equal to the current state whenever it stores the VM.
        vm["state"], vm["lcm_state"] = state, lcm
        vm["prev_state"], vm["prev_lcm_state"] = state, lcm
        vm["due"] = None if delay is None else time.time() + delay
        self.touch("vm", vm)

    def advance(self) -> None:
        """Perform every lifecycle step that is due, until nothing is."""
        for _ in range(10000):
            t = time.time()
            for img in list(self.pools["image"].values()):
                if img.get("due") is not None and img["due"] <= t:
                    img["due"] = None
                    if img.get("saveas"):
                        self.saveas_step(img)
                    else:
                        # `ImageManager::_cp` / `_clone`: the driver gives the SOURCE
                        img["source"] = img["source"] or "dummy_path"
                        img["prev_state"], img["state"] = img["state"], 1
                        if img.get("cloning_id", -1) != -1:
                            self.release_clone(img)
                    self.touch("image", img)
            for key, when in list(self.deleting.items()):
                if when <= t:
                    del self.deleting[key]
                    self.drop(*key)
            vms = self.pools["vm"]
            self.index.sync(vms)
            due = self.index.pop_due(vms, t)
            if not due:
                return
            for vid in due:
                vm = vms.get(vid)
                if vm is not None and vm.get("due") is not None and vm["due"] <= t:
                    self.step(vm)

    def release_clone(self, clone: Obj) -> None:
        """The copy of a clone is done (`ImageManager::release_cloning_image`): the source
        forgets it, and is READY again once nothing else clones or uses it."""
        src = self.pools["image"].get(clone["cloning_id"])
        clone["cloning_id"] = -1
        if src is None or clone["id"] not in src["clones"]:
            return
        src["clones"].remove(clone["id"])
        src["cloning_ops"] -= 1
        if src["state"] in (2, 6) and src["cloning_ops"] == 0 and not src["vms"]:
            src["prev_state"], src["state"] = src["state"], 1
        self.touch("image", src)

    def saveas_step(self, img: Obj) -> None:
        """The driver answered for an image saved from a VM disk (`one.vm.disksaveas`).

        `mkfs` done (`ImageManager::_mkfs`): only if the image is still marked SAVE_AS_HOT
        does oned start the copy (the disk gets HOTPLUG_SAVE_AS and _SOURCE); without the
        mark the image is just unlocked and the VM is left in its HOTPLUG_SAVEAS state for
        good. `copy` done (`saveas_success_action`): the mark goes, the image is READY and
        the VM back where it was.
        """
        tmpl = Template.from_json(img["template"])
        vm = self.pools["vm"].get(int(tmpl.get("SAVED_VM_ID") or -1))
        disk_id = tmpl.get("SAVED_DISK_ID")
        vm_tmpl = Template.from_json(vm["template"]) if vm else Template()
        disk = next((d for d in vm_tmpl.vectors("DISK") if d.get("DISK_ID") == disk_id), None)
        saving = vm is not None and vm["state"] == st.ACTIVE and vm["lcm_state"] in st.SAVEAS_DONE
        if img["saveas"] == "mkfs":
            img["source"] = img["source"] or "dummy_path"  # `image->set_source(source)`
            if (tmpl.get("SAVE_AS_HOT") or "").upper() not in ("YES", "TRUE"):
                img["saveas"] = None
                img["prev_state"], img["state"] = img["state"], 1
                return
            if not saving or disk is None:
                img["saveas"] = None
                img["prev_state"], img["state"] = img["state"], 5  # ERROR
                return
            disk["HOTPLUG_SAVE_AS"] = str(img["id"])
            disk["HOTPLUG_SAVE_AS_SOURCE"] = img["source"]
            img["format"] = disk.get("FORMAT") or disk.get("DRIVER") or img["format"]
            img["saveas"] = "copy"
            copy = self.lifecycle.saveas_copy
            img["due"] = time.time() + (self.lifecycle.saveas if copy is None else copy)
        else:
            img["saveas"] = None
            tmpl.erase("SAVE_AS_HOT")
            img["template"] = tmpl.to_json()
            img["prev_state"], img["state"] = img["state"], 1
            if disk is not None:
                for key in SAVE_AS_DISK_KEYS:
                    disk.pop(key, None)
            if saving:
                self.set_state(vm, *st.SAVEAS_DONE[vm["lcm_state"]])
        if vm is not None:
            vm["template"] = vm_tmpl.to_json()
            self.touch("vm", vm)

    def clear_saveas(self, vm: Obj) -> None:
        """`VirtualMachine::clear_saveas_state` and `clear_saveas_disk`: a VM in a
        HOTPLUG_SAVEAS state goes back where it was, and the disk being saved (the one with
        HOTPLUG_SAVE_AS_ACTIVE) loses its HOTPLUG_SAVE_AS* attributes."""
        tmpl = Template.from_json(vm["template"])
        for disk in tmpl.vectors("DISK"):
            if (disk.get("HOTPLUG_SAVE_AS_ACTIVE") or "").upper() == "YES":
                for key in SAVE_AS_DISK_KEYS:
                    disk.pop(key, None)
                break
        vm["template"] = tmpl.to_json()
        if vm["state"] == st.ACTIVE and vm["lcm_state"] in st.SAVEAS_DONE:
            self.set_state(vm, *st.SAVEAS_DONE[vm["lcm_state"]])
        self.touch("vm", vm)

    def delete_later(self, kind: str, obj: Obj, state: int) -> None:
        """Start an asynchronous delete: the object shows `state` until the driver answers
        (`Lifecycle.delete`), then `drop` removes it."""
        obj["prev_state"], obj["state"] = obj["state"], state
        self.deleting[(kind, obj["id"])] = time.time() + self.lifecycle.delete
        self.touch(kind, obj)

    def drop(self, kind: str, oid: int) -> None:
        """The driver answered a delete: the object goes, and what it held is let go
        (`ImageManager::_rm`, `VirtualNetworkPool::delete_success`)."""
        obj = self.pools[kind].get(oid)
        if obj is None:
            return
        if kind == "image":
            ds = self.pools["datastore"].get(obj["datastore_id"])
            if ds and oid in ds["images"]:
                ds["images"].remove(oid)
                self.touch("datastore", ds)
        else:
            for cid in obj["clusters"]:
                cluster = self.pools["cluster"].get(cid)
                if cluster and oid in cluster["vnets"]:
                    cluster["vnets"].remove(oid)
                    self.touch("cluster", cluster)
            parent = obj.get("parent_network_id", "")
            pvn = self.pools["vnet"].get(int(parent)) if parent != "" else None
            if pvn is not None:
                for ar in pvn["ars"]:
                    for idx, lease in list(ar["leases"].items()):
                        if lease == {"kind": "vnet", "id": oid}:
                            del ar["leases"][idx]
                self.touch("vnet", pvn)
        self.remove(kind, oid)

    def next_due(self) -> float | None:
        self.index.sync(self.pools["vm"])
        dues = [o["due"] for o in self.pools["image"].values() if o.get("due")]
        dues += self.deleting.values()
        vm_due = self.index.next_due(self.pools["vm"])
        if vm_due:
            dues.append(vm_due)
        return min(dues) if dues else None

    def step(self, vm: Obj) -> None:
        """One driver step finished: move the VM to the next state."""
        lc = self.lifecycle
        state, lcm = vm["state"], vm["lcm_state"]
        t = now()
        h = vm["history"][-1] if vm["history"] else None
        if state == st.PENDING:
            self.schedule(vm)
        elif state != st.ACTIVE:
            vm["due"] = None
        elif lcm in (st.PROLOG, st.PROLOG_RESUME, st.PROLOG_UNDEPLOY):
            nxt = {
                st.PROLOG: st.BOOT,
                st.PROLOG_RESUME: st.BOOT_STOPPED,
                st.PROLOG_UNDEPLOY: st.BOOT_UNDEPLOY,
            }[lcm]
            h["petime"] = t
            h["rstime"] = t
            self.set_state(vm, st.ACTIVE, nxt, lc.boot)
        elif lcm in (
            st.BOOT,
            st.BOOT_STOPPED,
            st.BOOT_UNDEPLOY,
            st.BOOT_POWEROFF,
            st.BOOT_SUSPENDED,
            st.BOOT_UNKNOWN,
        ):
            if not vm["deploy_id"]:
                vm["deploy_id"] = f"{h['hostname']}:{vm['name']}:dummy"
            self.set_state(vm, st.ACTIVE, st.RUNNING)
            self.monitor(vm)
        elif lcm == st.SHUTDOWN:
            h["retime"] = t
            h["estime"] = t
            self.set_state(vm, st.ACTIVE, st.EPILOG, lc.epilog)
        elif lcm == st.EPILOG:
            self.finish(vm)
        elif lcm == st.SHUTDOWN_POWEROFF:
            h["retime"] = t
            self.set_state(vm, st.POWEROFF)
        elif lcm == st.SAVE_SUSPEND:
            self.set_state(vm, st.SUSPENDED)
        elif lcm == st.SAVE_STOP:
            h["retime"] = t
            h["estime"] = t
            self.set_state(vm, st.ACTIVE, st.EPILOG_STOP, lc.epilog)
        elif lcm == st.SHUTDOWN_UNDEPLOY:
            h["retime"] = t
            h["estime"] = t
            self.set_state(vm, st.ACTIVE, st.EPILOG_UNDEPLOY, lc.epilog)
        elif lcm in (st.EPILOG_STOP, st.EPILOG_UNDEPLOY):
            h["eetime"] = h["etime"] = t
            self.set_state(vm, st.STOPPED if lcm == st.EPILOG_STOP else st.UNDEPLOYED)
            self.wake_scheduler()
        else:  # hotplug and other instant driver operations
            self.set_state(vm, st.ACTIVE, st.RUNNING)

    def monitor(self, vm: Obj) -> None:
        """What the dummy VM probe reports for a running VM."""
        t = now()
        memory = int(float(Template.from_json(vm["template"]).get("MEMORY", "0") or 0))
        record = {
            "CPU": "0",
            "DISKRDBYTES": str(secrets.randbelow(1000)),
            "DISKRDIOPS": str(secrets.randbelow(1000)),
            "DISKWRBYTES": str(secrets.randbelow(1000)),
            "DISKWRIOPS": str(secrets.randbelow(1000)),
            "ID": str(vm["id"]),
            "MEMORY": str(memory * 1024 * (20 + secrets.randbelow(60)) // 100),
            "NETRX": str(secrets.randbelow(10000)),
            "NETTX": str(secrets.randbelow(10000)),
            "TIMESTAMP": str(t),
        }
        vm["monitoring"] = record
        vm["last_poll"] = t
        vm.setdefault("monitoring_records", []).append(record)
        del vm["monitoring_records"][:-10]

    def finish(self, vm: Obj) -> None:
        """DONE: release host, leases, images and the VNC port."""
        t = now()
        if vm["history"]:
            h = vm["history"][-1]
            h["eetime"] = h["etime"] = t
            if h["retime"] == 0:
                h["retime"] = t
        vm["etime"] = t
        self.set_state(vm, st.DONE)
        tmpl = Template.from_json(vm["template"])
        graphics = tmpl.vector("GRAPHICS")
        if graphics is not None and "PORT" in graphics:
            del graphics["PORT"]
            tmpl.erase("GRAPHICS")
            tmpl.add("GRAPHICS", graphics)
            vm["template"] = tmpl.to_json()
        self.release_resources(vm)
        self.wake_scheduler()

    def release_resources(self, vm: Obj, nics: list[dict] | None = None) -> None:
        tmpl = Template.from_json(vm["template"])
        for nic in tmpl.vectors("NIC") if nics is None else nics:
            self.free_lease(nic, vm["id"])
        if nics is None:
            for disk in tmpl.vectors("DISK"):
                self.release_image(disk, vm["id"])

    def free_lease(self, nic: dict, vm_id: int) -> None:
        if not nic.get("NETWORK_ID", "").isdigit():
            return
        vn = self.pools["vnet"].get(int(nic["NETWORK_ID"]))
        if vn is None:
            return
        mac = nic.get("MAC") or ""
        try:
            wanted = int(mac.replace(":", ""), 16)
        except ValueError:
            wanted = -1
        for ar in vn["ars"]:
            # The lease is found from its MAC (`dummy.mac_at` inverted), not by a scan.
            idx = str(wanted - int(ar["attrs"]["MAC"].replace(":", ""), 16))
            lease = ar["leases"].get(idx)
            if lease == {"kind": "vm", "id": vm_id} and dummy.mac_at(ar, int(idx)) == mac:
                del ar["leases"][idx]
        self.remove_member("vnet", vn, vm_id)
        self.track_security_groups(nic, vm_id, False)

    def track_security_groups(self, nic: dict, vm_id: int, using: bool) -> None:
        """Keep each security group's VM list (`UPDATED_VMS`) as oned does: a group with
        VMs cannot be deleted."""
        for sg_id in (nic.get("SECURITY_GROUPS") or "").split(","):
            sg = self.pools["secgroup"].get(int(sg_id)) if sg_id.strip().isdigit() else None
            if sg is None:
                continue
            if not using:
                self.remove_member("secgroup", sg, vm_id)
            elif vm_id not in sg.get("updated_vms", []):
                self.add_member("secgroup", sg, vm_id)
            else:
                self.touch("secgroup", sg)

    def release_image(self, disk: dict, vm_id: int) -> None:
        if not disk.get("IMAGE_ID", "").isdigit():
            return
        img = self.pools["image"].get(int(disk["IMAGE_ID"]))
        if img is None or vm_id not in img["vms"]:
            return
        self.remove_member("image", img, vm_id)
        if not img["vms"] and img["state"] in (2, 8):
            img["prev_state"], img["state"] = img["state"], 1

    def wake_scheduler(self) -> None:
        """Capacity changed: let PENDING VMs be considered again right away."""
        t = time.time()
        for vid in sorted(self.unplaced):
            vm = self.pools["vm"].get(vid)
            if vm is None or not vm.get("sched_failed"):
                self.unplaced.discard(vid)
                continue
            waiting = vm.get("due") is None or vm["due"] > t
            if vm["state"] == st.PENDING and waiting:
                vm["due"] = t
                vm["sched_failed"] = False
                self.unplaced.discard(vid)
                self.index.mark(vid)  # queue the step; not persisted, as before

    # --- the scheduler ------------------------------------------------------------------

    def schedule(self, vm: Obj) -> None:
        """Place a PENDING VM on a host of its cluster with free capacity (`mm_sched`)."""
        tmpl = Template.from_json(vm["template"])
        user = Template.from_json(vm["user_template"])
        cpu = float(tmpl.get("CPU", "0") or 0) * 100
        mem = int(float(tmpl.get("MEMORY", "0") or 0)) * 1024
        hosts = sorted(self.pools["host"].values(), key=lambda h: h["id"])
        enabled = [h for h in hosts if h["state"] in (0, 1, 2)]
        message = ""
        if not enabled:
            message = "No hosts enabled to run VMs"
        candidates = []
        for h in enabled:
            try:
                ok = all(
                    matches(req, self.host_attributes(h))
                    for req in (
                        tmpl.get("AUTOMATIC_REQUIREMENTS", ""),
                        user.get("SCHED_REQUIREMENTS", ""),
                    )
                    if req
                )
            except RequirementError as err:
                message = f"Cannot evaluate SCHED_REQUIREMENTS: {err}"
                candidates = []
                break
            if not ok:
                continue
            used_cpu, used_mem, vms = self.host_load(h["id"])
            if used_cpu + cpu <= h["max_cpu"] and used_mem + mem <= h["max_mem"]:
                candidates.append((vms, h["id"], h))
            elif not message:
                message = "No host with enough capacity to deploy the VM"
        if not candidates:
            if not message:
                message = "Cannot schedule VM, there is no suitable host."
            user.replace("SCHED_MESSAGE", f"{log_time()} : {message}")
            vm["user_template"] = user.to_json()
            vm["due"] = time.time() + max(SCHED_RETRY, self.lifecycle.schedule)
            vm["sched_failed"] = True
            self.unplaced.add(vm["id"])
            self.touch("vm", vm)
            return
        if user.erase("SCHED_MESSAGE"):
            vm["user_template"] = user.to_json()
        vm["sched_failed"] = False
        self.unplaced.discard(vm["id"])
        self.deploy(vm, min(candidates)[2], ds_id=0)

    def host_attributes(self, h: Obj) -> dict[str, str]:
        attrs = {k: v for k, v in Template.from_json(h["template"]) if isinstance(v, str)}
        cluster = self.pools["cluster"].get(h["cluster_id"], {"name": ""})
        attrs.update(
            ID=str(h["id"]),
            NAME=h["name"],
            HOSTNAME=h["name"],
            CLUSTER_ID=str(h["cluster_id"]),
            CLUSTER=cluster["name"],
        )
        return attrs

    def deploy(self, vm: Obj, host: Obj, ds_id: int, action: str = "none") -> None:
        """PENDING → PROLOG on `host` (new history record), as `one.vm.deploy` does."""
        t = now()
        ds = self.pools["datastore"].get(ds_id) or self.pools["datastore"][0]
        vm["history"].append(
            {
                "oid": vm["id"],
                "seq": len(vm["history"]),
                "hostname": host["name"],
                "hid": host["id"],
                "cid": host["cluster_id"],
                "stime": t,
                "etime": 0,
                "vm_mad": host["vm_mad"],
                "tm_mad": ds["tm_mad"],
                "ds_id": ds["id"],
                "pstime": t,
                "petime": 0,
                "rstime": 0,
                "retime": 0,
                "estime": 0,
                "eetime": 0,
                "action": st.ACTION_CODES.get(action, 0),
                "uid": -1,
                "gid": -1,
                "request_id": -1,
            }
        )
        tmpl = Template.from_json(vm["template"])
        tmpl.replace("TM_MAD_SYSTEM", ds["tm_mad"])
        graphics = tmpl.vector("GRAPHICS")
        if graphics is not None and "PORT" not in graphics:
            graphics["PORT"] = str(self.vnc_port(vm["id"]))
            tmpl.erase("GRAPHICS")
            tmpl.add("GRAPHICS", graphics)
        vm["template"] = tmpl.to_json()
        previous = vm.get("resume_from")
        lcm = {st.STOPPED: st.PROLOG_RESUME, st.UNDEPLOYED: st.PROLOG_UNDEPLOY}.get(
            previous, st.PROLOG
        )
        vm["resume_from"] = None
        self.set_state(vm, st.ACTIVE, lcm, self.lifecycle.prolog)

    def vnc_port(self, vm_id: int) -> int:
        """VNC ports: 5900 + VM id, as oned's default cluster VNC bitmap hands them out."""
        return 5900 + vm_id % 59000

    def close_history(self, vm: Obj, action: str, caller: Caller) -> None:
        """Record who ended the current history record and why."""
        if not vm["history"]:
            return
        h = vm["history"][-1]
        h["action"] = st.ACTION_CODES.get(action, 0)
        h["uid"], h["gid"] = caller.uid, caller.gid
        self.request_id += 1
        h["request_id"] = self.request_id

    def copy_history(self, vm: Obj) -> None:
        """`VirtualMachine::cp_history`: a new record on the same host (resume)."""
        t = now()
        h = dict(vm["history"][-1])
        h.update(
            seq=h["seq"] + 1,
            stime=t,
            etime=0,
            pstime=0,
            petime=0,
            rstime=t,
            retime=0,
            estime=0,
            eetime=0,
            action=0,
            uid=-1,
            gid=-1,
            request_id=-1,
        )
        vm["history"].append(h)


def _fmt(value: float, metric: str) -> str:
    if metric in ("CPU", "RUNNING_CPU"):
        return f"{value:.2f}"
    return str(int(value))


def new_uuid() -> str:
    return str(uuid.uuid4())
