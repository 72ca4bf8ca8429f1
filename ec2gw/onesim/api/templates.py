"""`one.template.*` and `one.templatepool.info`."""

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
from ec2gw.onesim.api.images import image_delete
from ec2gw.onesim.api.vms import create_vm
from ec2gw.onesim.cloud import Cloud, now
from ec2gw.onesim.rpc import (
    FAULT_TYPE,
    RpcFault,
)
from ec2gw.onesim.template import Template


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
