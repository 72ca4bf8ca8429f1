"""AMIs are OpenNebula OS images the caller may use (reference §3.3).

Image templates are in replace mode (one attribute per name): an AMI's tags are
`EC2_TAG_<digest of the key>` vectors (`documents.TAGS`), written in the allocate's template
or merged in (append=1) after `one.vm.disksaveas`, never by replacing a saved disk's template.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, ids, pages
from ec2gw.ec2 import tags as tag_rules
from ec2gw.one import documents
from ec2gw.one.errors import ACTION, AUTHORIZATION, INTERNAL, NO_EXISTS, OneError, to_ec2_error
from ec2gw.protocol.errors import EC2Error

log = logging.getLogger("ec2gw.images")

OS_IMAGE = 0  # OpenNebula image TYPE
# Images flagged as EC2 volumes or snapshots are never AMIs.
NON_AMI_MARKERS = ("EBS_VOLUME", "EBS_SNAPSHOT")
# The owner of the cloud's own images answers to EC2's `amazon` alias.
CLOUD_OWNER_UID = 0

# OpenNebula image STATE → EC2 image state.
IMAGE_STATES = {
    0: "pending",  # INIT
    1: "available",  # READY
    2: "available",  # USED
    3: "disabled",  # DISABLED
    4: "pending",  # LOCKED (datastore driver copying)
    5: "failed",  # ERROR
    6: "available",  # CLONE (being cloned, still usable)
    7: "deregistered",  # DELETE
    8: "available",  # USED_PERS
    9: "pending",  # LOCKED_USED
    10: "pending",  # LOCKED_USED_PERS
}

ARCHITECTURES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i686": "i386",
    "i386": "i386",
}


def is_ami(image: documents.Element) -> bool:
    """An OS image that is not a volume or snapshot, nor being deleted (a deregistered AMI
    is gone for EC2 clients at once; oned keeps it in DELETE until the driver is done)."""
    if documents.integer(image, "TYPE", -1) != OS_IMAGE or documents.image_deleted(image):
        return False
    return not any(
        documents.text(image, f"TEMPLATE/{marker}").upper() == "YES" for marker in NON_AMI_MARKERS
    )


def image_to_ec2(image: documents.Element) -> dict[str, Any]:
    """An OpenNebula IMAGE document as EC2's Image structure."""
    uid = documents.integer(image, "UID")
    prefix = documents.text(image, "TEMPLATE/DEV_PREFIX") or "vd"
    root_device = f"/dev/{prefix}a"
    arch = documents.text(image, "TEMPLATE/ARCH").lower()
    size_gib = max(1, math.ceil(documents.integer(image, "SIZE") / 1024))
    platform = documents.text(image, "TEMPLATE/PLATFORM").lower()
    return {
        "ImageId": ids.IMAGE.encode(documents.integer(image, "ID")),
        "ImageLocation": f"{documents.text(image, 'DATASTORE')}/{documents.text(image, 'NAME')}",
        "State": IMAGE_STATES.get(documents.integer(image, "STATE"), "error"),
        "OwnerId": ids.account_id(uid),
        "ImageOwnerAlias": "amazon" if uid == CLOUD_OWNER_UID else None,
        "CreationDate": datetime.fromtimestamp(documents.integer(image, "REGTIME"), UTC),
        "Public": documents.text(image, "PERMISSIONS/OTHER_U") == "1",
        "Architecture": ARCHITECTURES.get(arch, "x86_64"),
        "ImageType": "machine",
        "Name": documents.text(image, "NAME"),
        "Description": documents.text(image, "TEMPLATE/DESCRIPTION") or None,
        "RootDeviceType": "ebs",
        "RootDeviceName": root_device,
        "BlockDeviceMappings": [
            {
                "DeviceName": root_device,
                "Ebs": {
                    "DeleteOnTermination": True,
                    "VolumeSize": size_gib,
                    "VolumeType": "standard",
                    "Encrypted": False,
                },
            }
        ],
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "Platform": "windows" if platform == "windows" else None,
        "PlatformDetails": "Windows" if platform == "windows" else "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "Tags": [{"Key": k, "Value": v} for k, v in documents.tags(image.find("TEMPLATE")).items()],
    }


