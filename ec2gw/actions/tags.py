"""Tags on every taggable resource the gateway knows, kept on the OpenNebula object.

Instances: `EC2_TAG` vectors in the VM's USER_TEMPLATE; AMIs, volumes and snapshots: in the
image's TEMPLATE; security groups: in the group's TEMPLATE; Elastic IPs: in their
reservation network's TEMPLATE; key pairs: in their vector on the user. A resource id's
prefix says which it is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ec2gw.actions import instance_view as view
from ec2gw.actions import storage
from ec2gw.actions.addresses import address_of, my_addresses
from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.images import is_ami
from ec2gw.actions.instances import my_vms, vms_by_ids
from ec2gw.actions.keypairs import KEY_PAIR_ATTRIBUTE
from ec2gw.actions.registry import action
from ec2gw.actions.security_groups import group_doc
from ec2gw.ec2 import filters, ids, pages
from ec2gw.ec2 import tags as tag_rules
from ec2gw.one import documents
from ec2gw.one.errors import AUTHORIZATION, NO_EXISTS, OneError
from ec2gw.protocol.errors import EC2Error, missing_parameter, unauthorized


@dataclass
class Tagged:
    """One resource's current tags and how to write new ones."""

    resource_id: str
    resource_type: str
    tags: dict[str, str]
    write: Callable[[dict[str, str]], Awaitable[None]]


async def _instance(ctx: RequestContext, resource_id: str) -> Tagged:
    (vm,) = await vms_by_ids(ctx, [resource_id])
    vm_id = documents.integer(vm, "ID")
    user_template = vm.find("USER_TEMPLATE")

    async def write(new: dict[str, str]) -> None:
        await ctx.one("one.vm.update", vm_id, documents.with_tags(user_template, new), 0)

    return Tagged(resource_id, "instance", documents.tags(user_template), write)


def _image_kind(
    kind: ids.IdKind, resource_type: str, belongs: Callable[[documents.Element], bool]
) -> Callable[[RequestContext, str], Awaitable[Tagged]]:
    """Tags of an image-backed resource (AMI, volume, snapshot): its TEMPLATE's EC2_TAGs."""

    async def resolve_image(ctx: RequestContext, resource_id: str) -> Tagged:
        one_id = kind.decode(resource_id)
        try:
            image = await ctx.one_doc("one.image.info", one_id)
        except OneError as err:
            if err.code in (NO_EXISTS, AUTHORIZATION):
                raise kind.missing(resource_id) from None
            raise
        if not belongs(image):
            raise kind.missing(resource_id)
        template = image.find("TEMPLATE")

        async def write(new: dict[str, str]) -> None:
            await _update_as_caller(ctx, "one.image.update", one_id, template, new)

        return Tagged(resource_id, resource_type, documents.tags(template), write)

    return resolve_image


async def _update_as_caller(
    ctx: RequestContext, method: str, one_id: int, template: Any, new: dict[str, str]
) -> None:
    """Write the tags back; a refusal by OpenNebula is EC2's UnauthorizedOperation."""
    try:
        await ctx.one(method, one_id, documents.with_tags(template, new), 0)
    except OneError as err:
        if err.code == AUTHORIZATION:
            raise unauthorized() from None
        raise


async def _security_group(ctx: RequestContext, resource_id: str) -> Tagged:
    group = await group_doc(ctx, resource_id)
    one_id, template = documents.integer(group, "ID"), group.find("TEMPLATE")

    async def write(new: dict[str, str]) -> None:
        await _update_as_caller(ctx, "one.secgroup.update", one_id, template, new)

    return Tagged(resource_id, "security-group", documents.tags(template), write)


async def _address(ctx: RequestContext, resource_id: str) -> Tagged:
    address = await address_of(ctx, resource_id)
    one_id = address["_vnet"]
    vnet = await ctx.one_doc("one.vn.info", one_id)
    template = vnet.find("TEMPLATE")

    async def write(new: dict[str, str]) -> None:
        await _update_as_caller(ctx, "one.vn.update", one_id, template, new)

    return Tagged(resource_id, "elastic-ip", documents.tags(template), write)


async def _key_pair(ctx: RequestContext, resource_id: str) -> Tagged:
    user = await ctx.one_doc("one.user.info", -1)
    for vector in user.iterfind(f"TEMPLATE/{KEY_PAIR_ATTRIBUTE}"):
        if documents.text(vector, "ID") == resource_id:
            break
    else:
        raise EC2Error(
            "InvalidKeyPairID.NotFound", f"The key pair ID '{resource_id}' does not exist"
        )
    current = json.loads(documents.text(vector, "TAGS") or "{}")
    template = user.find("TEMPLATE")

    async def write(new: dict[str, str]) -> None:
        vector.find("TAGS").text = json.dumps(new)
        await ctx.one("one.user.update", ctx.uid, documents.template_xml(template), 0)

    return Tagged(resource_id, "key-pair", current, write)


