"""`one.vm.*` and `one.vmpool.*`: creation (disks, NICs, context), actions, hotplug."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator

from ec2gw.onesim import acl, documents, dummy
from ec2gw.onesim import states as st
from ec2gw.onesim.acl import ADMIN, CREATE, MANAGE, USE, Caller
from ec2gw.onesim.api.base import (
    Obj,
    allocate_error,
    api_error,
    list_pool,
    parse,
    rpc,
    update_template,
)
from ec2gw.onesim.api.images import IMAGE_STATE_NAMES, IMAGE_TYPE_NAMES, IMAGE_TYPES, new_image
from ec2gw.onesim.api.infra import infra
from ec2gw.onesim.api.networks import join_groups
from ec2gw.onesim.cloud import OBJECT_NAMES, Cloud, new_uuid, now
from ec2gw.onesim.rpc import (
    ACTION,
    ALLOCATE,
    INTERNAL,
    OneError,
)
from ec2gw.onesim.template import Template

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
            raise allocate_error("vm", method, f"{word} with ID: {spec[id_key]} does not exist")
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
    # `VirtualNetworkPool::get_nic_by_name`, `ImagePool::get_disk_by_name`
    what, where = ("a network", "NIC") if kind == "vnet" else ("an image", "DISK")
    raise allocate_error(
        "vm",
        method,
        f"User {owner} does not own {what} with name: {name} . Set {key}_UNAME or {key}_UID "
        f"of owner in {where}.",
    )


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
            if image["persistent"]:  # Image::disk_attribute
                filled["PERSISTENT"] = "YES"
            if disk.get("IMAGE_UNAME"):
                filled["IMAGE_UNAME"] = disk["IMAGE_UNAME"]
            for key, value in disk.items():
                if key not in ("IMAGE_ID", "IMAGE", "SIZE"):
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
            ar["allocated"] = True
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
                "TARGET": f"one-{vm_id}-{nic_id}",
                "VN_MAD": vt.get("VN_MAD", ""),
            }
            if "IP" in ar["attrs"]:
                filled["IP"] = dummy.ip_at(ar, index)
            if vn.get("parent_network_id", "") != "":  # a reservation
                filled["PARENT_NETWORK_ID"] = vn["parent_network_id"]
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
            # `VirtualNetwork::nic_attribute`: the NIC's groups, the network's and its
            # address range's, all together.
            filled["SECURITY_GROUPS"] = join_groups(
                nic.get("SECURITY_GROUPS", ""),
                vt.get("SECURITY_GROUPS") or "",
                ar["attrs"].get("SECURITY_GROUPS", ""),
            )
            if "NETWORK_UNAME" in nic:
                filled["NETWORK_UNAME"] = nic["NETWORK_UNAME"]
            nic.clear()
            nic.update(filled)
            leased.append(nic)
            if vm_id not in vn["updated_vms"]:
                cloud.add_member("vnet", vn, vm_id)
            cloud.touch("vnet", vn)
            cloud.track_security_groups(nic, vm_id, True)
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
            cloud.add_member("image", image, vm_id)
            image["prev_state"], image["state"] = image["state"], 8 if image["persistent"] else 2
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


def _vm_pool_doc(
    cloud: Cloud,
    caller: Caller,
    method: str,
    flag: int,
    start: int,
    end: int,
    state: int,
    query: str,
    render: Callable[[Obj], str],
) -> str:
    if query:
        raise OneError(
            INTERNAL, f"[{method}] JSON query search is not supported by the SQL backend"
        )
    vms = vm_pool(cloud, caller, method, flag, start, end, state)
    return documents.pool("VM_POOL", [render(v) for v in vms])


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
    """Short bodies, as oned's `to_xml_short`."""
    render = documents.vm_short
    return _vm_pool_doc(cloud, caller, method, flag, start, end, state, query, render)


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
    """Full bodies with the last history record only."""

    def render(v: Obj) -> str:
        return documents.vm_full(v, all_history=False)

    return _vm_pool_doc(cloud, caller, method, flag, start, end, state, query, render)