def _tags(image: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image["Tags"]}


def _bdm(key: str) -> filters.Extractor:
    return lambda i: [m["Ebs"][key] for m in i["BlockDeviceMappings"]]


IMAGE_FILTERS: dict[str, filters.Extractor] = {
    "architecture": lambda i: i["Architecture"],
    "block-device-mapping.delete-on-termination": _bdm("DeleteOnTermination"),
    "block-device-mapping.device-name": lambda i: [
        m["DeviceName"] for m in i["BlockDeviceMappings"]
    ],
    "block-device-mapping.snapshot-id": lambda i: None,
    "block-device-mapping.volume-size": _bdm("VolumeSize"),
    "block-device-mapping.volume-type": _bdm("VolumeType"),
    "block-device-mapping.encrypted": _bdm("Encrypted"),
    "creation-date": lambda i: i["CreationDate"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "description": lambda i: i["Description"],
    "ena-support": lambda i: None,
    "hypervisor": lambda i: i["Hypervisor"],
    "image-id": lambda i: i["ImageId"],
    "image-type": lambda i: i["ImageType"],
    "is-public": lambda i: i["Public"],
    "kernel-id": lambda i: None,
    "manifest-location": lambda i: i["ImageLocation"],
    "name": lambda i: i["Name"],
    "owner-alias": lambda i: i["ImageOwnerAlias"],
    "owner-id": lambda i: i["OwnerId"],
    "platform": lambda i: i["Platform"],
    "platform-details": lambda i: i["PlatformDetails"],
    "product-code": lambda i: None,
    "product-code.type": lambda i: None,
    "ramdisk-id": lambda i: None,
    "root-device-name": lambda i: i["RootDeviceName"],
    "root-device-type": lambda i: i["RootDeviceType"],
    "state": lambda i: i["State"],
    "state-reason-code": lambda i: None,
    "state-reason-message": lambda i: None,
    "sriov-net-support": lambda i: None,
    "usage-operation": lambda i: i["UsageOperation"],
    "virtualization-type": lambda i: i["VirtualizationType"],
}

_ACCOUNT = re.compile(r"\d{12}")


def _owner_check(owners: list[str], caller: str) -> filters.Predicate:
    accepted: set[str] = set()
    for owner in owners:
        if owner == "self":
            accepted.add(caller)
        elif owner == "amazon":
            accepted.add(ids.account_id(CLOUD_OWNER_UID))
        elif owner in ("aws-marketplace", "aws-backup-vault"):
            continue
        elif _ACCOUNT.fullmatch(owner):
            accepted.add(owner)
        else:
            raise EC2Error("InvalidUserID.Malformed", f"Invalid user id: '{owner}'")
    return lambda image: image["OwnerId"] in accepted


def _executable_check(users: list[str], caller: str) -> filters.Predicate:
    """Who may launch an image, as far as OpenNebula's permissions tell.

    The caller can launch everything it sees; `all` means images anyone may use; another
    account can launch its own images and public ones.
    """
    checks: list[filters.Predicate] = []
    for user in users:
        if user in ("self", caller):
            checks.append(lambda image: True)
        elif user == "all":
            checks.append(lambda image: image["Public"])
        elif _ACCOUNT.fullmatch(user):
            checks.append(lambda image, u=user: image["Public"] or image["OwnerId"] == u)
        else:
            raise EC2Error("InvalidUserID.Malformed", f"Invalid user id: '{user}'")
    return lambda image: any(check(image) for check in checks)


async def _images_by_id(ctx: RequestContext, wanted: list[str]) -> list[documents.Element]:
    one_ids = [ids.IMAGE.decode(image_id) for image_id in wanted]

    async def fetch(one_id: int) -> documents.Element | None:
        try:
            image = await ctx.one_doc("one.image.info", one_id)
        except OneError as err:
            if err.code in (NO_EXISTS, AUTHORIZATION):
                return None
            raise
        return image if is_ami(image) else None

    found = await asyncio.gather(*(fetch(i) for i in dict.fromkeys(one_ids)))
    missing = [w for w, f in zip(dict.fromkeys(wanted), found, strict=True) if f is None]
    if missing:
        raise ids.IMAGE.missing(missing)
    return [image for image in found if image is not None]


@action(
    "DescribeImages",
    opennebula="one.imagepool.info(-2) (or one.image.info per ImageId): OS images the caller "
    "may use",
)
async def describe_images(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    pages.no_max_results_with(params, "ImageIds", "imageIdsSet")
    wanted = params.get("ImageIds")
    if wanted:
        documents_ = await _images_by_id(ctx, wanted)
    else:
        pool = await ctx.one_doc("one.imagepool.info", -2, -1, -1)
        documents_ = [image for image in pool.iterfind("IMAGE") if is_ami(image)]
    finish_dry_run(params)
    images = [image_to_ec2(image) for image in documents_]
    if not wanted:
        images = [i for i in images if i["State"] != "deregistered"]
        if not params.get("IncludeDisabled"):
            images = [i for i in images if i["State"] != "disabled"]
    if params.get("Owners"):
        images = list(filter(_owner_check(params["Owners"], ctx.account_id), images))
    if params.get("ExecutableUsers"):
        images = list(filter(_executable_check(params["ExecutableUsers"], ctx.account_id), images))
    images = filters.apply(images, params.get("Filters"), IMAGE_FILTERS, _tags)
    images.sort(key=lambda i: i["ImageId"])
    chosen, next_token = pages.page(images, params, action="DescribeImages")
    return {"Images": list(chosen), "NextToken": next_token}


# --- registering, deregistering, creating and sharing images -----------------------------

_AMI_NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")


def _check_ami_name(name: str | None) -> str:
    if not name:
        raise EC2Error("MissingParameter", "The request must contain the parameter Name")
    if not _AMI_NAME.fullmatch(name):
        raise EC2Error(
            "InvalidAMIName.Malformed",
            "AMI names must be between 3 and 128 characters long, and may contain letters, "
            "numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', \"'\" and '@'",
        )
    return name


async def _image_datastore(ctx: RequestContext) -> int:
    """The first image datastore (TYPE 0) the caller can use."""
    pool = await ctx.one_doc("one.datastorepool.info")
    found = sorted(
        documents.integer(ds, "ID")
        for ds in pool.iterfind("DATASTORE")
        if documents.integer(ds, "TYPE") == 0
    )
    if not found:
        raise EC2Error("InvalidParameterValue", "No image datastore is available to you")
    return found[0]


def wrong_vm_state(err: OneError) -> bool:
    """A refusal for the VM's state: oned answers one.vm.disksaveas of a VM that is not
    RUNNING, POWEROFF or SUSPENDED (e.g. in a hotplug) with INTERNAL, others with ACTION."""
    return err.code == ACTION or (err.code == INTERNAL and "has to be" in err.message)


# How long a request waits for oned to let it delete an image it still holds LOCKED.
LOCKED_WAIT_SECONDS = 10.0


def image_locked(err: Exception) -> bool:
    """oned refusing its owner the delete of a LOCKED image (its copy under way): INTERNAL
    'Image locked, use --force flag to remove the image...' (force needs ADMIN)."""
    return isinstance(err, OneError) and err.code == INTERNAL and "Image locked" in err.message


async def _delete_when_unlocked(ctx: RequestContext, image_id: int, deadline: float) -> bool:
    while True:
        try:
            await ctx.one("one.image.delete", image_id, False)
            return True
        except OneError as err:
            if not image_locked(err):
                raise
            if time.monotonic() > deadline:
                return False
        await asyncio.sleep(0.2)


async def delete_images(
    ctx: RequestContext, image_ids: list[int], seconds: float | None = None
) -> list[int]:
    """one.image.delete of each image, in parallel; the one place that deletes an image oned
    may still hold LOCKED (a new image while the datastore driver copies it: oned refuses its
    owner the delete, 'Image locked, use --force...', and force needs ADMIN). Each delete is
    retried while oned answers so, for `seconds` at most. Returns the images still locked
    then (not deleted); any other refusal is raised (the first one, once all are done)."""
    deadline = time.monotonic() + (LOCKED_WAIT_SECONDS if seconds is None else seconds)
    done = await asyncio.gather(
        *(_delete_when_unlocked(ctx, i, deadline) for i in image_ids), return_exceptions=True
    )
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    return [i for i, deleted in zip(image_ids, done, strict=True) if not deleted]


async def delete_quietly(ctx: RequestContext, image_id: int) -> None:
    """Remove an image the request made and could not finish (logged if that fails too),
    waiting, bounded, while oned still holds it LOCKED (`delete_images`)."""
    try:
        still_locked = await delete_images(ctx, [image_id])
    except (OneError, EC2Error) as err:
        log.error("request_id=%s could not remove image %s: %s", ctx.request_id, image_id, err)
        return
    if still_locked:
        log.error(
            "request_id=%s could not remove image %s: still locked after %.0f s",
            ctx.request_id,
            image_id,
            LOCKED_WAIT_SECONDS,
        )


def _allocation_error(err: OneError, name: str) -> EC2Error:
    if "already taken" in err.message or "already exists" in err.message:
        return EC2Error("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI")
    return to_ec2_error(err)


@action(
    "RegisterImage",
    opennebula="one.image.allocate(TYPE=OS, PATH=ImageLocation) in the first image datastore",
    oned="image.allocate TYPE=OS in the first image datastore (LOCKED while the driver copies, "
    "then READY); NAME unique per owner ('already taken': InvalidAMIName.Duplicate)",
)
async def register_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = _check_ami_name(params.get("Name"))
    location = params.get("ImageLocation")
    if not location:
        raise EC2Error("MissingParameter", "The request must contain the parameter ImageLocation")
    image_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "image")
    arch = params.get("Architecture") or "x86_64"
    if arch not in ("x86_64", "arm64", "i386"):
        raise EC2Error("InvalidParameterValue", f"Invalid value '{arch}' for architecture")
    datastore = await _image_datastore(ctx)
    finish_dry_run(params)
    attributes: list[tuple[str, Any]] = [
        ("NAME", name),
        ("PATH", location),
        ("TYPE", "OS"),
        ("ARCH", {"x86_64": "x86_64", "arm64": "aarch64", "i386": "i686"}[arch]),
        ("EC2_AMI", "YES"),
    ]
    if params.get("Description"):
        attributes.append(("DESCRIPTION", params["Description"]))
    root = params.get("RootDeviceName") or ""
    if root.startswith("/dev/") and len(root) > 7:
        attributes.append(("DEV_PREFIX", root[5:7]))
    attributes += documents.tag_vectors(image_tags)
    try:
        image_id = await ctx.one(
            "one.image.allocate", documents.template_text(attributes), datastore
        )
    except OneError as err:
        raise _allocation_error(err, name) from None
    return {"ImageId": ids.IMAGE.encode(image_id)}


async def _own_image(ctx: RequestContext, image_id: str) -> documents.Element:
    (image,) = await _images_by_id(ctx, [image_id])
    if documents.integer(image, "UID") != ctx.uid:
        raise EC2Error("UnauthorizedOperation", f"You do not own the image {image_id}")
    return image


@action(
    "DeregisterImage",
    opennebula="one.image.delete (retried while oned holds the image LOCKED, 10 s at most)",
    oned="image.delete refused while used or cloned, and to its owner while LOCKED (an AMI still "
    "being saved): waited for, 10 s at most, then IncorrectState; asynchronous (DELETE): an "
    "image in DELETE is gone for EC2",
)
async def deregister_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    image = await _own_image(ctx, params["ImageId"])
    finish_dry_run(params)
    if documents.integer(image, "RUNNING_VMS") > 0:
        raise EC2Error(
            "InvalidParameterValue",
            f"The image {params['ImageId']} is in use by running instances; OpenNebula keeps "
            "images that instances still use",
        )
    if await delete_images(ctx, [documents.integer(image, "ID")]):
        raise EC2Error(
            "IncorrectState", f"Image '{params['ImageId']}' is in an invalid state: pending"
        )
    return {"Return": True}


@action(
    "CreateImage",
    opennebula="one.vm.disksaveas of the instance's root disk, then one.image.update merging "
    "EC2_AMI, DESCRIPTION and EC2_TAG_* tags in (oned's SAVE_AS_HOT marks stay; the "
    "image is deleted if that fails)",
    oned="vm.disksaveas in RUNNING, POWEROFF, SUSPENDED, STOPPED or UNDEPLOYED (oned refuses with "
    "INTERNAL: IncorrectInstanceState); marks merged so SAVE_AS_HOT stays; the image deleted "
    "if that fails",
)
async def create_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    from ec2gw.actions.instance_view import state_of
    from ec2gw.actions.instances import vms_by_ids

    name = _check_ami_name(params.get("Name"))
    image_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "image")
    (vm,) = await vms_by_ids(ctx, [params["InstanceId"]])
    if state_of(vm).name not in ("running", "stopped"):
        raise EC2Error(
            "IncorrectInstanceState",
            f"The instance '{params['InstanceId']}' is not in a state from which an image can "
            "be created.",
        )
    disks = vm.findall("TEMPLATE/DISK")
    if not disks:
        raise EC2Error("InvalidParameterValue", "The instance has no disk to save")
    finish_dry_run(params)
    try:
        image_id = await ctx.one(
            "one.vm.disksaveas",
            documents.integer(vm, "ID"),
            documents.integer(disks[0], "DISK_ID"),
            name,
            "",
            -1,
        )
    except OneError as err:
        if wrong_vm_state(err):
            raise EC2Error(
                "IncorrectInstanceState",
                f"The instance '{params['InstanceId']}' cannot be imaged in its current state.",
            ) from None
        raise _allocation_error(err, name) from None
    extra: list[tuple[str, Any]] = [("EC2_AMI", "YES")]
    if params.get("Description"):
        extra.append(("DESCRIPTION", params["Description"]))
    extra += documents.tag_vectors(image_tags)
    # Merged in: the saved disk's template holds oned's SAVE_AS_HOT, SAVED_VM_ID and
    # SAVED_DISK_ID, which start the copy and end the VM's HOTPLUG_SAVEAS. If that fails
    # the image goes: unmarked it would hold the name (a retry: InvalidAMIName.Duplicate).
    try:
        await ctx.one("one.image.update", image_id, documents.template_text(extra), 1)
    except BaseException:
        await delete_quietly(ctx, image_id)
        raise
    return {"ImageId": ids.IMAGE.encode(image_id)}


