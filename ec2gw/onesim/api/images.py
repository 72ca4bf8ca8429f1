"""`one.image.*` and `one.imagepool.info` (dummy datastore driver: every PATH is 1024 MB)."""

from __future__ import annotations

import re
import time

from ec2gw.onesim import documents
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
from ec2gw.onesim.cloud import Cloud, now
from ec2gw.onesim.rpc import (
    ACTION,
    INTERNAL,
    OneError,
)
from ec2gw.onesim.template import Template

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
        source="",  # the datastore driver's answer gives it (`Cloud.advance`)
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


_SIZE = re.compile(r"\s*[-+]?\d+")


def _stat_problem(tmpl: Template, type_name: str) -> str | None:
    """Why `ImageManager::stat_image` cannot size the image, or None: a SOURCE, or no
    PATH for an OS or DATABLOCK image, needs an integer SIZE; other types need a PATH."""
    size_ok = _SIZE.match(tmpl.get("SIZE") or "") is not None
    if tmpl.get("SOURCE") or (type_name in ("OS", "DATABLOCK") and not tmpl.get("PATH")):
        return None if size_ok else "Wrong number or missing SIZE attribute."
    if not tmpl.get("PATH") and type_name in ("CDROM", "KERNEL", "RAMDISK", "CONTEXT"):
        return f"Either PATH or SOURCE are required for {tmpl.get('TYPE')}"
    return None


@rpc("one.image.allocate", "sib", 2)
def image_allocate(
    cloud: Cloud, caller: Caller, method: str, text: str, ds_id: int, skip: bool = False
) -> int:
    tmpl = parse(text, method, replace_mode=True)  # an ImageTemplate: one per name
    ds = cloud.fetch(caller, "datastore", ds_id, USE, method)
    cloud.authorize(caller, "image", None, CREATE, method)
    if ds["type"] == 1:
        raise allocate_error(
            "image",
            method,
            "New images can only be allocated in a files or image datastore.",
        )
    type_name = (tmpl.get("TYPE") or "OS").upper()
    path = tmpl.get("PATH") or ""
    problem = _stat_problem(tmpl, type_name)
    if problem is not None:
        raise OneError(INTERNAL, f"[{method}] Cannot parse image SIZE: {problem}")
    name = tmpl.get("NAME") or ""
    if not name:
        raise allocate_error("image", method, "Invalid NAME, it cannot be empty")
    if type_name not in IMAGE_TYPES:
        raise allocate_error("image", method, f"Unknown type {type_name}.")
    img_type = IMAGE_TYPES[type_name]
    # The dummy datastore's `stat` reports 1024 MB for every path.
    size = 1024 if path and not tmpl.get("SOURCE") else int(_SIZE.match(tmpl.get("SIZE")).group())
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
    update_template(image, text, append, method, kind="image")
    cloud.touch("image", image)
    return iid


LOCKED_MESSAGE = (
    "Image locked, use --force flag to remove the image. "
    "Force delete may leave some files on Datastore"
)


def _in_use(image: Obj) -> str | None:
    """Why `ImageManager::delete_image` keeps the image, or None."""
    if image["state"] == 6:  # CLONE
        return f"There are {image['cloning_ops']} active clone operations."
    if image["state"] in (2, 8) or (image["state"] == 1 and image["vms"]):  # USED(_PERS)
        return f"There are {len(image['vms'])} VMs using it."
    return None


@rpc("one.image.delete", "ib", 1)
def image_delete(cloud: Cloud, caller: Caller, method: str, iid: int, force: bool = False) -> int:
    """oned 6.10.5 `ImageDelete::request_execute` (src/rm/RequestManagerDelete.cc): a
    LOCKED image is refused without `force` (INTERNAL, before any authorization, with the
    image's id in the reply) and needs ADMIN with it, so its owner alone cannot delete it;
    `force` writes FORCE_DELETE into the template before authorization. Then
    `ImageManager::delete_image` (src/image/ImageManagerActions.cc): a LOCKED image stops
    its clone (`release_cloning_image`) or its hot save-as (SAVE_AS_HOT: the VM of
    SAVED_VM_ID leaves HOTPLUG_SAVEAS and its disk is unmarked); an image the driver never
    gave a SOURCE is dropped at once, any other shows DELETE until the driver answers."""
    image = cloud.get("image", iid, method)
    op = MANAGE
    if image["state"] == 4:  # `Image::is_locked` (LOCKED_USED[_PERS] are not modelled)
        op = ADMIN
        if not force:
            raise OneError(INTERNAL, f"[{method}] {LOCKED_MESSAGE}", iid, show_id=True)
    if force:
        tmpl = Template.from_json(image["template"])
        tmpl.replace("FORCE_DELETE", "YES")
        image["template"] = tmpl.to_json()
        cloud.touch("image", image)
    cloud.authorize(caller, "image", image, op, method)
    problem = _in_use(image)
    if problem is not None:
        raise OneError(ACTION, f"[{method}] Cannot delete image. {problem}", iid)
    saving_vm = None
    if image["state"] == 4:
        tmpl = Template.from_json(image["template"])
        if (tmpl.get("SAVE_AS_HOT") or "").upper() in ("YES", "TRUE"):  # `is_saving`
            saving_vm = cloud.pools["vm"].get(int(tmpl.get("SAVED_VM_ID") or -1))
        # the driver's pending answer (copy, mkfs or save-as copy) changes nothing now:
        # `_cp`/`_mkfs` ignore a gone or DELETE image, the TM's answer finds the VM out of
        # HOTPLUG_SAVEAS ("Wrong state in TrM answer")
        image["due"], image["saveas"] = None, None
        if image.get("cloning_id", -1) != -1:
            cloud.release_clone(image)
    if not image["source"]:
        cloud.drop("image", iid)  # `ipool->drop`: no RM to the driver
    elif image["state"] != 7:
        cloud.delete_later("image", image, 7)  # DELETE until the datastore driver answers
    if saving_vm is not None:
        cloud.clear_saveas(saving_vm)
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
    if src["state"] not in (1, 2, 6):  # READY, USED, CLONE
        raise OneError(
            ACTION, f"[{method}] Cannot clone image in state {IMAGE_STATE_NAMES[src['state']]}", iid
        )
    if src["size"] > ds["total_mb"] - cloud.datastore_used(ds["id"]):
        raise OneError(ACTION, f"[{method}] Not enough space in datastore", ds["id"])
    cloud.check_name("image", name, caller.uid, method)
    # `Image::clone_template`: the copy is made from the source's SOURCE (its PATH), in
    # its format, persistent as it is
    tmpl = Template.from_json(src["template"])
    tmpl.replace("NAME", name)
    persistent = bool(src["persistent"])
    image = new_image(
        cloud, caller, method, tmpl, ds, src["size"], src["source"], src["type"], persistent
    )
    image.update(format=src["format"], cloning_id=src["id"])
    # `ImageManager::set_clone_state`: the source is CLONE (persistent) or USED meanwhile
    src["clones"].append(image["id"])
    src["cloning_ops"] += 1
    if src["state"] == 1:
        src["prev_state"], src["state"] = src["state"], 6 if persistent else 2
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
