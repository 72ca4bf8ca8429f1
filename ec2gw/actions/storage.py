"""EBS volumes and snapshots are OpenNebula images (reference §3.3), as econe had them.

A volume is a persistent DATABLOCK image marked `EBS_VOLUME=YES` (`vol-` + the image id);
it is attached by hot-plugging it as a VM disk (`one.vm.attach`, `DISK=[IMAGE_ID, TARGET]`),
so OpenNebula's own record of which VM uses the image (`VMS`) is the attachment. A snapshot
is an image marked `EBS_SNAPSHOT=YES` (`snap-`): a clone of a detached volume, or the
`one.vm.disksaveas` of an attached one. A new volume's markers and tags are in the
template it is allocated with; a made image gets them right after it is made (if that
fails the image is deleted again), never by replacing the template of an image oned is
still working on:

- a saved disk (`one.vm.disksaveas`) gets them merged in (append=1): its template holds
  oned's SAVE_AS_HOT, SAVED_VM_ID and SAVED_DISK_ID, which the image manager reads to start
  the copy and end the VM's HOTPLUG_SAVEAS; replacing it would erase them;
- a clone's template is a copy of its source's, whose EC2 facts and tags must go, so it is
  written back whole once, as read right after the clone, without them and with the new
  ones. oned's clone callback neither reads nor writes the template, so nothing is lost.

Image templates are in replace mode (one attribute per name): tags are
`EC2_TAG_<digest of the key>` vectors (`documents.TAGS`), never repeated vectors.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from ec2gw.actions import instance_view as view
from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.hotplug import finished, hotplug
from ec2gw.actions.images import (
    _executable_check,
    _image_datastore,
    _owner_check,
    delete_images,
    delete_quietly,
    wrong_vm_state,
)
from ec2gw.actions.instances import vms_by_ids, zones_of
from ec2gw.actions.regions import availability_zones, local_region
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, idempotency, ids, pages
from ec2gw.ec2 import tags as tag_rules
from ec2gw.one import documents
from ec2gw.one.errors import ACTION, ALLOCATE, AUTHORIZATION, NO_EXISTS, OneError, to_ec2_error
from ec2gw.protocol.errors import EC2Error, invalid_value, missing_parameter

log = logging.getLogger("ec2gw.storage")

VOLUME_MARKER = "EBS_VOLUME"
SNAPSHOT_MARKER = "EBS_SNAPSHOT"
# Image TEMPLATE attributes the gateway writes.
AVAILABILITY_ZONE = "EC2_AVAILABILITY_ZONE"
VOLUME_TYPE = "EC2_VOLUME_TYPE"
CLIENT_TOKEN = "EC2_CLIENT_TOKEN"
REQUEST_DIGEST = "EC2_REQUEST_DIGEST"
FROM_SNAPSHOT = "EC2_SNAPSHOT_ID"
FROM_VOLUME = "EC2_VOLUME_ID"
ATTACH_TIME = "EC2_ATTACH_TIME"
DESCRIPTION = "DESCRIPTION"

VOLUME_TYPES = ("standard", "gp2", "gp3", "io1", "io2", "sc1", "st1")
MAX_SIZE_GIB = 16384
DEVICE = re.compile(r"(?:/dev/)?((?:sd|xvd|vd|hd)[a-z]{1,2})")

# OpenNebula image STATE → EC2 volume state (attached states are `in-use`).
VOLUME_STATES = {
    0: "creating",  # INIT
    1: "available",  # READY
    2: "in-use",  # USED
    3: "error",  # DISABLED
    4: "creating",  # LOCKED (datastore driver copying)
    5: "error",  # ERROR
    6: "available",  # CLONE (being snapshotted)
    7: "deleting",  # DELETE
    8: "in-use",  # USED_PERS
    9: "in-use",  # LOCKED_USED
    10: "in-use",  # LOCKED_USED_PERS
}
SNAPSHOT_STATES = {0: "pending", 4: "pending", 5: "error", 7: "error", 3: "error"}
CLONE = 6  # image STATE of a volume a snapshot is being copied from: oned cannot attach it


def _marked(image: documents.Element, marker: str) -> bool:
    return documents.text(image, f"TEMPLATE/{marker}").upper() == "YES"


def _live(image: documents.Element, marker: str) -> bool:
    """Marked so and not being deleted: a deleted volume or snapshot is gone for EC2 clients
    at once, though oned keeps the image (state DELETE) until the driver has removed it."""
    return _marked(image, marker) and not documents.image_deleted(image)


def is_volume(image: documents.Element) -> bool:
    return _live(image, VOLUME_MARKER)


def is_snapshot(image: documents.Element) -> bool:
    return _live(image, SNAPSHOT_MARKER)


def _attr(image: documents.Element, name: str) -> str:
    return documents.text(image, f"TEMPLATE/{name}")


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _gib(image: documents.Element) -> int:
    return view.size_gib(documents.integer(image, "SIZE"))


def _tag_list(image: documents.Element) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in documents.tags(image.find("TEMPLATE")).items()]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource["Tags"]}


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z") if value else None


async def _image(
    ctx: RequestContext, kind: ids.IdKind, ec2_id: str, marker: str
) -> documents.Element:
    """The image behind `vol-`/`snap-` id as the caller sees it, else `*.NotFound`."""
    one_id = kind.decode(ec2_id)
    try:
        image = await ctx.one_doc("one.image.info", one_id)
    except OneError as err:
        if err.code in (NO_EXISTS, AUTHORIZATION):
            raise kind.missing(ec2_id) from None
        raise
    if not _live(image, marker):
        raise kind.missing(ec2_id)
    return image


async def volume_image(ctx: RequestContext, volume_id: str) -> documents.Element:
    return await _image(ctx, ids.VOLUME, volume_id, VOLUME_MARKER)


async def snapshot_image(ctx: RequestContext, snapshot_id: str) -> documents.Element:
    return await _image(ctx, ids.SNAPSHOT, snapshot_id, SNAPSHOT_MARKER)


def _users(image: documents.Element) -> list[int]:
    return [int(v.text) for v in image.iterfind("VMS/ID") if (v.text or "").isdigit()]


async def _vms_using(
    ctx: RequestContext, images: list[documents.Element]
) -> dict[int, documents.Element]:
    """The VMs the volumes are attached to, by id (one `vmpool.infoset` call)."""
    vm_ids = sorted({vm for image in images for vm in _users(image)})
    if not vm_ids:
        return {}
    pool = await ctx.one_doc("one.vmpool.infoset", ",".join(map(str, vm_ids)), True)
    return {documents.integer(vm, "ID"): vm for vm in pool.iterfind("VM")}


def _disk_of(vm: documents.Element, image_id: int) -> documents.Element | None:
    return next(
        (
            d
            for d in vm.iterfind("TEMPLATE/DISK")
            if documents.integer(d, "IMAGE_ID", -1) == image_id
        ),
        None,
    )


def to_volume(
    image: documents.Element, vms: dict[int, documents.Element], default_zone: str
) -> dict[str, Any]:
    """An image marked EBS_VOLUME as EC2's Volume."""
    one_id = documents.integer(image, "ID")
    volume_id = ids.VOLUME.encode(one_id)
    attached = _attr(image, ATTACH_TIME)
    attachments = []
    for vm_id in _users(image):
        vm = vms.get(vm_id)
        disk = _disk_of(vm, one_id) if vm is not None else None
        if disk is None:
            continue
        attachments.append(
            {
                "AttachTime": _time(int(attached)) if attached.isdigit() else None,
                "Device": f"/dev/{documents.text(disk, 'TARGET')}",
                "InstanceId": ids.INSTANCE.encode(vm_id),
                "State": "attached",
                "VolumeId": volume_id,
                "DeleteOnTermination": False,
            }
        )
    state = VOLUME_STATES.get(documents.integer(image, "STATE"), "error")
    if state == "in-use" and not attachments:
        state = "available"
    return {
        "VolumeId": volume_id,
        "Size": _gib(image),
        "SnapshotId": _attr(image, FROM_SNAPSHOT),
        "AvailabilityZone": _attr(image, AVAILABILITY_ZONE) or default_zone,
        "State": state,
        "CreateTime": _time(documents.integer(image, "REGTIME")),
        "Attachments": attachments,
        "Encrypted": False,
        "VolumeType": _attr(image, VOLUME_TYPE) or "standard",
        "MultiAttachEnabled": False,
        "OwnerId": ids.account_id(documents.integer(image, "UID")),
        "Tags": _tag_list(image),
    }


