"""The XML bodies oned returns, element by element in oned's order.

Each function mirrors one `to_xml` of oned 6.10 (named in its docstring) and was checked
against the captured replies in `fixtures/oned-6.10.5/`: fixed fields are plain text,
template and monitoring leaves are CDATA, no whitespace between elements, and empty
containers keep oned's exact spelling (`<X></X>` or `<X/>`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from ec2gw.onesim import dummy
from ec2gw.onesim.template import Template, attr_xml, cdata

if TYPE_CHECKING:
    from ec2gw.onesim.cloud import Cloud

Obj = dict[str, Any]


def e(tag: str, value: object) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def ids(tag: str, values: list[int]) -> str:
    return f"<{tag}>{''.join(e('ID', v) for v in values)}</{tag}>"


def tmpl(obj: Obj, key: str = "template") -> Template:
    return Template.from_json(obj.get(key, []))


def permissions(obj: Obj) -> str:
    names = ("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A")
    names += ("OTHER_U", "OTHER_M", "OTHER_A")
    bits = "".join(e(n, v) for n, v in zip(names, obj["perms"], strict=True))
    return f"<PERMISSIONS>{bits}</PERMISSIONS>"


def owner(obj: Obj) -> str:
    return (
        e("ID", obj["id"])
        + e("UID", obj["uid"])
        + e("GID", obj["gid"])
        + e("UNAME", obj["uname"])
        + e("GNAME", obj["gname"])
        + e("NAME", obj["name"])
    )


# --- virtual machines ---------------------------------------------------------------------


def history_full(h: Obj) -> str:
    """`History::to_xml`."""
    return (
        "<HISTORY>"
        + e("OID", h["oid"])
        + e("SEQ", h["seq"])
        + e("HOSTNAME", h["hostname"])
        + e("HID", h["hid"])
        + e("CID", h["cid"])
        + e("STIME", h["stime"])
        + e("ETIME", h["etime"])
        + cdata("VM_MAD", h["vm_mad"])
        + cdata("TM_MAD", h["tm_mad"])
        + e("DS_ID", h["ds_id"])
        + "".join(e(k.upper(), h[k]) for k in ("pstime", "petime", "rstime", "retime"))
        + "".join(e(k.upper(), h[k]) for k in ("estime", "eetime"))
        + e("ACTION", h["action"])
        + e("UID", h["uid"])
        + e("GID", h["gid"])
        + e("REQUEST_ID", h["request_id"])
        + "</HISTORY>"
    )


def history_short(h: Obj) -> str:
    """`History::to_xml_short`."""
    return (
        "<HISTORY>"
        + e("OID", h["oid"])
        + e("SEQ", h["seq"])
        + cdata("HOSTNAME", h["hostname"])
        + e("HID", h["hid"])
        + e("CID", h["cid"])
        + e("DS_ID", h["ds_id"])
        + cdata("VM_MAD", h["vm_mad"])
        + cdata("TM_MAD", h["tm_mad"])
        + cdata("ACTION", h["action"])
        + "</HISTORY>"
    )


def vm_full(vm: Obj, all_history: bool = True) -> str:
    """`VirtualMachine::to_xml_extended` (`one.vm.info`; `infoextended` = last record only)."""
    monitoring = vm.get("monitoring") or {}
    mon = "".join(cdata(k, monitoring[k]) for k in sorted(monitoring))
    history = vm["history"] if all_history else vm["history"][-1:]
    if history:
        records = f"<HISTORY_RECORDS>{''.join(history_full(h) for h in history)}</HISTORY_RECORDS>"
    else:
        records = "<HISTORY_RECORDS/>"
    return (
        "<VM>"
        + owner(vm)
        + permissions(vm)
        + e("LAST_POLL", vm["last_poll"])
        + e("STATE", vm["state"])
        + e("LCM_STATE", vm["lcm_state"])
        + e("PREV_STATE", vm["prev_state"])
        + e("PREV_LCM_STATE", vm["prev_lcm_state"])
        + e("RESCHED", vm["resched"])
        + e("STIME", vm["stime"])
        + e("ETIME", vm["etime"])
        + e("DEPLOY_ID", vm["deploy_id"])
        + f"<MONITORING>{mon}</MONITORING>"
        + "<SCHED_ACTIONS></SCHED_ACTIONS>"
        + tmpl(vm).to_xml("TEMPLATE")
        + tmpl(vm, "user_template").to_xml("USER_TEMPLATE")
        + records
        + disk_snapshots(vm)
        + "<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS></BACKUP_IDS></BACKUPS>"
        + "</VM>"
    )


def disk_snapshots(vm: Obj) -> str:
    out = []
    for disk_id, snaps in sorted(vm.get("snapshots", {}).items(), key=lambda i: int(i[0])):
        if not snaps["list"]:
            continue
        body = cdata("ALLOW_ORPHANS", "NO") + cdata("CURRENT_BASE", snaps["current"])
        body += cdata("DISK_ID", disk_id) + cdata("NEXT_SNAPSHOT", snaps["next"])
        for s in snaps["list"]:
            body += "<SNAPSHOT>" + cdata("ACTIVE", "NO") + cdata("DATE", s["date"])
            body += cdata("ID", s["id"]) + cdata("NAME", s["name"])
            body += cdata("PARENT", -1) + cdata("SIZE", s["size"]) + "</SNAPSHOT>"
        out.append(f"<SNAPSHOTS>{body}</SNAPSHOTS>")
    return "".join(out)


_SHORT_DISK = (
    "DISK_ID",
    "DATASTORE",
    "DATASTORE_ID",
    "IMAGE",
    "IMAGE_ID",
    "SIZE",
    "TYPE",
    "CLONE",
    "CLONE_TARGET",
    "LN_TARGET",
    "DISK_SNAPSHOT_TOTAL_SIZE",
)
_SHORT_NIC_OPTIONAL = (
    "IP",
    "EXTERNAL_IP",
    "IP6",
    "IP6_ULA",
    "IP6_LINK",
    "IP6_GLOBAL",
    "NETWORK_MODE",
    "SCHED_REQUIREMENTS",
    "SCHED_RANK",
)
_SHORT_NIC = ("MAC", "NETWORK", "NETWORK_ID", "NIC_ID", "SECURITY_GROUPS")
_SHORT_USER = (
    "LABELS",
    "ERROR",
    "SCHED_MESSAGE",
    "SCHED_RANK",
    "SCHED_DS_RANK",
    "SCHED_REQUIREMENTS",
    "SCHED_DS_REQUIREMENTS",
    "USER_PRIORITY",
)


def vm_short(vm: Obj) -> str:
    """`VirtualMachine::to_xml_short` (`one.vmpool.info`)."""
    t = tmpl(vm)
    disks = "".join(
        "<DISK>" + "".join(cdata(k, d.get(k, "")) for k in _SHORT_DISK) + "</DISK>"
        for d in t.vectors("DISK")
    )
    nics = "".join(
        "<NIC>"
        + "".join(cdata(k, n[k]) for k in _SHORT_NIC_OPTIONAL if n.get(k))
        + "".join(cdata(k, n.get(k, "")) for k in _SHORT_NIC)
        + "</NIC>"
        for n in t.vectors("NIC")
    )
    graphics = t.vector("GRAPHICS")
    monitoring = vm.get("monitoring") or {}
    if monitoring and vm["state"] != 6:
        mon = "<MONITORING>" + "".join(cdata(k, monitoring.get(k, "")) for k in ("CPU", "MEMORY"))
        mon += cdata("STATE", "") + "</MONITORING>"
    else:
        mon = "<MONITORING/>"
    user = tmpl(vm, "user_template")
    if len(user):
        shown = "".join(cdata(k, user.get(k)) for k in _SHORT_USER if user.get(k))
        shown += "".join(attr_xml("SCHED_ACTION", v) for v in user.vectors("SCHED_ACTION"))
        user_xml = f"<USER_TEMPLATE>{shown}</USER_TEMPLATE>"
    else:
        user_xml = "<USER_TEMPLATE/>"
    history = vm["history"][-1:]
    if history:
        records = f"<HISTORY_RECORDS>{history_short(history[0])}</HISTORY_RECORDS>"
    else:
        records = "<HISTORY_RECORDS/>"
    return (
        "<VM>"
        + owner(vm)
        + e("LAST_POLL", vm["last_poll"] if vm["state"] != 6 else 0)
        + e("STATE", vm["state"])
        + e("LCM_STATE", vm["lcm_state"])
        + e("RESCHED", vm["resched"])
        + e("STIME", vm["stime"])
        + e("ETIME", vm["etime"])
        + e("DEPLOY_ID", vm["deploy_id"])
        + "<TEMPLATE>"
        + e("CPU", t.get("CPU", ""))
        + e("MEMORY", t.get("MEMORY", ""))
        + e("VCPU", t.get("VCPU", ""))
        + disks
        + nics
        + (attr_xml("GRAPHICS", graphics) if graphics is not None else "")
        + "</TEMPLATE>"
        + mon
        + user_xml
        + records
        + "</VM>"
    )


def vm_monitoring(vm: Obj) -> str:
    """`one.vm.monitoring`: the monitoring records kept for the VM."""
    records = "".join(
        "<MONITORING>" + "".join(cdata(k, m[k]) for k in sorted(m)) + "</MONITORING>"
        for m in vm.get("monitoring_records", [])
    )
    return f"<MONITORING_DATA>{records}</MONITORING_DATA>"


# --- images, templates, networks, security groups -----------------------------------------


def image(img: Obj) -> str:
    """`Image::to_xml` (6.10: no MODTIME)."""
    snaps = img.get("snapshots", {"list": [], "current": -1, "next": 0})
    snap_body = cdata("ALLOW_ORPHANS", "NO") + cdata("CURRENT_BASE", snaps["current"])
    snap_body += cdata("NEXT_SNAPSHOT", snaps["next"])
    return (
        "<IMAGE>"
        + owner(img)
        + permissions(img)
        + e("TYPE", img["type"])
        + e("DISK_TYPE", img["disk_type"])
        + e("PERSISTENT", img["persistent"])
        + e("REGTIME", img["regtime"])
        + cdata("SOURCE", img["source"])
        + cdata("PATH", img["path"])
        + cdata("FORMAT", img["format"])
        + cdata("FS", img["fs"])
        + e("SIZE", img["size"])
        + e("STATE", img["state"])
        # oned stores an image with PREV_STATE = STATE (`set_prev_state` on every update).
        + e("PREV_STATE", img["state"])
        + e("RUNNING_VMS", len(img["vms"]))
        + e("CLONING_OPS", img["cloning_ops"])
        + e("CLONING_ID", img["cloning_id"])
        + e("TARGET_SNAPSHOT", -1)
        + e("DATASTORE_ID", img["datastore_id"])
        + e("DATASTORE", img["datastore"])
        + ids("VMS", img["vms"])
        + ids("CLONES", img["clones"])
        + "<APP_CLONES></APP_CLONES>"
        + tmpl(img).to_xml()
        + f"<SNAPSHOTS>{snap_body}</SNAPSHOTS>"
        + "<BACKUP_INCREMENTS></BACKUP_INCREMENTS><BACKUP_DISK_IDS></BACKUP_DISK_IDS>"
        + "</IMAGE>"
    )


def vm_template(t: Obj) -> str:
    """`VMTemplate::to_xml`."""
    return (
        "<VMTEMPLATE>"
        + owner(t)
        + permissions(t)
        + e("REGTIME", t["regtime"])
        + tmpl(t).to_xml()
        + "</VMTEMPLATE>"
    )


def _ar(ar: Obj, extended: bool, visible_vm) -> str:
    """`AddressRange::to_xml`: leases listed only in `one.vn.info`. The short body (the
    pool's) has ALLOCATED only once a lease was ever taken (`allocated_to_attr`)."""
    extra = {k: v for k, v in ar["attrs"].items()}
    body = Template([("AR_ID", str(ar["ar_id"]))] + list(extra.items()))
    if not extended:
        allocated = "".join(
            f" {idx} {(0x1000000000 if owner_kind == 'vm' else 0x4000000000) | oid}"
            for idx, (owner_kind, oid) in sorted(
                ((int(i), (lease["kind"], lease["id"])) for i, lease in ar["leases"].items())
            )
        )
        if ar.get("allocated") or ar["leases"]:
            body.add("ALLOCATED", allocated)
        return f"<AR>{body.body_xml()}</AR>"
    size = int(ar["attrs"]["SIZE"])
    inner = body.body_xml()
    inner += cdata("MAC_END", dummy.mac_at(ar, size - 1))
    if "IP" in ar["attrs"]:
        inner += cdata("IP_END", dummy.ip_at(ar, size - 1))
    inner += e("USED_LEASES", len(ar["leases"]))
    leases = ""
    for idx, lease in sorted(ar["leases"].items(), key=lambda i: int(i[0])):
        if lease["kind"] == "vm" and not visible_vm(lease["id"]):
            continue
        leases += "<LEASE>"
        if "IP" in ar["attrs"]:
            leases += cdata("IP", dummy.ip_at(ar, int(idx)))
        leases += cdata("MAC", dummy.mac_at(ar, int(idx)))
        leases += cdata("VM" if lease["kind"] == "vm" else "VNET", lease["id"]) + "</LEASE>"
    inner += f"<LEASES>{leases}</LEASES>"
    return f"<AR>{inner}</AR>"


def vnet(vn: Obj, extended: bool, visible_vm=lambda vid: True) -> str:
    """`VirtualNetwork::to_xml_extended` (6.10: no TEMPLATE_ID, no NEXT_INDEX)."""
    t = tmpl(vn)

    def opt(tag: str) -> str:
        value = t.get(tag, "")
        return cdata(tag, value) if value else f"<{tag}/>"

    used = sum(len(ar["leases"]) for ar in vn["ars"])
    parent = vn.get("parent_network_id", "")
    return (
        "<VNET>"
        + owner(vn)
        + permissions(vn)
        + ids("CLUSTERS", vn["clusters"])
        + cdata("BRIDGE", t.get("BRIDGE", ""))
        + cdata("BRIDGE_TYPE", t.get("BRIDGE_TYPE", ""))
        + cdata("STATE", vn["state"])
        + cdata("PREV_STATE", vn["prev_state"])
        + (e("PARENT_NETWORK_ID", parent) if parent != "" else "<PARENT_NETWORK_ID/>")
        + cdata("VN_MAD", t.get("VN_MAD", ""))
        + opt("PHYDEV")
        + opt("VLAN_ID")
        + opt("OUTER_VLAN_ID")
        + e("VLAN_ID_AUTOMATIC", 0)
        + e("OUTER_VLAN_ID_AUTOMATIC", 0)
        + e("USED_LEASES", used)
        + "<VROUTERS></VROUTERS>"
        + ids("UPDATED_VMS", vn.get("updated_vms", []))
        + "<OUTDATED_VMS></OUTDATED_VMS><UPDATING_VMS></UPDATING_VMS><ERROR_VMS></ERROR_VMS>"
        + t.to_xml()
        + "<AR_POOL>"
        + "".join(_ar(ar, extended, visible_vm) for ar in vn["ars"])
        + "</AR_POOL>"
        + "</VNET>"
    )


def secgroup(sg: Obj) -> str:
    """`SecurityGroup::to_xml`."""
    return (
        "<SECURITY_GROUP>"
        + owner(sg)
        + permissions(sg)
        + ids("UPDATED_VMS", sg.get("updated_vms", []))
        + "<OUTDATED_VMS></OUTDATED_VMS><UPDATING_VMS></UPDATING_VMS><ERROR_VMS></ERROR_VMS>"
        + tmpl(sg).to_xml()
        + "</SECURITY_GROUP>"
    )


# --- users and groups ---------------------------------------------------------------------

_QUOTA_SETS = ("DATASTORE_QUOTA", "NETWORK_QUOTA", "VM_QUOTA", "IMAGE_QUOTA")
EMPTY_QUOTAS = "".join(f"<{q}></{q}>" for q in _QUOTA_SETS)


def quotas(cloud: Cloud, user: Obj) -> str:
    """`Quotas::to_xml` with the usage counters of `cloud.usage`."""
    return "".join(cloud.quota_xml(user, q) for q in _QUOTA_SETS)


def user_body(user: Obj) -> str:
    login = "".join(
        "<LOGIN_TOKEN>"
        + e("TOKEN", tok["token"])
        + e("EXPIRATION_TIME", tok["expires"])
        + e("EGID", tok["egid"])
        + "</LOGIN_TOKEN>"
        for tok in user.get("tokens", [])
    )
    return (
        e("ID", user["id"])
        + e("GID", user["gid"])
        + ids("GROUPS", sorted(user["groups"]))
        + e("GNAME", user["gname"])
        + e("NAME", user["name"])
        + cdata("PASSWORD", user["password"])
        + cdata("AUTH_DRIVER", user["driver"])
        + e("ENABLED", int(user["enabled"]))
        + login
        + tmpl(user).to_xml()
    )


def user(cloud: Cloud, u: Obj) -> str:
    """`User::to_xml_extended` (`one.user.info`): quotas and default quotas inside."""
    return (
        "<USER>"
        + user_body(u)
        + quotas(cloud, u)
        + f"<DEFAULT_USER_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_USER_QUOTAS>"
        + "</USER>"
    )


def user_pool(cloud: Cloud, users: list[Obj]) -> str:
    """`UserPool::dump`: each USER followed by a QUOTAS sibling, defaults at the end."""
    body = "".join(
        f"<USER>{user_body(u)}</USER><QUOTAS>{e('ID', u['id'])}{quotas(cloud, u)}</QUOTAS>"
        for u in users
    )
    return f"<USER_POOL>{body}<DEFAULT_USER_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_USER_QUOTAS></USER_POOL>"


def group(g: Obj, members: list[int], with_quotas: bool = True) -> str:
    """`Group::to_xml_extended`."""
    body = (
        e("ID", g["id"])
        + e("NAME", g["name"])
        + tmpl(g).to_xml()
        + ids("USERS", members)
        + ids("ADMINS", g.get("admins", []))
    )
    if with_quotas:
        body += EMPTY_QUOTAS + f"<DEFAULT_GROUP_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_GROUP_QUOTAS>"
    return f"<GROUP>{body}</GROUP>"


def group_pool(groups: list[tuple[Obj, list[int]]]) -> str:
    """`GroupPool::dump`: GROUP + QUOTAS siblings, DEFAULT_GROUP_QUOTAS at the end."""
    body = "".join(
        group(g, members, with_quotas=False) + f"<QUOTAS>{e('ID', g['id'])}{EMPTY_QUOTAS}</QUOTAS>"
        for g, members in groups
    )
    return (
        f"<GROUP_POOL>{body}<DEFAULT_GROUP_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_GROUP_QUOTAS>"
        "</GROUP_POOL>"
    )


# --- infrastructure -----------------------------------------------------------------------


def host(
    h: Obj, cluster_name: str, usage: dict[str, Any], now: int, monitoring: bool = True
) -> str:
    """`Host::to_xml` with a dummy-driver probe (8 cores, 16 GiB, the fixture's devices).

    `one.host.info` adds the last monitoring record; the pool has `<MONITORING/>`."""
    cpu_usage = int(round(usage["cpu"]))
    mem_usage = int(usage["memory"])
    share = (
        e("MEM_USAGE", mem_usage)
        + e("CPU_USAGE", cpu_usage)
        + e("TOTAL_MEM", dummy.TOTAL_MEM)
        + e("TOTAL_CPU", dummy.TOTAL_CPU)
        + e("MAX_MEM", h["max_mem"])
        + e("MAX_CPU", h["max_cpu"])
        + e("RUNNING_VMS", usage["vms"])
        + e("VMS_THREAD", 1)
        + "<DATASTORES>"
        + cdata("DISK_USAGE", 0)
        + cdata("FREE_DISK", 20480)
        + cdata("MAX_DISK", 20480)
        + cdata("USED_DISK", 0)
        + "</DATASTORES>"
        + dummy.PCI_DEVICES
        + dummy.NUMA_NODES
    )
    free_cpu = max(dummy.TOTAL_CPU - cpu_usage, 0)
    free_mem = max(dummy.TOTAL_MEM - mem_usage, 0)
    record = (
        e("TIMESTAMP", h.get("last_mon_time", now))
        + e("ID", h["id"])
        + "<CAPACITY>"
        + cdata("FREE_CPU", free_cpu)
        + cdata("FREE_MEMORY", free_mem)
        + cdata("USED_CPU", cpu_usage)
        + cdata("USED_MEMORY", mem_usage)
        + "</CAPACITY>"
        + "<SYSTEM>"
        + cdata("NETRX", 0)
        + cdata("NETTX", 0)
        + "</SYSTEM>"
        + dummy.NUMA_MONITORING
    )
    return (
        "<HOST>"
        + e("ID", h["id"])
        + e("NAME", h["name"])
        + e("STATE", h["state"])
        + e("PREV_STATE", h["prev_state"])
        + cdata("IM_MAD", h["im_mad"])
        + cdata("VM_MAD", h["vm_mad"])
        + e("CLUSTER_ID", h["cluster_id"])
        + e("CLUSTER", cluster_name)
        + f"<HOST_SHARE>{share}</HOST_SHARE>"
        + ids("VMS", usage["vm_ids"])
        + tmpl(h).to_xml()
        + (f"<MONITORING>{record}</MONITORING>" if monitoring else "<MONITORING/>")
        + "</HOST>"
    )


def cluster(c: Obj) -> str:
    """`Cluster::to_xml`."""
    return (
        "<CLUSTER>"
        + e("ID", c["id"])
        + e("NAME", c["name"])
        + ids("HOSTS", c["hosts"])
        + ids("DATASTORES", c["datastores"])
        + ids("VNETS", c["vnets"])
        + tmpl(c).to_xml()
        + "</CLUSTER>"
    )


def datastore(ds: Obj, used_mb: int) -> str:
    """`Datastore::to_xml`."""
    total = ds["total_mb"]
    return (
        "<DATASTORE>"
        + owner(ds)
        + permissions(ds)
        + cdata("DS_MAD", ds["ds_mad"])
        + cdata("TM_MAD", ds["tm_mad"])
        + cdata("BASE_PATH", ds["base_path"])
        + e("TYPE", ds["type"])
        + e("DISK_TYPE", ds["disk_type"])
        + e("STATE", ds["state"])
        + ids("CLUSTERS", ds["clusters"])
        + e("TOTAL_MB", total)
        + e("FREE_MB", max(total - used_mb, 0))
        + e("USED_MB", used_mb)
        + ids("IMAGES", ds["images"])
        + tmpl(ds).to_xml()
        + "</DATASTORE>"
    )


def zone(z: Obj) -> str:
    """`Zone::to_xml` (single zone, no raft servers)."""
    return (
        "<ZONE>"
        + e("ID", z["id"])
        + e("NAME", z["name"])
        + e("STATE", z["state"])
        + tmpl(z).to_xml()
        + "<SERVER_POOL></SERVER_POOL>"
        + "</ZONE>"
    )


def pool(root: str, items: list[str]) -> str:
    return f"<{root}>{''.join(items)}</{root}>"
