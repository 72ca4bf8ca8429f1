"""Hosts, clusters, datastores and zones (objects without an owner, except datastores)."""

from __future__ import annotations

from ec2gw.onesim import documents, dummy
from ec2gw.onesim.acl import ADMIN, CREATE, MANAGE, USE, Caller
from ec2gw.onesim.api.base import (
    Obj,
    allocate_error,
    api_error,
    chmod,
    list_pool,
    parse,
    rpc,
    update_template,
)
from ec2gw.onesim.cloud import Cloud, now
from ec2gw.onesim.rpc import (
    ACTION,
    OneError,
)
from ec2gw.onesim.template import Template


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
    if cloud.host_load(hid)[2]:
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