async def _default_zone(ctx: RequestContext) -> str:
    zones = await availability_zones(ctx)
    return zones[0]["ZoneName"] if zones else ""


async def _volumes(ctx: RequestContext, images: list[documents.Element]) -> list[dict[str, Any]]:
    vms, zone = await asyncio.gather(_vms_using(ctx, images), _default_zone(ctx))
    return [to_volume(image, vms, zone) for image in images]


async def _one_volume(ctx: RequestContext, image_id: int) -> dict[str, Any]:
    image = await ctx.one_doc("one.image.info", image_id)
    return (await _volumes(ctx, [image]))[0]


def _space_error(err: OneError, what: str) -> EC2Error:
    """OpenNebula's refusals to create an image, in EC2's words."""
    if err.code == AUTHORIZATION and "quota" in err.message.lower():
        return EC2Error(f"{what}LimitExceeded", f"You have reached your {what.lower()} limit.")
    if err.code == ACTION and "space" in err.message.lower():
        return EC2Error(
            "InsufficientVolumeCapacity", "There is not enough capacity to fulfill the request."
        )
    if wrong_vm_state(err):
        return EC2Error("IncorrectState", "The source is not in a state that allows this.")
    if err.code == ALLOCATE and "Cannot clone image in state" in err.message:
        return EC2Error("IncorrectState", "The source is not ready yet; try again later.")
    return to_ec2_error(err)


