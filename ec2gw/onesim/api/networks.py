"""`one.vn.*` and `one.vnpool.info`: address ranges and their leases."""

from __future__ import annotations

import ipaddress
import secrets

from ec2gw.onesim import acl, documents, dummy
from ec2gw.onesim.acl import ADMIN, CREATE, MANAGE, USE, Caller
from ec2gw.onesim.api.base import (
    Obj,
    allocate_error,
    list_pool,
    new_owned,
    parse,
    rpc,
    update_template,
)
from ec2gw.onesim.api.infra import cluster_of
from ec2gw.onesim.cloud import Cloud
from ec2gw.onesim.rpc import (
    ACTION,
    INTERNAL,
    OneError,
)
from ec2gw.onesim.template import Template


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


def split_groups(text: str) -> set[int]:
    """`one_util::split_unique` of a SECURITY_GROUPS list (what does not parse is skipped)."""
    return {int(g) for g in text.split(",") if g.strip().isdigit()}


def join_groups(*lists: str) -> str:
    """The union of SECURITY_GROUPS lists, as oned writes a `set<int>`: sorted, unique."""
    groups: set[int] = set()
    for text in lists:
        groups |= split_groups(text)
    return ",".join(str(g) for g in sorted(groups))


@rpc("one.vn.allocate", "si")
def vn_allocate(cloud: Cloud, caller: Caller, method: str, text: str, cid: int) -> int:
    tmpl = parse(text, method)
    cluster = cluster_of(cloud, cid, method)
    # creating a network in a cluster is also ADMIN on the cluster
    # (RequestManagerAllocate::allocate_authorization)
    cloud.authorize_all(caller, [("vnet", None, CREATE), ("cluster", cluster, ADMIN)], method)

    def error(text: str) -> OneError:
        return allocate_error("vnet", method, text)

    name = tmpl.get("NAME") or ""
    if not name:
        raise error("No NAME in template.")
    vn_mad = tmpl.get("VN_MAD") or ""
    if not vn_mad:
        raise OneError(INTERNAL, f"[{method}] No VN_MAD in template for Virtual Network.")
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
        "VLAN_ID": "",
    }
    # `VirtualNetwork::parse_template`: the default security group 0 is always added.
    tmpl.replace("SECURITY_GROUPS", join_groups(tmpl.get("SECURITY_GROUPS") or "", "0"))
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
        if vid == -1:  # a lease on hold
            return True
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
    old = Template.from_json(vn["template"])
    update_template(vn, text, append, method)
    tmpl = Template.from_json(vn["template"])
    vn_mad = tmpl.get("VN_MAD") or ""
    if vn_mad not in BRIDGE_TYPES:
        vn["template"] = old.to_json()
        raise OneError(
            INTERNAL,
            f'[{method}] Cannot update template. VN_MAD named "{vn_mad}" is not defined '
            "in oned.conf",
        )
    vn["template"] = post_update(tmpl, old, vn_mad).to_json()
    cloud.touch("vnet", vn)
    return vid


# VN_MAD_CONF of oned.conf: the bridge type of each network driver.
BRIDGE_TYPES = {
    "dummy": "linux",
    "802.1Q": "linux",
    "ebtables": "linux",
    "fw": "linux",
    "ovswitch": "openvswitch",
    "vxlan": "linux",
    "vcenter": "vcenter_port_groups",
    "ovswitch_vxlan": "openvswitch",
    "bridge": "linux",
    "elastic": "linux",
    "nodeport": "linux",
}


def post_update(tmpl: Template, old: Template, vn_mad: str) -> Template:
    """`VirtualNetwork::post_update_template`: the driver's attributes are written back
    (VN_MAD, PHYDEV, VLAN_ID, OUTER_VLAN_ID as the new template has them, or empty;
    BRIDGE kept when the update has none; BRIDGE_TYPE from the driver's configuration)."""
    bridge = tmpl.get("BRIDGE") or old.get("BRIDGE") or ""
    for name in ("VN_MAD", "PHYDEV", "VLAN_ID", "OUTER_VLAN_ID"):
        tmpl.replace(name, tmpl.get(name) or "")
    tmpl.erase("AUTOMATIC_VLAN_ID")
    tmpl.erase("AUTOMATIC_OUTER_VLAN_ID")
    tmpl.replace("BRIDGE", bridge)
    tmpl.replace("BRIDGE_TYPE", BRIDGE_TYPES[vn_mad])
    return tmpl