@rpc("one.vmpool.infoset", "sb")
def vmpool_infoset(cloud: Cloud, caller: Caller, method: str, ids: str, extended: bool) -> str:
    try:
        wanted = {int(x) for x in ids.split(",") if x.strip()}
    except ValueError:
        raise api_error(method, "Wrong list of IDs") from None
    # Looked up by id, not by scanning the pool: a lookup must not grow with the pool size.
    pool = cloud.pools["vm"]
    vms = [
        pool[i]
        for i in sorted(wanted, reverse=True)
        if i in pool and cloud.visible(caller, "vm", pool[i], -2)
    ]
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
    for name, members in UPDATECONF_ATTRS.items():
        _replace_vector_values(tmpl, new, name, members, append == 1)
    changed = _update_context(cloud, caller, vm, tmpl, new.vector("CONTEXT"), append == 1, method)
    if new.vector("BACKUP_CONFIG") is not None:
        tmpl.replace("BACKUP_CONFIG", new.vector("BACKUP_CONFIG"))
    vm["template"] = tmpl.to_json()
    cloud.touch("vm", vm)
    if changed and vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING:
        # DispatchManager::live_updateconf: HOTPLUG until the driver's update_conf answers
        return _hotplugged(cloud, vm, st.HOTPLUG)
    return vid


# VirtualMachineTemplate::UPDATECONF_ATTRS: the members one.vm.updateconf may change.
UPDATECONF_ATTRS = {
    "OS": ["ARCH", "MACHINE", "KERNEL", "INITRD", "BOOTLOADER", "BOOT", "KERNEL_CMD", "ROOT"]
    + ["SD_DISK_BUS", "UUID", "FIRMWARE"],
    "FEATURES": ["PAE", "ACPI", "APIC", "LOCALTIME", "HYPERV", "GUEST_AGENT", "IOTHREADS"]
    + ["VIRTIO_SCSI_QUEUES", "VIRTIO_BLK_QUEUES"],
    "INPUT": ["TYPE", "BUS"],
    "GRAPHICS": ["TYPE", "LISTEN", "PASSWD", "KEYMAP", "COMMAND"],
    "VIDEO": ["IOMMU", "ATS", "TYPE", "VRAM", "RESOLUTION"],
    "RAW": ["TYPE", "DATA", "VALIDATE", "DATA_VMX"],
    "CPU_MODEL": ["MODEL", "FEATURES"],
}
_ETH = re.compile(r"ETH\d+_\w+")


def _replace_vector_values(
    tmpl: Template, new: Template, name: str, members: list[str], append: bool
) -> None:
    """`replace_vector_values` of VirtualMachine.cc: a section the update lacks goes in
    replace mode; a new one is added; otherwise its listed members are set or dropped."""
    value, old = new.vector(name), tmpl.vector(name)
    if value is None:
        if not append:
            tmpl.erase(name)
    elif old is None:
        tmpl.add(name, value)
    else:
        for member in members:
            if member in value:
                old[member] = value[member]
            elif not append:
                old.pop(member, None)