IMAGE_ATTRIBUTES = (
    "description",
    "launchPermission",
    "blockDeviceMapping",
    "productCodes",
    "kernel",
    "ramdisk",
    "sriovNetSupport",
    "bootMode",
    "imdsSupport",
    "deregistrationProtection",
    "lastLaunchedTime",
    "tpmSupport",
    "uefiData",
)


@action(
    "DescribeImageAttribute",
    opennebula="one.image.info: DESCRIPTION; launchPermission from the OTHER_U permission",
)
async def describe_image_attribute(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    attribute = params["Attribute"]
    if attribute not in IMAGE_ATTRIBUTES:
        raise EC2Error("InvalidParameterValue", f"Invalid value '{attribute}' for Attribute")
    (image,) = await _images_by_id(ctx, [params["ImageId"]])
    finish_dry_run(params)
    ec2_image = image_to_ec2(image)
    result: dict[str, Any] = {"ImageId": ec2_image["ImageId"]}
    if attribute == "description":
        result["Description"] = (
            {"Value": ec2_image["Description"]} if ec2_image["Description"] else {}
        )
    elif attribute == "launchPermission":
        if documents.integer(image, "UID") != ctx.uid:
            raise EC2Error("UnauthorizedOperation", f"You do not own the image {params['ImageId']}")
        result["LaunchPermissions"] = [{"Group": "all"}] if ec2_image["Public"] else []
    elif attribute == "blockDeviceMapping":
        result["BlockDeviceMappings"] = ec2_image["BlockDeviceMappings"]
    elif attribute == "productCodes":
        result["ProductCodes"] = []
    elif attribute == "bootMode":
        result["BootMode"] = {"Value": "legacy-bios"}
    else:
        result[_ATTRIBUTE_MEMBERS.get(attribute, attribute)] = {}
    return result


_ATTRIBUTE_MEMBERS = {
    "kernel": "KernelId",
    "ramdisk": "RamdiskId",
    "sriovNetSupport": "SriovNetSupport",
    "imdsSupport": "ImdsSupport",
    "deregistrationProtection": "DeregistrationProtection",
    "lastLaunchedTime": "LastLaunchedTime",
    "tpmSupport": "TpmSupport",
    "uefiData": "UefiData",
}


def _permission_change(params: dict[str, Any]) -> tuple[bool | None, str | None]:
    """(make public?, new description) from ModifyImageAttribute's many spellings."""
    public: bool | None = None
    launch = params.get("LaunchPermission") or {}
    adds, removes = launch.get("Add") or [], launch.get("Remove") or []
    operation = params.get("OperationType")
    groups = params.get("UserGroups") or []
    if groups and operation in ("add", "remove"):
        (adds if operation == "add" else removes).extend({"Group": g} for g in groups)
    if params.get("UserIds") or any("UserId" in p for p in adds + removes):
        raise EC2Error(
            "InvalidParameterValue",
            "OpenNebula shares images with groups, not single accounts: only Group=all is "
            "supported",
        )
    for entry in adds:
        if entry.get("Group") == "all":
            public = True
    for entry in removes:
        if entry.get("Group") == "all":
            public = False
    description = (params.get("Description") or {}).get("Value")
    if params.get("Attribute") == "description" and params.get("Value") is not None:
        description = params["Value"]
    return public, description


@action(
    "ModifyImageAttribute",
    opennebula="launchPermission Group=all ↔ one.image.chmod OTHER_U; description ↔ "
    "one.image.update",
    oned="image.chmod with unchanged bits as -1 (no ADMIN needed; OTHER needs "
    "ENABLE_OTHER_PERMISSIONS); DESCRIPTION merged (append=1) into the replace-mode template",
)
async def modify_image_attribute(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    public, description = _permission_change(params)
    if public is None and description is None:
        raise EC2Error(
            "MissingParameter",
            "The request must contain the parameter LaunchPermission or Description",
        )
    image = await _own_image(ctx, params["ImageId"])
    finish_dry_run(params)
    one_id = documents.integer(image, "ID")
    if public is not None:
        bits = [
            documents.integer(image, f"PERMISSIONS/{who}_{right}")
            for who in ("OWNER", "GROUP", "OTHER")
            for right in ("U", "M", "A")
        ]
        bits[6] = 1 if public else 0
        await ctx.one("one.image.chmod", one_id, *bits)
    if description is not None:
        await ctx.one(
            "one.image.update", one_id, documents.template_text([("DESCRIPTION", description)]), 1
        )
    return {}
