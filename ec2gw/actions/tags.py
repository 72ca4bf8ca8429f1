"""Tags on every taggable resource the gateway knows, kept on the OpenNebula object.

A tag is a vector attribute of its own, `EC2_TAG_<digest of the key> = [ KEY, VALUE ]`
(`documents.TAGS`; repeated `EC2_TAG` vectors of earlier versions are still read), in the
VM's USER_TEMPLATE for instances, the image's TEMPLATE for AMIs, volumes and snapshots,
the group's TEMPLATE for security groups and the reservation network's TEMPLATE for Elastic
IPs; key pairs keep theirs in their vector on the user. A resource id's prefix says which
it is. CreateTags merges the new tags in (`*.update(..., 1)`): nothing is read back and
written whole, so an image OpenNebula is still saving keeps the marks oned put on it;
DeleteTags writes back the template read just before, without those tags.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ec2gw.actions import instance_view as view
from ec2gw.actions import keypairs, storage
from ec2gw.actions.addresses import address_of, my_addresses
from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.images import is_ami
from ec2gw.actions.instances import my_vms, vms_by_ids
from ec2gw.actions.registry import action
from ec2gw.actions.security_groups import group_doc
from ec2gw.ec2 import filters, ids, pages
from ec2gw.ec2 import tags as tag_rules
from ec2gw.one import documents
from ec2gw.one.errors import AUTHORIZATION, NO_EXISTS, OneError
from ec2gw.protocol.errors import EC2Error, missing_parameter, unauthorized


@dataclass
class Tagged:
    """One resource's current tags and how to change them."""

    resource_id: str
    resource_type: str
    tags: dict[str, str]
    add: Callable[[dict[str, str]], Awaitable[None]]
    remove: Callable[[set[str]], Awaitable[None]]


def _on_template(
    ctx: RequestContext,
    resource_id: str,
    resource_type: str,
    method: str,
    one_id: int,
    template: documents.Element | None,
) -> Tagged:
    """Tags kept in a template that `method` (`one.<kind>.update`) updates."""

    async def add(new: dict[str, str]) -> None:
        await _update_as_caller(ctx, method, one_id, documents.tags_added(new), 1)

    async def remove(keys: set[str]) -> None:
        await _update_as_caller(ctx, method, one_id, documents.without_tags(template, keys), 0)

    return Tagged(resource_id, resource_type, documents.tags(template), add, remove)


async def _update_as_caller(
    ctx: RequestContext, method: str, one_id: int, template: str, append: int
) -> None:
    """A refusal by OpenNebula is EC2's UnauthorizedOperation."""
    try:
        await ctx.one(method, one_id, template, append)
    except OneError as err:
        if err.code == AUTHORIZATION:
            raise unauthorized() from None
        raise


async def _instance(ctx: RequestContext, resource_id: str) -> Tagged:
    (vm,) = await vms_by_ids(ctx, [resource_id])
    return _on_template(
        ctx,
        resource_id,
        "instance",
        "one.vm.update",
        documents.integer(vm, "ID"),
        vm.find("USER_TEMPLATE"),
    )


def _image_kind(
    kind: ids.IdKind, resource_type: str, belongs: Callable[[documents.Element], bool]
) -> Callable[[RequestContext, str], Awaitable[Tagged]]:
    """Tags of an image-backed resource (AMI, volume, snapshot): in its TEMPLATE."""

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
        return _on_template(
            ctx, resource_id, resource_type, "one.image.update", one_id, image.find("TEMPLATE")
        )

    return resolve_image


async def _security_group(ctx: RequestContext, resource_id: str) -> Tagged:
    group = await group_doc(ctx, resource_id)
    return _on_template(
        ctx,
        resource_id,
        "security-group",
        "one.secgroup.update",
        documents.integer(group, "ID"),
        group.find("TEMPLATE"),
    )


async def _address(ctx: RequestContext, resource_id: str) -> Tagged:
    address = await address_of(ctx, resource_id)
    one_id = address["_vnet"]
    vnet = await ctx.one_doc("one.vn.info", one_id)
    return _on_template(
        ctx, resource_id, "elastic-ip", "one.vn.update", one_id, vnet.find("TEMPLATE")
    )


async def _key_pair(ctx: RequestContext, resource_id: str) -> Tagged:
    user = await ctx.one_doc("one.user.info", -1)
    for vector in keypairs.vectors(user):
        if documents.text(vector, "ID") == resource_id:
            break
    else:
        raise EC2Error(
            "InvalidKeyPairID.NotFound", f"The key pair ID '{resource_id}' does not exist"
        )
    current = keypairs.pair_tags(vector)

    async def add(new: dict[str, str]) -> None:
        await keypairs.write_pair_tags(ctx, vector, {**current, **new})

    async def remove(keys: set[str]) -> None:
        remaining = {k: v for k, v in current.items() if k not in keys}
        await keypairs.write_pair_tags(ctx, vector, remaining)

    return Tagged(resource_id, "key-pair", current, add, remove)


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
    "one.user.update, merging an EC2_TAG_<digest of the key> = [KEY, VALUE] vector per "
    "tag (a key pair's tags: its vector on the user)",
    oned="*.update append=1 merges one EC2_TAG_<digest> vector per tag, so replace-mode image and "
    "user templates keep every tag; on a security group oned pushes its rules to its VMs "
    "again",
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
        await target.add(new_tags)
    return {}


@action(
    "DeleteTags",
    opennebula="one.vm.update / one.image.update / one.secgroup.update / one.vn.update / "
    "one.user.update: the template read just before, without those tags' vectors",
    oned="*.update append=0 of the template read just before, without those tags' vectors: a tag "
    "merged in between is lost",
)
async def delete_tags(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    targets = await _targets(ctx, params)
    finish_dry_run(params)
    doomed = params.get("Tags")
    for target in targets:
        keys = {
            key
            for key, value in target.tags.items()
            if not doomed
            or any(
                tag.get("Key") == key and ("Value" not in tag or tag["Value"] == value)
                for tag in doomed
            )
        }
        if keys:
            await target.remove(keys)
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
    for vector in keypairs.vectors(user):
        add(documents.text(vector, "ID"), "key-pair", keypairs.pair_tags(vector))
    found = filters.apply(
        found, params.get("Filters"), TAG_FILTERS, lambda t: {t["Key"]: t["Value"]}
    )
    found.sort(key=lambda t: (t["ResourceType"], t["ResourceId"], t["Key"]))
    chosen, token = pages.page(found, params, action="DescribeTags")
    return {"Tags": list(chosen), "NextToken": token}