def _update_context(
    cloud: Cloud,
    caller: Caller,
    vm: Obj,
    tmpl: Template,
    new: dict[str, str] | None,
    append: bool,
    method: str,
) -> bool:
    """CONTEXT as `VirtualMachine::updateconf` changes it: the update's values (ETHx_*
    may not change), TARGET and DISK_ID kept, ETHx_* rebuilt when NETWORK is set anew
    (always in replace mode). True when the context changed."""
    old = tmpl.vector("CONTEXT")
    if new is None:
        return False
    if old is None:
        raise OneError(
            INTERNAL, f"[{method}] Virtual machine does not have context, cannot add a new one."
        )
    changed = any(k not in old or old[k] != v for k, v in new.items())
    changed = changed or (not append and any(k not in new for k in old))
    for key, value in new.items():
        if _ETH.fullmatch(key) and old.get(key) != value:
            what = "add" if key not in old else "update"
            raise OneError(
                INTERNAL, f"[{method}] Unable to {what} {key}, update NIC to update network context"
            )
    equal = {k: v for k, v in new.items() if old.get(k) == v}
    fresh = {k: v for k, v in new.items() if k not in equal or (k == "NETWORK" and not append)}
    built = context_for(cloud, caller, vm["id"], vm["name"], tmpl, fresh)
    built["TARGET"], built["DISK_ID"] = old.get("TARGET", ""), old.get("DISK_ID", "")
    result = {**old, **built} if append else {**built, **equal}
    tmpl.erase("CONTEXT")
    tmpl.add("CONTEXT", result)
    return changed


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
        elif state != st.DONE:  # terminating a DONE VM does nothing, successfully
            raise OneError(
                ACTION,
                f'[{method}] Error performing action "{action}": Could not terminate VM {vid}, '
                f"wrong state {st.state_name(vm)}.",
            )
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
        used_cpu, used_mem, _ = cloud.host_load(hid)
        if (
            used_cpu + float(tmpl.get("CPU", "0")) * 100 > host["max_cpu"]
            or used_mem + int(float(tmpl.get("MEMORY", "0"))) * 1024 > host["max_mem"]
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
    new = parse(text, method)
    # the values are checked before the state, as INTERNAL failures
    # (VirtualMachineResize::request_execute; the state is DispatchManager::resize's)
    if new.get("CPU") is not None and not _positive_float(new.get("CPU")):
        raise OneError(INTERNAL, f"[{method}] CPU must be a positive float or integer value.", vid)
    if new.get("MEMORY") is not None and not _positive_int(new.get("MEMORY")):
        raise OneError(INTERNAL, f"[{method}] MEMORY must be a positive integer value.", vid)
    if new.get("VCPU") is not None and not _positive_int(new.get("VCPU")):
        raise OneError(INTERNAL, f"[{method}] VCPU must be a positive integer value.", vid)
    allowed = (st.PENDING, st.HOLD, st.POWEROFF, st.UNDEPLOYED, st.CLONING, st.CLONING_FAILURE)
    if vm["state"] not in allowed and not (
        vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING
    ):
        raise OneError(
            ACTION, f"[{method}] Resize action is not available for state {st.state_name(vm)}", vid
        )
    tmpl = Template.from_json(vm["template"])
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
        used_cpu, used_mem, _ = cloud.host_load(host["id"])
        if used_cpu + d_cpu * 100 > host["max_cpu"] or used_mem + d_mem * 1024 > host["max_mem"]:
            raise OneError(
                ACTION, f"[{method}] Host {host['id']} does not have enough capacity", vid
            )
    for key in ("CPU", "MEMORY", "VCPU"):
        if new.get(key) is not None:
            tmpl.replace(key, new.get(key))
    vm["template"] = tmpl.to_json()
    if vm["state"] in (st.POWEROFF, st.ACTIVE):  # DispatchManager::resize
        _close_cp_history(cloud, vm, "resize", caller)
    cloud.touch("vm", vm)
    return vid


def hotplug_state(method: str, vm: Obj, what: str) -> None:
    """`what` in oned's words, e.g. "attach a new disk to" (DispatchManager::attach)."""
    if not (
        vm["state"] == st.POWEROFF or (vm["state"] == st.ACTIVE and vm["lcm_state"] == st.RUNNING)
    ):
        raise OneError(
            ACTION,
            f"[{method}] Could not {what} VM {vm['id']}, wrong state {st.state_name(vm)}.",
        )


@rpc("one.vm.attach", "is")
def vm_attach(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "attach a new disk to")
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
    with _as_action(method):
        filled = expand_disks(cloud, caller, Template([("DISK", disks[0])]), vid, method, next_id)
    disk, image = filled[0]
    if tmpl.get("TM_MAD_SYSTEM"):  # VirtualMachineDisks::set_up_attach
        disk["TM_MAD_SYSTEM"] = tmpl.get("TM_MAD_SYSTEM")
    taken = {d.get("TARGET") for d in existing}
    if disk.get("TARGET") in taken:
        prefix = disk.get("DEV_PREFIX", "sd")
        for letter in "abcdefghijklmnopqrstuvwxyz":
            if prefix + letter not in taken:
                disk["TARGET"] = prefix + letter
                break
    if image is not None:
        cloud.add_member("image", image, vid)
        image["prev_state"], image["state"] = image["state"], 8 if image["persistent"] else 2
    tmpl.add("DISK", disk)
    vm["template"] = tmpl.to_json()
    _close_cp_history(cloud, vm, "disk-attach", caller)
    return _hotplugged(cloud, vm, st.HOTPLUG)


@contextlib.contextmanager
def _as_action(method: str) -> Iterator[None]:
    """A hotplug's disk or NIC that cannot be filled is an ACTION failure on oned, with the
    reason alone (not "Error allocating a new virtual machine.")."""
    try:
        yield
    except OneError as err:
        if err.code != ALLOCATE:
            raise
        reason = err.message.split("Error allocating a new virtual machine. ", 1)[-1]
        raise OneError(ACTION, f"[{method}] {reason}") from None


def _close_cp_history(cloud: Cloud, vm: Obj, action: str, caller: Caller) -> None:
    """`DispatchManager::close_cp_history`: a hotplug closes the current history record
    with its action and opens a copy, which keeps the action before (set_internal_action)."""
    if vm["history"]:
        before = vm["history"][-1].get("action", 0)
        cloud.close_history(vm, action, caller)
        cloud.copy_history(vm)
        vm["history"][-1]["action"] = before


def _hotplugged(cloud: Cloud, vm: Obj, lcm_state: int) -> int:
    """Finish a hotplug: the transient LCM state (the dummy driver is done at once)."""
    if vm["state"] == st.ACTIVE:
        cloud.set_state(vm, st.ACTIVE, lcm_state, 0)
    cloud.touch("vm", vm)
    return vm["id"]


@rpc("one.vm.detach", "ii")
def vm_detach(cloud: Cloud, caller: Caller, method: str, vid: int, disk_id: int) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "detach disk from")
    tmpl = Template.from_json(vm["template"])
    disks = tmpl.vectors("DISK")
    target = next((d for d in disks if d.get("DISK_ID") == str(disk_id)), None)
    if target is None:
        raise OneError(
            ACTION, f"[{method}] Could not detach disk with DISK_ID {disk_id}, it does not exist."
        )
    tmpl.attrs = [(n, v) for n, v in tmpl.attrs if v is not target]
    cloud.release_image(target, vid)
    vm["template"] = tmpl.to_json()
    _close_cp_history(cloud, vm, "disk-detach", caller)
    return _hotplugged(cloud, vm, st.HOTPLUG)