_RESOLVERS: dict[str, Callable[[RequestContext, str], Awaitable[Tagged]]] = {
    "i": _instance,
    "ami": _image_kind(ids.IMAGE, "image", is_ami),
    "vol": _image_kind(ids.VOLUME, "volume", storage.is_volume),
    "snap": _image_kind(ids.SNAPSHOT, "snapshot", storage.is_snapshot),
    "sg": _security_group,
    "eipalloc": _address,
    "key": _key_pair,
}


async def resolve(ctx: RequestContext, resource_id: str) -> Tagged:
    resolver = _RESOLVERS.get(resource_id.split("-", 1)[0])
    if resolver is None or "-" not in resource_id:
        raise EC2Error("InvalidID", f"The ID '{resource_id}' is not valid")
    return await resolver(ctx, resource_id)


async def _targets(ctx: RequestContext, params: dict[str, Any]) -> list[Tagged]:
    resources = params.get("Resources")
    if not resources:
        raise missing_parameter("ResourceId")
    return [await resolve(ctx, r) for r in dict.fromkeys(resources)]


@action(
    "CreateTags",
    opennebula="one.vm.update / one.image.update / one.secgroup.update / one.vn.update / "
    "one.user.update: EC2_TAG vectors",
)
async def create_tags(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("Tags"):
        raise missing_parameter("Tag")
    new_tags = tag_rules.validate(params["Tags"])
    targets = await _targets(ctx, params)
    for target in targets:
        if len({**target.tags, **new_tags}) > tag_rules.MAX_TAGS:
            raise EC2Error(
                "TagLimitExceeded",
                f"The maximum number of tags ({tag_rules.MAX_TAGS}) for "
                f"'{target.resource_id}' was exceeded",
            )
    finish_dry_run(params)
    for target in targets:
        await target.write({**target.tags, **new_tags})
    return {}


@action(
    "DeleteTags",
    opennebula="one.vm.update / one.image.update / one.secgroup.update / one.vn.update / "
    "one.user.update without those EC2_TAGs",
)
async def delete_tags(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    targets = await _targets(ctx, params)
    finish_dry_run(params)
    doomed = params.get("Tags")
    for target in targets:
        if not doomed:
            remaining: dict[str, str] = {}
        else:
            remaining = dict(target.tags)
            for tag in doomed:
                key = tag.get("Key")
                if key in remaining and ("Value" not in tag or tag["Value"] == remaining[key]):
                    del remaining[key]
        if remaining != target.tags:
            await target.write(remaining)
    return {}


TAG_FILTERS: dict[str, filters.Extractor] = {
    "key": lambda t: t["Key"],
    "value": lambda t: t["Value"],
    "resource-id": lambda t: t["ResourceId"],
    "resource-type": lambda t: t["ResourceType"],
}


@action(
    "DescribeTags",
    opennebula="tags of the caller's VMs (vmpool.infoextended), own images (AMIs, volumes, "
    "snapshots), security groups, Elastic IPs and key pairs",
)
async def describe_tags(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms = await my_vms(ctx)
    images, groups, user, addresses = await asyncio.gather(
        ctx.one_doc("one.imagepool.info", -3, -1, -1),
        ctx.one_doc("one.secgrouppool.info", -3, -1, -1),
        ctx.one_doc("one.user.info", -1),
        my_addresses(ctx),
    )
    finish_dry_run(params)
    found: list[dict[str, Any]] = []

    def add(resource_id: str, kind: str, tags: dict[str, str]) -> None:
        found.extend(
            {"ResourceId": resource_id, "ResourceType": kind, "Key": k, "Value": v}
            for k, v in tags.items()
        )

    for vm in vms:
        add(view.instance_id(vm), "instance", documents.tags(vm.find("USER_TEMPLATE")))
    for image in images.iterfind("IMAGE"):
        one_id, image_tags = documents.integer(image, "ID"), documents.tags(image.find("TEMPLATE"))
        if is_ami(image):
            add(ids.IMAGE.encode(one_id), "image", image_tags)
        elif storage.is_volume(image):
            add(ids.VOLUME.encode(one_id), "volume", image_tags)
        elif storage.is_snapshot(image):
            add(ids.SNAPSHOT.encode(one_id), "snapshot", image_tags)
    for group in groups.iterfind("SECURITY_GROUP"):
        group_id = ids.SECURITY_GROUP.encode(documents.integer(group, "ID"))
        add(group_id, "security-group", documents.tags(group.find("TEMPLATE")))
    for address in addresses:
        add(address["AllocationId"], "elastic-ip", {t["Key"]: t["Value"] for t in address["Tags"]})
    for vector in user.iterfind(f"TEMPLATE/{KEY_PAIR_ATTRIBUTE}"):
        add(
            documents.text(vector, "ID"),
            "key-pair",
            json.loads(documents.text(vector, "TAGS") or "{}"),
        )
    found = filters.apply(
        found, params.get("Filters"), TAG_FILTERS, lambda t: {t["Key"]: t["Value"]}
    )
    found.sort(key=lambda t: (t["ResourceType"], t["ResourceId"], t["Key"]))
    chosen, token = pages.page(found, params, minimum=5, maximum=1000)
    return {"Tags": list(chosen), "NextToken": token}