def _ready_snapshot(snapshot: documents.Element, snapshot_id: str) -> None:
    """oned copies only a READY (or USED) image: EC2's answer for a pending snapshot."""
    state = to_snapshot(snapshot)["State"]
    if state != "completed":
        raise EC2Error("IncorrectState", f"Snapshot '{snapshot_id}' is in invalid state - {state}")


# The attributes the gateway writes on an image; a clone drops those of its source.
GATEWAY_ATTRIBUTES = frozenset(
    {
        VOLUME_MARKER,
        SNAPSHOT_MARKER,
        AVAILABILITY_ZONE,
        VOLUME_TYPE,
        CLIENT_TOKEN,
        REQUEST_DIGEST,
        FROM_SNAPSHOT,
        FROM_VOLUME,
        ATTACH_TIME,
        DESCRIPTION,
    }
)


def _inherited(element: documents.Element) -> bool:
    return element.tag in GATEWAY_ATTRIBUTES or documents.TAGS.holds(element)


async def _mark(
    ctx: RequestContext, image_id: int, attributes: list[tuple[str, Any]], *, clone: bool
) -> None:
    """Write the EC2 facts of an image just made: merged into a saved disk's template,
    into a clone's as read now without its source's (see the module docstring). On failure
    remove the image, so nothing half-made stays behind."""
    try:
        if clone:
            image = await ctx.one_doc("one.image.info", image_id)
            template = documents.rewritten(image.find("TEMPLATE"), _inherited, attributes)
            await ctx.one("one.image.update", image_id, template, 0)
        else:
            await ctx.one("one.image.update", image_id, documents.template_text(attributes), 1)
    except BaseException:
        await delete_quietly(ctx, image_id)
        raise


# --- volumes -----------------------------------------------------------------------------


