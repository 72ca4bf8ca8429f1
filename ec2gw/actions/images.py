"""AMIs are OpenNebula OS images the caller may use (reference §3.3)."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime
from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, ids, pages
from ec2gw.one import documents
from ec2gw.one.errors import AUTHORIZATION, NO_EXISTS, OneError
from ec2gw.protocol.errors import EC2Error

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
    if documents.integer(image, "TYPE", -1) != OS_IMAGE:
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
    wanted = params.get("ImageIds")
    if wanted and params.get("MaxResults") is not None:
        raise EC2Error(
            "InvalidParameterCombination",
            "The parameter imageIdsSet cannot be used with the parameter maxResults",
        )
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
    chosen, next_token = pages.page(images, params, minimum=1, maximum=1000)
    return {"Images": list(chosen), "NextToken": next_token}