@rpc("one.vn.delete", "i")
def vn_delete(cloud: Cloud, caller: Caller, method: str, vid: int) -> int:
    vn = cloud.fetch(caller, "vnet", vid, MANAGE, method)
    if vn["state"] in (2, 3, 4):
        name = {2: "LOCK_CREATE", 3: "LOCK_DELETE", 4: "DONE"}[vn["state"]]
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete virtual network. Can not remove a Virtual Network, "
            f"wrong state {name}",
        )
    if any(ar["leases"] for ar in vn["ars"]):
        raise OneError(
            ACTION,
            f"[{method}] Cannot delete virtual network. Can not remove a virtual network "
            "with leases in use",
            vid,
        )
    # `VirtualNetworkDelete::drop`: the address ranges go now, the network waits in
    # LOCK_DELETE for the IPAM driver; its parent's leases are freed after that.
    vn["ars"] = []
    cloud.delete_later("vnet", vn, 3)
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
    found[0]["allocated"] = True
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


def _reservation_template(parent: Obj) -> list:
    """The parent's template, allocated as a network: the default security group 0 is
    added (`VirtualNetwork::parse_template`)."""
    tmpl = Template.from_json(parent["template"])
    tmpl.replace("SECURITY_GROUPS", join_groups(tmpl.get("SECURITY_GROUPS") or "", "0"))
    return tmpl.to_json()


@rpc("one.vn.reserve", "is")
def vn_reserve(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    """Reserve SIZE leases of `vid` into a new vnet (NAME) or an existing one (NETWORK_ID)."""
    parent = cloud.get("vnet", vid, method)
    tmpl = parse(text, method)

    def error(text: str) -> OneError:
        return OneError(ACTION, f"[{method}] {text}")

    # The checks of `VirtualNetworkReserve::request_execute`, in its order.
    try:
        size = int(tmpl.get("SIZE") or "")
    except ValueError:
        size = 0
    if size <= 0:
        raise error("Reservation SIZE must be a greater than 0")
    existing: Obj | None = None
    if tmpl.get("NETWORK_ID"):
        try:
            rid = int(tmpl.get("NETWORK_ID"))
        except ValueError:
            rid = -1
        if rid < 0:
            raise error("NETWORK_ID must be equal or greater than 0")
        if rid == vid:
            raise error("Cannot add a reservation from the same network")
        existing = cloud.get("vnet", rid, method)
        if existing.get("parent_network_id", "") == "":
            raise error("Cannot add reservations to a non-reservation VNET")
        if existing["parent_network_id"] != str(vid):
            raise error(
                f"New reservations for virtual network {rid} have to be from network "
                f"{existing['parent_network_id']}"
            )
    elif not tmpl.get("NAME"):
        raise error("NAME for reservation has to be set")
    if tmpl.get("AR_ID") is not None and not tmpl.get("AR_ID", "").isdigit():
        raise error("AR_ID must be equal or greater than 0")
    if tmpl.get("AR_ID") is None and (tmpl.get("IP") or tmpl.get("MAC")):
        raise error("AR_ID must be specified for IP/MAC based reservations")
    if parent.get("parent_network_id", "") != "":
        raise error("Cannot reserve addresses from a reserved VNET")
    cloud.authorize(caller, "vnet", parent, USE, method)
    if existing is not None:
        cloud.authorize(caller, "vnet", existing, MANAGE, method)
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
    if existing is not None:
        target = existing
    else:
        name = tmpl.get("NAME") or ""
        cloud.check_name("vnet", name, caller.uid, method)
        target = new_owned(cloud, caller, "vnet", name)
        target.update(
            clusters=list(parent["clusters"]),
            state=1,
            prev_state=1,
            parent_network_id=str(vid),
            template=_reservation_template(parent),
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
        a["allocated"] = True
    cloud.touch("vnet", parent)
    cloud.touch("vnet", target)
    return target["id"]