@rpc("one.vm.diskresize", "iis")
def vm_diskresize(
    cloud: Cloud, caller: Caller, method: str, vid: int, disk_id: int, size: str
) -> int:
    """Grow a disk (`VirtualMachineDiskResize`); a persistent image grows with it."""
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "resize disk for")
    tmpl = Template.from_json(vm["template"])
    disk = next((d for d in tmpl.vectors("DISK") if d.get("DISK_ID") == str(disk_id)), None)
    if disk is None:
        raise OneError(ACTION, f"[{method}] VM disk does not exist", vid)
    try:
        new_size = int(float(size))
    except ValueError:
        raise OneError(ACTION, f"[{method}] Wrong size {size}", vid) from None
    if new_size <= int(float(disk.get("SIZE", "0") or 0)):
        raise OneError(ACTION, f"[{method}] New disk size has to be greater than current one", vid)
    disk["SIZE"] = str(new_size)
    image = cloud.pools["image"].get(int(disk["IMAGE_ID"])) if disk.get("IMAGE_ID") else None
    if image is not None and image["persistent"]:
        image["size"] = new_size
        cloud.touch("image", image)
    vm["template"] = tmpl.to_json()
    _close_cp_history(cloud, vm, "disk-resize", caller)
    return _hotplugged(cloud, vm, 62)  # DISK_RESIZE