@action(
    "CreateVolume",
    opennebula="one.image.allocate of a persistent DATABLOCK (SIZE MB, EBS_VOLUME=YES, EC2_TAG_* "
    "tags); from a snapshot one.image.clone + one.image.update + one.image.persistent",
    oned="image.allocate of a persistent DATABLOCK (LOCKED, then READY); from a snapshot: clone, "
    "rewrite of the clone's template, persistent; a failed step deletes the clone (retried "
    "while LOCKED)",
)
async def create_volume(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    token = params.get("ClientToken")
    if not token:
        return await _create_volume(ctx, params)
    async with idempotency.lock_for(("volumes", ctx.uid, idempotency.check_token(token))):
        pool = await ctx.one_doc("one.imagepool.info", -3, -1, -1)
        for image in pool.iterfind("IMAGE"):
            if is_volume(image) and _attr(image, CLIENT_TOKEN) == token:
                if _attr(image, REQUEST_DIGEST) != idempotency.request_digest(params):
                    raise idempotency.mismatch()
                finish_dry_run(params)
                return (await _volumes(ctx, [image]))[0]
        return await _create_volume(ctx, params)


async def _create_volume(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    size, snapshot_id = params.get("Size"), params.get("SnapshotId")
    if size is None and not snapshot_id:
        raise EC2Error(
            "MissingParameter", "The request must contain the parameter size or snapshotId"
        )
    if size is not None and not 1 <= size <= MAX_SIZE_GIB:
        raise invalid_value("Size", size, f"Volumes are 1 to {MAX_SIZE_GIB} GiB.")
    volume_type = params.get("VolumeType") or "standard"
    if volume_type not in VOLUME_TYPES:
        raise invalid_value("VolumeType", volume_type)
    if params.get("Encrypted"):
        raise EC2Error("InvalidParameterValue", "OpenNebula volumes cannot be encrypted.")
    zones = await availability_zones(ctx)
    zone = params.get("AvailabilityZone")
    if params.get("AvailabilityZoneId") and not zone:
        zone = (
            next(
                (z["ZoneName"] for z in zones if z["ZoneId"] == params["AvailabilityZoneId"]), None
            )
            or params["AvailabilityZoneId"]
        )
    if not zone:
        raise missing_parameter("AvailabilityZone")
    if zone not in {z["ZoneName"] for z in zones}:
        raise EC2Error("InvalidParameterValue", f"Invalid availability zone: [{zone}]")
    volume_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "volume")
    snapshot = await snapshot_image(ctx, snapshot_id) if snapshot_id else None
    if snapshot is not None:
        _ready_snapshot(snapshot, snapshot_id)
    if snapshot is not None and size is not None and size != _gib(snapshot):
        raise invalid_value(
            "Size",
            size,
            f"A volume from {snapshot_id} has its size ({_gib(snapshot)} GiB): OpenNebula "
            "cannot resize an image that is not attached.",
        )
    datastore = await _image_datastore(ctx)
    finish_dry_run(params)
    name = f"ebs-volume-{secrets.token_hex(6)}"
    facts: list[tuple[str, Any]] = [
        (VOLUME_MARKER, "YES"),
        (AVAILABILITY_ZONE, zone),
        (VOLUME_TYPE, volume_type),
        (REQUEST_DIGEST, idempotency.request_digest(params)),
        *documents.tag_vectors(volume_tags),
    ]
    if params.get("ClientToken"):
        facts.append((CLIENT_TOKEN, params["ClientToken"]))
    if snapshot is None:
        template = [
            ("NAME", name),
            ("TYPE", "DATABLOCK"),
            ("SIZE", size * 1024),
            ("PERSISTENT", "YES"),
            ("DEV_PREFIX", "vd"),
            *facts,
        ]
        try:
            image_id = await ctx.one(
                "one.image.allocate", documents.template_text(template), datastore
            )
        except OneError as err:
            raise _space_error(err, "Volume") from None
        return await _one_volume(ctx, image_id)
    try:
        image_id = await ctx.one("one.image.clone", documents.integer(snapshot, "ID"), name, -1)
    except OneError as err:
        raise _space_error(err, "Volume") from None
    prefix = _attr(snapshot, "DEV_PREFIX") or "vd"
    await _mark(
        ctx, image_id, [("DEV_PREFIX", prefix), (FROM_SNAPSHOT, snapshot_id), *facts], clone=True
    )
    try:
        await ctx.one("one.image.persistent", image_id, True)
    except BaseException:
        await delete_quietly(ctx, image_id)
        raise
    return await _one_volume(ctx, image_id)


def _attachment(member: str) -> filters.Extractor:
    return lambda v: [a[member] for a in v["Attachments"]]


VOLUME_FILTERS: dict[str, filters.Extractor] = {
    "attachment.attach-time": lambda v: [_iso(a["AttachTime"]) for a in v["Attachments"]],
    "attachment.delete-on-termination": _attachment("DeleteOnTermination"),
    "attachment.device": _attachment("Device"),
    "attachment.instance-id": _attachment("InstanceId"),
    "attachment.status": _attachment("State"),
    "availability-zone": lambda v: v["AvailabilityZone"],
    "create-time": lambda v: _iso(v["CreateTime"]),
    "encrypted": lambda v: v["Encrypted"],
    "fast-restored": lambda v: False,
    "multi-attach-enabled": lambda v: v["MultiAttachEnabled"],
    "size": lambda v: v["Size"],
    "snapshot-id": lambda v: v["SnapshotId"],
    "status": lambda v: v["State"],
    "volume-id": lambda v: v["VolumeId"],
    "volume-type": lambda v: v["VolumeType"],
}


async def _my_volume_images(
    ctx: RequestContext, volume_ids: list[str] | None
) -> list[documents.Element]:
    if volume_ids:
        return list(
            await asyncio.gather(*(volume_image(ctx, v) for v in dict.fromkeys(volume_ids)))
        )
    pool = await ctx.one_doc("one.imagepool.info", -3, -1, -1)
    return [i for i in pool.iterfind("IMAGE") if is_volume(i)]


@action(
    "DescribeVolumes",
    opennebula="one.imagepool.info(-3) (or one.image.info per VolumeId): images marked "
    "EBS_VOLUME; attachments from the image's VMS and their DISK TARGETs",
)
async def describe_volumes(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    pages.no_max_results_with(params, "VolumeIds", "volumeIdSet")
    images = await _my_volume_images(ctx, params.get("VolumeIds"))
    finish_dry_run(params)
    volumes = await _volumes(ctx, images)
    volumes = filters.apply(volumes, params.get("Filters"), VOLUME_FILTERS, _tags)
    volumes.sort(key=lambda v: v["VolumeId"])
    chosen, token = pages.page(volumes, params, action="DescribeVolumes")
    return {"Volumes": list(chosen), "NextToken": token}


STATUS_FILTERS: dict[str, filters.Extractor] = {
    "availability-zone": lambda s: s["AvailabilityZone"],
    "volume-status.status": lambda s: s["VolumeStatus"]["Status"],
    "volume-status.details-name": lambda s: [d["Name"] for d in s["VolumeStatus"]["Details"]],
    "volume-status.details-status": lambda s: [d["Status"] for d in s["VolumeStatus"]["Details"]],
    "action.code": lambda s: None,
    "action.description": lambda s: None,
    "action.event-id": lambda s: None,
    "event.description": lambda s: None,
    "event.event-id": lambda s: None,
    "event.event-type": lambda s: None,
    "event.not-after": lambda s: None,
    "event.not-before": lambda s: None,
}


def _status(volume: dict[str, Any]) -> dict[str, Any]:
    state = volume["State"]
    status = {"error": "impaired", "creating": "insufficient-data"}.get(state, "ok")
    io = {"ok": "passed", "impaired": "failed"}.get(status, "insufficient-data")
    return {
        "VolumeId": volume["VolumeId"],
        "AvailabilityZone": volume["AvailabilityZone"],
        "VolumeStatus": {
            "Status": status,
            "Details": [
                {"Name": "io-enabled", "Status": io},
                {"Name": "io-performance", "Status": "not-applicable"},
            ],
        },
        "Actions": [],
        "Events": [],
        "AttachmentStatuses": [
            {"InstanceId": a["InstanceId"], "IoPerformance": "not-applicable"}
            for a in volume["Attachments"]
        ],
    }


@action(
    "DescribeVolumeStatus",
    opennebula="as DescribeVolumes; an image in ERROR or DISABLED is impaired",
)
async def describe_volume_status(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    images = await _my_volume_images(ctx, params.get("VolumeIds"))
    finish_dry_run(params)
    statuses = [_status(v) for v in await _volumes(ctx, images)]
    statuses = filters.apply(statuses, params.get("Filters"), STATUS_FILTERS)
    statuses.sort(key=lambda s: s["VolumeId"])
    chosen, token = pages.page(statuses, params, action="DescribeVolumeStatus")
    return {"VolumeStatuses": list(chosen), "NextToken": token}


def _attached(volume: dict[str, Any], volume_id: str) -> dict[str, Any]:
    if not volume["Attachments"]:
        raise EC2Error(
            "IncorrectState", f"Volume '{volume_id}' is in the '{volume['State']}' state."
        )
    return volume["Attachments"][0]


@action(
    "AttachVolume",
    opennebula="one.vm.attach with DISK=[IMAGE_ID, TARGET] (TARGET = the device name's last part: "
    "/dev/sdf ↔ sdf)",
    oned="vm.attach only in RUNNING or POWEROFF and of a READY image (one being cloned: "
    "IncorrectState); asynchronous (HOTPLUG); ATTACH_TIME merged into the replace-mode image "
    "template",
)
async def attach_volume(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    device = DEVICE.fullmatch(params.get("Device") or "")
    if device is None:
        raise invalid_value("Device", params.get("Device"), "Use a name like /dev/sdf or xvdf.")
    target = device.group(1)
    image = await volume_image(ctx, params["VolumeId"])
    (volume,) = await _volumes(ctx, [image])
    (vm,) = await vms_by_ids(ctx, [params["InstanceId"]])
    if volume["State"] == "in-use":
        raise EC2Error("VolumeInUse", f"{params['VolumeId']} is already attached to an instance")
    if volume["State"] != "available":
        raise EC2Error(
            "IncorrectState", f"Volume '{params['VolumeId']}' is in the '{volume['State']}' state."
        )
    if documents.integer(image, "STATE") == CLONE:
        raise EC2Error(
            "IncorrectState",
            f"Volume '{params['VolumeId']}' cannot be attached while a snapshot of it is "
            "being copied; try again once the snapshot is completed.",
        )
    if view.state_of(vm).name not in ("running", "stopped"):
        raise EC2Error(
            "IncorrectState",
            f"Instance '{params['InstanceId']}' is not 'running' or 'stopped'.",
        )
    zones = await zones_of(ctx)
    instance_zone = view.to_instance(vm, zones)["Placement"]["AvailabilityZone"]
    if volume["AvailabilityZone"] != instance_zone:
        raise EC2Error(
            "InvalidVolume.ZoneMismatch",
            f"The volume '{params['VolumeId']}' is not in the same availability zone as "
            f"instance '{params['InstanceId']}'",
        )
    if any(documents.text(d, "TARGET") == target for d in vm.iterfind("TEMPLATE/DISK")):
        raise EC2Error("InvalidParameterValue", f"Attachment point /dev/{target} is already in use")
    finish_dry_run(params)
    image_id, vm_id = documents.integer(image, "ID"), documents.integer(vm, "ID")
    # The attach time goes into the DISK too: the instance view reads it from there.
    attached = int(time.time())
    disk = {
        "IMAGE_ID": image_id,
        "TARGET": target,
        view.VOLUME_DISK: params["VolumeId"],
        view.ATTACH_TIME_DISK: attached,
    }
    await hotplug(ctx, "one.vm.attach", vm_id, documents.template_text([("DISK", disk)]))
    try:
        await ctx.one(
            "one.image.update", image_id, documents.template_text([(ATTACH_TIME, attached)]), 1
        )
    except OneError:
        log.warning("request_id=%s attach time of image %s not kept", ctx.request_id, image_id)
    return {
        "AttachTime": _time(attached),
        "Device": f"/dev/{target}",
        "InstanceId": params["InstanceId"],
        "State": "attaching",
        "VolumeId": params["VolumeId"],
        "DeleteOnTermination": False,
    }


@action(
    "DetachVolume",
    opennebula="one.vm.detach of the DISK_ID whose IMAGE_ID is the volume (Force does the same)",
    oned="vm.detach only in RUNNING or POWEROFF; asynchronous (HOTPLUG): the image is released "
    "when the driver answers",
)
async def detach_volume(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    image = await volume_image(ctx, params["VolumeId"])
    (volume,) = await _volumes(ctx, [image])
    attachment = _attached(volume, params["VolumeId"])
    wanted_instance, wanted_device = params.get("InstanceId"), params.get("Device")
    if wanted_instance:
        ids.INSTANCE.decode(wanted_instance)
    device = DEVICE.fullmatch(wanted_device or "")
    if (wanted_instance and wanted_instance != attachment["InstanceId"]) or (
        wanted_device and (device is None or f"/dev/{device.group(1)}" != attachment["Device"])
    ):
        raise EC2Error(
            "InvalidAttachment.NotFound",
            f"Volume '{params['VolumeId']}' is not attached as asked.",
        )
    (vm,) = await vms_by_ids(ctx, [attachment["InstanceId"]])
    finish_dry_run(params)
    disk = _disk_of(vm, documents.integer(image, "ID"))
    if disk is None:
        raise EC2Error("IncorrectState", f"Volume '{params['VolumeId']}' is being detached.")
    await hotplug(
        ctx, "one.vm.detach", documents.integer(vm, "ID"), documents.integer(disk, "DISK_ID")
    )
    return {**attachment, "State": "detaching"}


CLONE_WAIT_SECONDS = 10.0


async def _copied(ctx: RequestContext, image: documents.Element) -> documents.Element:
    """The image once oned has finished copying a snapshot from it (it is in CLONE till
    then, and oned refuses to delete it), or as it is after CLONE_WAIT_SECONDS."""
    deadline = time.monotonic() + CLONE_WAIT_SECONDS
    while documents.integer(image, "STATE") == CLONE and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        image = await ctx.one_doc("one.image.info", documents.integer(image, "ID"))
    return image


@action(
    "DeleteVolume",
    opennebula="one.image.delete (refused while attached; once a snapshot being copied from it is "
    "done and once oned no longer holds it LOCKED, 10 s at most each)",
    oned="image.delete refused while attached or cloned (a pending copy is waited for, bounded), "
    "and to its owner while LOCKED (a volume still creating): waited for, 10 s at most, then "
    "IncorrectState; asynchronous (DELETE): an image in DELETE is gone for EC2",
)
async def delete_volume(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    image = await volume_image(ctx, params["VolumeId"])
    if _users(image):
        raise EC2Error("VolumeInUse", f"Volume {params['VolumeId']} is currently attached")
    finish_dry_run(params)
    image = await _copied(ctx, image)
    try:
        locked = await delete_images(ctx, [documents.integer(image, "ID")])
    except OneError as err:
        if err.code == ACTION:
            raise EC2Error("VolumeInUse", f"Volume {params['VolumeId']} is in use") from None
        raise
    if locked:
        raise EC2Error(
            "IncorrectState", f"Volume '{params['VolumeId']}' is in an invalid state: creating"
        )
    return {}


@action(
    "ModifyVolume",
    opennebula="grow: one.vm.diskresize of the attached disk (OpenNebula cannot resize a detached "
    "image), `completed` once oned has resized it (the VM left DISK_RESIZE, 10 s at "
    "most), else `modifying`; VolumeType: one.image.update",
    oned="vm.diskresize only in RUNNING, POWEROFF or UNDEPLOYED, and only to grow; asynchronous: "
    "completed once oned has resized, modifying until then, failed if it rolled back; "
    "VolumeType merged",
)
async def modify_volume(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    image = await volume_image(ctx, params["VolumeId"])
    (volume,) = await _volumes(ctx, [image])
    size, volume_type = params.get("Size"), params.get("VolumeType")
    if size is None and volume_type is None:
        raise EC2Error("MissingParameter", "The request must ask for a new Size or VolumeType")
    if volume_type is not None and volume_type not in VOLUME_TYPES:
        raise invalid_value("VolumeType", volume_type)
    if size is not None and size < volume["Size"]:
        raise invalid_value("Size", size, "New size cannot be smaller than existing size.")
    if size is not None and size > MAX_SIZE_GIB:
        raise invalid_value("Size", size, f"Volumes are 1 to {MAX_SIZE_GIB} GiB.")
    grow = size is not None and size > volume["Size"]
    if grow and not volume["Attachments"]:
        raise EC2Error(
            "IncorrectState",
            f"Volume '{params['VolumeId']}' is not attached: OpenNebula grows a volume as the "
            "disk of an instance only.",
        )
    finish_dry_run(params)
    image_id = documents.integer(image, "ID")
    state = "completed"
    if grow:
        (vm,) = await vms_by_ids(ctx, [volume["Attachments"][0]["InstanceId"]])
        disk = _disk_of(vm, image_id)
        if disk is None:
            raise EC2Error("IncorrectState", f"Volume '{params['VolumeId']}' is being detached.")
        vm_id = documents.integer(vm, "ID")
        await hotplug(
            ctx, "one.vm.diskresize", vm_id, documents.integer(disk, "DISK_ID"), str(size * 1024)
        )
        state = _resized(await finished(ctx, vm_id), image_id, size)
    if volume_type is not None and volume_type != volume["VolumeType"]:
        await ctx.one(
            "one.image.update", image_id, documents.template_text([(VOLUME_TYPE, volume_type)]), 1
        )
    now = datetime.now(UTC)
    modification = {
        "VolumeId": params["VolumeId"],
        "ModificationState": state,
        "TargetSize": size or volume["Size"],
        "TargetVolumeType": volume_type or volume["VolumeType"],
        "TargetMultiAttachEnabled": False,
        "OriginalSize": volume["Size"],
        "OriginalVolumeType": volume["VolumeType"],
        "OriginalMultiAttachEnabled": False,
        "Progress": 100 if state == "completed" else 0,
        "StartTime": now,
    }
    if state != "modifying":
        modification["EndTime"] = now
    return {"VolumeModification": modification}


def _resized(vm: documents.Element | None, image_id: int, size_gib: int) -> str:
    """The resize's EC2 state: oned resizes asynchronously (the VM in DISK_RESIZE) and puts
    the old size back if the driver fails."""
    if vm is None:
        return "modifying"
    disk = _disk_of(vm, image_id)
    done = disk is not None and documents.integer(disk, "SIZE") >= size_gib * 1024
    return "completed" if done else "failed"


# --- snapshots ---------------------------------------------------------------------------


def to_snapshot(image: documents.Element) -> dict[str, Any]:
    uid = documents.integer(image, "UID")
    state = SNAPSHOT_STATES.get(documents.integer(image, "STATE"), "completed")
    return {
        "SnapshotId": ids.SNAPSHOT.encode(documents.integer(image, "ID")),
        "VolumeId": _attr(image, FROM_VOLUME) or "vol-ffffffff",
        "State": state,
        "StartTime": _time(documents.integer(image, "REGTIME")),
        "Progress": "100%" if state == "completed" else "0%",
        "OwnerId": ids.account_id(uid),
        "OwnerAlias": "amazon" if uid == 0 else None,
        "Description": _attr(image, DESCRIPTION),
        "VolumeSize": _gib(image),
        "Encrypted": False,
        "StorageTier": "standard",
        "Public": documents.text(image, "PERMISSIONS/OTHER_U") == "1",
        "Tags": _tag_list(image),
    }


async def _snapshot_of(
    ctx: RequestContext,
    source: documents.Element,
    volume_id: str,
    description: str,
    snapshot_tags: dict[str, str],
) -> dict[str, Any]:
    """Copy a detached volume or a snapshot (one.image.clone), or save an attached volume
    (one.vm.disksaveas), then mark the new image as a snapshot."""
    name = f"ebs-snapshot-{secrets.token_hex(6)}"
    source_id = documents.integer(source, "ID")
    users = _users(source) if _marked(source, VOLUME_MARKER) else []
    try:
        if users:
            (vm,) = await vms_by_ids(ctx, [ids.INSTANCE.encode(users[0])])
            # oned saves no disk while the VM is in a hotplug (the attach just asked for, say)
            # and EC2 snapshots an attaching volume: wait for it to end, bounded.
            vm = await finished(ctx, users[0]) or vm
            disk = _disk_of(vm, source_id)
            if disk is None:
                raise EC2Error("IncorrectState", f"Volume '{volume_id}' is being attached.")
            image_id = await ctx.one(
                "one.vm.disksaveas",
                users[0],
                documents.integer(disk, "DISK_ID"),
                name,
                "",
                -1,
            )
        else:
            image_id = await ctx.one("one.image.clone", source_id, name, -1)
    except OneError as err:
        raise _space_error(err, "Snapshot") from None
    attributes: list[tuple[str, Any]] = [
        (SNAPSHOT_MARKER, "YES"),
        (FROM_VOLUME, volume_id),
        ("DEV_PREFIX", _attr(source, "DEV_PREFIX") or "vd"),
        *documents.tag_vectors(snapshot_tags),
    ]
    if description:
        attributes.append((DESCRIPTION, description))
    await _mark(ctx, image_id, attributes, clone=not users)
    return to_snapshot(await ctx.one_doc("one.image.info", image_id))


@action(
    "CreateSnapshot",
    opennebula="one.image.clone of a detached volume, then one.image.update of the clone's "
    "template (EBS_SNAPSHOT=YES, tags); one.vm.disksaveas of an attached one, then "
    "one.image.update merging them in (oned's SAVE_AS_HOT marks stay)",
    oned="detached: image.clone (the volume is in CLONE until copied); attached: vm.disksaveas, "
    "marks merged so oned's SAVE_AS_HOT stays; a volume still creating: IncorrectState; "
    "image deleted on failure",
)
async def create_snapshot(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    snapshot_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "snapshot")
    description = params.get("Description") or ""
    if len(description) > 255:
        raise invalid_value("Description", description[:20] + "...", "At most 255 characters.")
    image = await volume_image(ctx, params["VolumeId"])
    if documents.integer(image, "UID") != ctx.uid:
        raise ids.VOLUME.missing(params["VolumeId"])
    (volume,) = await _volumes(ctx, [image])
    if volume["State"] not in ("available", "in-use"):
        raise EC2Error(
            "IncorrectState", f"Volume '{params['VolumeId']}' is in the '{volume['State']}' state."
        )
    finish_dry_run(params)
    return await _snapshot_of(ctx, image, params["VolumeId"], description, snapshot_tags)


@action(
    "CopySnapshot",
    opennebula="one.image.clone of the snapshot image, then one.image.update of the clone's "
    "template (its source's EC2 facts and tags replaced)",
    oned="image.clone of a READY or USED snapshot (a pending one: IncorrectState); the clone's "
    "template rewritten once from its own read (append=0); the clone is deleted if that "
    "fails",
)
async def copy_snapshot(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    region = await local_region(ctx)
    if params.get("SourceRegion") and params["SourceRegion"] != region:
        raise invalid_value(
            "SourceRegion", params["SourceRegion"], f"Snapshots are copied within {region}."
        )
    if params.get("Encrypted"):
        raise EC2Error("InvalidParameterValue", "OpenNebula snapshots cannot be encrypted.")
    snapshot_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "snapshot")
    source = await snapshot_image(ctx, params["SourceSnapshotId"])
    _ready_snapshot(source, params["SourceSnapshotId"])
    finish_dry_run(params)
    description = params.get("Description") or _attr(source, DESCRIPTION)
    copied = await _snapshot_of(ctx, source, _attr(source, FROM_VOLUME), description, snapshot_tags)
    return {"SnapshotId": copied["SnapshotId"], "Tags": copied["Tags"]}


@action(
    "DeleteSnapshot",
    opennebula="one.image.delete of an image marked EBS_SNAPSHOT (retried while oned holds it "
    "LOCKED, 10 s at most)",
    oned="image.delete refused while the image is cloned or used, and to its owner while LOCKED "
    "(a pending snapshot still being copied): waited for, 10 s at most, then IncorrectState; "
    "asynchronous (DELETE): an image in DELETE is gone for EC2",
)
async def delete_snapshot(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    image = await snapshot_image(ctx, params["SnapshotId"])
    finish_dry_run(params)
    try:
        locked = await delete_images(ctx, [documents.integer(image, "ID")])
    except OneError as err:
        if err.code == ACTION:
            raise EC2Error(
                "InvalidSnapshot.InUse", f"The snapshot {params['SnapshotId']} is in use"
            ) from None
        raise
    if locked:
        raise EC2Error(
            "IncorrectState", f"Snapshot '{params['SnapshotId']}' is in an invalid state: pending"
        )
    return {}


SNAPSHOT_FILTERS: dict[str, filters.Extractor] = {
    "description": lambda s: s["Description"],
    "encrypted": lambda s: s["Encrypted"],
    "owner-alias": lambda s: s["OwnerAlias"],
    "owner-id": lambda s: s["OwnerId"],
    "progress": lambda s: s["Progress"],
    "snapshot-id": lambda s: s["SnapshotId"],
    "start-time": lambda s: _iso(s["StartTime"]),
    "status": lambda s: s["State"],
    "storage-tier": lambda s: s["StorageTier"],
    "volume-id": lambda s: s["VolumeId"],
    "volume-size": lambda s: s["VolumeSize"],
}


@action(
    "DescribeSnapshots",
    opennebula="one.imagepool.info(-2) (or one.image.info per SnapshotId): images marked "
    "EBS_SNAPSHOT the caller may use",
)
async def describe_snapshots(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    pages.no_max_results_with(params, "SnapshotIds", "snapshotSet")
    wanted = params.get("SnapshotIds")
    if wanted:
        images = await asyncio.gather(*(snapshot_image(ctx, s) for s in dict.fromkeys(wanted)))
    else:
        pool = await ctx.one_doc("one.imagepool.info", -2, -1, -1)
        images = [i for i in pool.iterfind("IMAGE") if is_snapshot(i)]
    finish_dry_run(params)
    snapshots = [to_snapshot(image) for image in images]
    if params.get("OwnerIds"):
        snapshots = list(filter(_owner_check(params["OwnerIds"], ctx.account_id), snapshots))
    if params.get("RestorableByUserIds"):
        check = _executable_check(params["RestorableByUserIds"], ctx.account_id)
        snapshots = list(filter(check, snapshots))
    snapshots = filters.apply(snapshots, params.get("Filters"), SNAPSHOT_FILTERS, _tags)
    snapshots.sort(key=lambda s: s["SnapshotId"])
    chosen, token = pages.page(snapshots, params, action="DescribeSnapshots")
    return {"Snapshots": list(chosen), "NextToken": token}