@rpc("one.vm.attachnic", "is")
def vm_attachnic(cloud: Cloud, caller: Caller, method: str, vid: int, text: str) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "add a new NIC to")
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
    with _as_action(method):
        filled = expand_nics(cloud, vm_caller, Template([("NIC", nics[0])]), vid, method, next_id)
    tmpl.add("NIC", filled[0])
    for rule in security_rules(cloud, Template([("NIC", filled[0])])):
        if rule not in tmpl.vectors("SECURITY_GROUP_RULE"):
            tmpl.add("SECURITY_GROUP_RULE", rule)
    _rebuild_network_context(cloud, vm_caller, vm, tmpl)
    vm["template"] = tmpl.to_json()
    _close_cp_history(cloud, vm, "nic-attach", caller)
    return _hotplugged(cloud, vm, st.HOTPLUG_NIC)


def _rebuild_network_context(cloud: Cloud, caller: Caller, vm: Obj, tmpl: Template) -> None:
    """A NIC attached or detached: the ETHx_* of a NETWORK context follow the NICs
    (`VirtualMachine::generate_network_context`)."""
    context = tmpl.vector("CONTEXT")
    if context is None or context.get("NETWORK", "").upper() != "YES":
        return
    kept = {k: v for k, v in context.items() if not _ETH.fullmatch(k)}
    built = context_for(cloud, caller, vm["id"], vm["name"], tmpl, kept)
    built["TARGET"], built["DISK_ID"] = context.get("TARGET", ""), context.get("DISK_ID", "")
    tmpl.erase("CONTEXT")
    tmpl.add("CONTEXT", {**kept, **built})


@rpc("one.vm.detachnic", "ii")
def vm_detachnic(cloud: Cloud, caller: Caller, method: str, vid: int, nic_id: int) -> int:
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    hotplug_state(method, vm, "detach NIC from")
    tmpl = Template.from_json(vm["template"])
    target = next((n for n in tmpl.vectors("NIC") if n.get("NIC_ID") == str(nic_id)), None)
    if target is None:
        raise OneError(
            ACTION, f"[{method}] Could not detach NIC with NIC_ID {nic_id}, it does not exist."
        )
    tmpl.attrs = [(n, v) for n, v in tmpl.attrs if v is not target]
    cloud.release_resources(vm, nics=[target])
    _rebuild_network_context(cloud, caller, vm, tmpl)
    vm["template"] = tmpl.to_json()
    _close_cp_history(cloud, vm, "nic-detach", caller)
    return _hotplugged(cloud, vm, st.HOTPLUG_NIC)


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
    """A new LOCKED image marked SAVE_AS_HOT (with SAVED_VM_ID etc.), the VM in
    HOTPLUG_SAVEAS(_POWEROFF/_SUSPENDED) and its disk marked; the copy itself is
    `Cloud.saveas_step`, after the datastore driver answers."""
    lc = cloud.lifecycle
    vm = cloud.fetch(caller, "vm", vid, MANAGE, method)
    saving_lcm = st.SAVEAS_STATES.get((vm["state"], vm["lcm_state"]))
    if saving_lcm is None:
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
    image.update(path="", format="save_as", saveas="mkfs", due=time.time() + lc.saveas)
    disk["HOTPLUG_SAVE_AS_ACTIVE"] = "YES"
    disk["HOTPLUG_SAVE_AS_SNAPSHOT_ID"] = str(snap_id)
    vm["template"] = tmpl.to_json()
    cloud.set_state(vm, st.ACTIVE, saving_lcm)
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
        # `DispatchManager::delete_vm`: recorded as a delete; a disk being saved is let go.
        cloud.close_history(vm, "delete", caller)
        tmpl = Template.from_json(vm["template"])
        for disk in tmpl.vectors("DISK"):
            for key in [k for k in disk if k.startswith("HOTPLUG_SAVE_AS")]:
                del disk[key]
        vm["template"] = tmpl.to_json()
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
