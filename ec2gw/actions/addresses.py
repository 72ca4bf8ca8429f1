"""Elastic IPs: single leases of the public network, reserved into networks the caller owns.

AllocateAddress is one `one.vn.reserve` of one lease of `[gateway] public_network` into a
new reservation network owned by the caller: a single atomic OpenNebula call, so an
address is never held without an owner, and OpenNebula (not the gateway) guarantees no
lease is handed out twice. The allocation id is `eipalloc-` + the reservation's id; it is
associated by attaching a NIC on the reservation to the instance (marked `EC2_ELASTIC_IP`),
released by deleting the reservation, which returns the lease to the public network.

oned creates, detaches a NIC and deletes a network asynchronously: AllocateAddress answers
once the reservation has left LOCK_CREATE (oned refuses to delete it or attach to it before),
Disassociate waits (bounded) for the detach, so that a Release or Associate right after
works as on EC2, and a reservation being deleted (LOCK_DELETE) is gone for the client at
once. oned puts every reservation in security group 0 (allow all); AllocateAddress takes it
out, and AssociateAddress gives the address's NIC the groups of the instance's primary NIC,
so that the instance's groups filter the traffic to its public address, as on EC2.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from typing import Any

from ec2gw.actions import instance_view as view
from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.hotplug import finished, hotplug, settled
from ec2gw.actions.instances import vms_by_ids
from ec2gw.actions.registry import action
from ec2gw.actions.vpc import public_network_id
from ec2gw.ec2 import filters, ids, pages
from ec2gw.ec2 import tags as tag_rules
from ec2gw.one import documents
from ec2gw.one.errors import ACTION, AUTHORIZATION, NO_EXISTS, OneError, to_ec2_error
from ec2gw.protocol.errors import EC2Error

log = logging.getLogger("ec2gw.addresses")

NETWORK_LOCK_CREATE = 2  # VirtualNetwork STATE until oned's driver has created it
CREATE_SECONDS = 10.0


async def _public_network(ctx: RequestContext) -> tuple[int | None, documents.Element]:
    """The public network's id (None when not configured) and the caller's own networks."""
    usable, own = await asyncio.gather(
        ctx.one_doc("one.vnpool.info", -2, -1, -1), ctx.one_doc("one.vnpool.info", -3, -1, -1)
    )
    return public_network_id(ctx, usable), own


def _lease_vm(reservation: documents.Element) -> int | None:
    """The VM holding the reservation's one lease (vn.info lists leases), if any."""
    for lease in reservation.iterfind("AR_POOL/AR/LEASES/LEASE"):
        vm = documents.integer(lease, "VM", -1)
        if vm >= 0:
            return vm
    return None


def _address(ctx: RequestContext, reservation: documents.Element) -> dict[str, Any]:
    """A reservation network (full vn.info body) as EC2's Address."""
    one_id = documents.integer(reservation, "ID")
    vm_id = _lease_vm(reservation)
    address: dict[str, Any] = {
        "AllocationId": ids.ALLOCATION.encode(one_id),
        "PublicIp": documents.text(reservation, "AR_POOL/AR/IP"),
        "Domain": "vpc",
        "PublicIpv4Pool": "amazon",
        "NetworkBorderGroup": "",
        "Tags": [
            {"Key": k, "Value": v} for k, v in documents.tags(reservation.find("TEMPLATE")).items()
        ],
        "_vnet": one_id,
        "_vm": vm_id,
    }
    if vm_id is not None:
        address.update(
            InstanceId=ids.INSTANCE.encode(vm_id),
            AssociationId=ids.ASSOCIATION.encode(one_id),
            NetworkInterfaceOwnerId=ctx.account_id,
        )
    return address


async def _with_private_ips(ctx: RequestContext, addresses: list[dict[str, Any]]) -> None:
    """Fill in the primary interface and private IP of the associated instances."""
    vm_ids = sorted({a["_vm"] for a in addresses if a["_vm"] is not None})
    if not vm_ids:
        return
    pool = await ctx.one_doc("one.vmpool.infoset", ",".join(map(str, vm_ids)), True)
    primary = {}
    for vm in pool.iterfind("VM"):
        nic = next((n for n in vm.iterfind("TEMPLATE/NIC") if not view.is_elastic(n)), None)
        if nic is not None:
            vm_id = documents.integer(vm, "ID")
            primary[vm_id] = (
                ids.NETWORK_INTERFACE.encode_pair(vm_id, documents.integer(nic, "NIC_ID")),
                documents.text(nic, "IP"),
            )
    for address in addresses:
        if address["_vm"] in primary:
            eni, ip = primary[address["_vm"]]
            address.update(NetworkInterfaceId=eni, PrivateIpAddress=ip)


async def _reservation(
    ctx: RequestContext, one_id: int, public_id: int | None
) -> documents.Element | None:
    """The caller's reservation network `one_id` of the public network, else None."""
    try:
        vnet = await ctx.one_doc("one.vn.info", one_id)
    except OneError as err:
        if err.code in (NO_EXISTS, AUTHORIZATION):
            return None
        raise
    if public_id is None or documents.integer(vnet, "PARENT_NETWORK_ID", -1) != public_id:
        return None
    if documents.integer(vnet, "UID") != ctx.uid or documents.network_deleted(vnet):
        return None
    return vnet


async def my_addresses(ctx: RequestContext) -> list[dict[str, Any]]:
    """Every Elastic IP the caller holds, lowest allocation id first."""
    public_id, own = await _public_network(ctx)
    if public_id is None:
        return []
    reservations = [
        documents.integer(v, "ID")
        for v in own.iterfind("VNET")
        if documents.integer(v, "PARENT_NETWORK_ID", -1) == public_id
    ]
    found = await asyncio.gather(*(_reservation(ctx, i, public_id) for i in sorted(reservations)))
    return [_address(ctx, vnet) for vnet in found if vnet is not None]


async def address_of(ctx: RequestContext, allocation_id: str) -> dict[str, Any]:
    """The caller's Elastic IP `eipalloc-…`, or InvalidAllocationID.NotFound."""
    return await _one_address(ctx, {"AllocationId": allocation_id}, by="AllocationId")


async def _one_address(ctx: RequestContext, params: dict[str, Any], *, by: str) -> dict[str, Any]:
    """The address named by AllocationId (or AssociationId) or PublicIp, or the EC2 error."""
    kind = ids.ASSOCIATION if by == "AssociationId" else ids.ALLOCATION
    if params.get(by):
        one_id = kind.decode(params[by])
        public_id, _ = await _public_network(ctx)
        vnet = await _reservation(ctx, one_id, public_id)
        if vnet is None or (kind is ids.ASSOCIATION and _lease_vm(vnet) is None):
            raise kind.missing(params[by])
        return _address(ctx, vnet)
    if params.get("PublicIp"):
        for address in await my_addresses(ctx):
            if address["PublicIp"] == params["PublicIp"]:
                return address
        raise EC2Error("InvalidAddress.NotFound", f"Address '{params['PublicIp']}' not found.")
    raise EC2Error("MissingParameter", f"Either {by} or PublicIp must be given.")


def _public(address: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in address.items() if not k.startswith("_")}


def _range_of(public: documents.Element, address: str) -> int | None:
    """The AR_ID of the public network's address range holding `address`, if any."""
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return None
    for ar in public.iterfind("AR_POOL/AR"):
        try:
            first = ipaddress.ip_address(documents.text(ar, "IP"))
        except ValueError:
            continue
        if first.version == wanted.version and 0 <= int(wanted) - int(first) < documents.integer(
            ar, "SIZE"
        ):
            return documents.integer(ar, "AR_ID")
    return None


def _groups(nic: documents.Element | None) -> list[str]:
    return (
        [g for g in documents.text(nic, "SECURITY_GROUPS").split(",") if g]
        if nic is not None
        else []
    )


@action(
    "AllocateAddress",
    opennebula="one.vn.reserve of one lease of the public network into a network owned by the "
    "caller (Address: IP and the AR_ID of its address range); one.vn.update merges in "
    "SECURITY_GROUPS without the 0 oned adds and the tags (EC2_TAG_* vectors)",
    oned="one.vn.reserve copies the public network's template, group 0 included, which a merge "
    "update takes out; answered once the reservation left LOCK_CREATE (bounded); an Address "
    "needs its AR_ID; the reservation is deleted if a later step fails",
)
async def allocate_address(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    domain = params.get("Domain") or "vpc"
    if domain not in ("vpc", "standard"):
        raise EC2Error("InvalidParameterValue", f"Invalid value '{domain}' for domain.")
    address_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "elastic-ip")
    public_id, _ = await _public_network(ctx)
    if public_id is None:
        raise EC2Error(
            "AddressLimitExceeded", "No public network is configured for Elastic IP addresses."
        )
    wanted = params.get("Address")
    request: list[tuple[str, Any]] = [("SIZE", 1), ("NAME", f"eip-{secrets.token_hex(6)}")]
    if wanted:
        # oned reserves a given IP only from a given address range.
        ar_id = _range_of(await ctx.one_doc("one.vn.info", public_id), wanted)
        if ar_id is None:
            raise EC2Error("InvalidAddress.NotFound", f"Address '{wanted}' not found.")
        request += [("AR_ID", ar_id), ("IP", wanted)]
    finish_dry_run(params)
    try:
        one_id = await ctx.one("one.vn.reserve", public_id, documents.template_text(request))
    except OneError as err:
        if wanted and err.code == ACTION:
            raise EC2Error("InvalidIPAddress.InUse", f"Address {wanted} is in use.") from None
        if err.code == ACTION or (err.code == AUTHORIZATION and "quota" in err.message.lower()):
            raise EC2Error(
                "AddressLimitExceeded",
                "The maximum number of addresses has been reached.",
            ) from None
        raise to_ec2_error(err) from None
    try:
        vnet = await _created(ctx, one_id)
        # one.vn.reserve allocates, which adds group 0 (allow all) to the reservation: the
        # address's NIC gets its instance's groups instead (AssociateAddress).
        groups = _groups(vnet.find("TEMPLATE"))
        update: list[tuple[str, Any]] = list(documents.tag_vectors(address_tags))
        if "0" in groups:
            update.append(("SECURITY_GROUPS", ",".join(g for g in groups if g != "0")))
        if update:
            await ctx.one("one.vn.update", one_id, documents.template_text(update), 1)
    except BaseException:
        await _delete_quietly(ctx, one_id)
        raise
    address = _address(ctx, vnet)
    return {k: address[k] for k in ("AllocationId", "PublicIp", "Domain", "PublicIpv4Pool")}


async def _created(ctx: RequestContext, one_id: int) -> documents.Element:
    """The reservation's document once oned has created it (left LOCK_CREATE, which refuses
    a delete or a NIC), or as it is after `CREATE_SECONDS`."""
    deadline = time.monotonic() + CREATE_SECONDS
    while True:
        vnet = await ctx.one_doc("one.vn.info", one_id)
        creating = documents.integer(vnet, "STATE", -1) == NETWORK_LOCK_CREATE
        if not creating or time.monotonic() > deadline:
            return vnet
        await asyncio.sleep(0.05)


async def _delete_quietly(ctx: RequestContext, one_id: int) -> None:
    try:
        await ctx.one("one.vn.delete", one_id)
    except (OneError, EC2Error):
        log.error("request_id=%s could not roll back reservation %s", ctx.request_id, one_id)


def _nic_on(vm: documents.Element, reservation: int) -> documents.Element | None:
    return next(
        (
            n
            for n in vm.iterfind("TEMPLATE/NIC")
            if documents.integer(n, "NETWORK_ID") == reservation
        ),
        None,
    )


async def _detach(ctx: RequestContext, vm_id: int, reservation: int) -> bool:
    """Detach the NIC on `reservation` from the VM and wait, bounded, for oned to finish:
    the lease stays the VM's until then, so a Release or Associate right after would fail.
    False if oned is still at it past the bound."""
    nic = _nic_on(await settled(ctx, vm_id), reservation)
    if nic is None:
        return True
    await hotplug(ctx, "one.vm.detachnic", vm_id, documents.integer(nic, "NIC_ID"))
    vm = await finished(ctx, vm_id)
    if vm is None:
        return False
    if _nic_on(vm, reservation) is not None:  # the driver failed; oned kept the NIC
        raise EC2Error(
            "IncorrectState",
            f"The address could not be disassociated from '{ids.INSTANCE.encode(vm_id)}'.",
        )
    return True


async def _attach(ctx: RequestContext, vm: documents.Element, reservation: int) -> None:
    """Attach a NIC on `reservation` in the security groups of the VM's primary NIC (else it
    would only be in the reservation's)."""
    primary = next((n for n in vm.iterfind("TEMPLATE/NIC") if not view.is_elastic(n)), None)
    nic: dict[str, Any] = {"NETWORK_ID": reservation, view.ELASTIC_NIC: "YES"}
    if groups := _groups(primary):
        nic["SECURITY_GROUPS"] = ",".join(groups)
    vm_id = documents.integer(vm, "ID")
    await hotplug(ctx, "one.vm.attachnic", vm_id, documents.template_text([("NIC", nic)]))


async def _target_vm(ctx: RequestContext, params: dict[str, Any]) -> documents.Element:
    if params.get("InstanceId"):
        (vm,) = await vms_by_ids(ctx, [params["InstanceId"]])
        return vm
    if params.get("NetworkInterfaceId"):
        vm_id, nic_id = ids.NETWORK_INTERFACE.decode_pair(params["NetworkInterfaceId"])
        try:
            (vm,) = await vms_by_ids(ctx, [ids.INSTANCE.encode(vm_id)])
        except EC2Error:
            raise ids.NETWORK_INTERFACE.missing(params["NetworkInterfaceId"]) from None
        if not any(documents.integer(n, "NIC_ID") == nic_id for n in vm.iterfind("TEMPLATE/NIC")):
            raise ids.NETWORK_INTERFACE.missing(params["NetworkInterfaceId"])
        return vm
    raise EC2Error("MissingParameter", "Either InstanceId or NetworkInterfaceId must be given.")


@action(
    "AssociateAddress",
    opennebula="one.vm.attachnic with a NIC on the address's reservation in the security groups "
    "of the instance's primary NIC (moved with one.vm.detachnic when "
    "AllowReassociation, attached once oned has finished the detach)",
    oned="attachnic/detachnic only in RUNNING or POWEROFF; a detach is asynchronous (the lease "
    "stays taken until HOTPLUG_NIC ends), so a reassociation waits for it, bounded",
)
async def associate_address(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    address = await _one_address(ctx, params, by="AllocationId")
    vm = await _target_vm(ctx, params)
    vm_id = documents.integer(vm, "ID")
    if view.state_of(vm).name not in ("running", "stopped"):
        raise EC2Error(
            "IncorrectInstanceState",
            f"The instance '{view.instance_id(vm)}' is not in a valid state for this operation.",
        )
    if params.get("PrivateIpAddress"):
        primary = [n for n in vm.iterfind("TEMPLATE/NIC") if not view.is_elastic(n)]
        if not primary or documents.text(primary[0], "IP") != params["PrivateIpAddress"]:
            raise EC2Error(
                "InvalidParameterValue",
                "OpenNebula maps an Elastic IP to the primary private address only.",
            )
    current = address["_vm"]
    if current is not None and current != vm_id and not params.get("AllowReassociation"):
        raise EC2Error(
            "Resource.AlreadyAssociated",
            f"resource {address['AllocationId']} is already associated with associate-id "
            f"{address['AssociationId']}",
        )
    finish_dry_run(params)
    association = ids.ASSOCIATION.encode(address["_vnet"])
    if current == vm_id:
        return {"AssociationId": association}
    # EC2 replaces an instance's Elastic IP: the old one stays allocated, unassociated.
    held = view.elastic_nic(vm)
    detaches = []
    if held is not None:
        detaches.append(_detach(ctx, vm_id, documents.integer(held, "NETWORK_ID")))
    if current is not None:
        detaches.append(_detach(ctx, current, address["_vnet"]))
    if not all(await asyncio.gather(*detaches)):
        raise EC2Error(
            "IncorrectState",
            f"The address {address['PublicIp']} is still being disassociated; try again.",
        )
    try:
        await _attach(ctx, vm, address["_vnet"])
    except BaseException:
        if current is not None:  # put the address back where it was
            try:
                await _attach(ctx, await ctx.one_doc("one.vm.info", current), address["_vnet"])
            except (OneError, EC2Error):
                log.error("request_id=%s could not re-associate %s", ctx.request_id, association)
        raise
    return {"AssociationId": association}


@action(
    "DisassociateAddress",
    opennebula="one.vm.detachnic of the address's NIC; answers once oned has finished the detach "
    "(the VM left HOTPLUG_NIC), 10 s at most",
    oned="detachnic only in RUNNING or POWEROFF; asynchronous on a running VM: answered once oned "
    "has finished (bounded wait), so a release right after works",
)
async def disassociate_address(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    address = await _one_address(ctx, params, by="AssociationId")
    if address["_vm"] is None:
        raise EC2Error(
            "InvalidAssociationID.NotFound",
            f"The address '{address['PublicIp']}' is not associated.",
        )
    finish_dry_run(params)
    if not await _detach(ctx, address["_vm"], address["_vnet"]):
        # Accepted, as on EC2; the address stays in use until oned has finished.
        log.warning("request_id=%s detach still under way", ctx.request_id)
    return {}


@action(
    "ReleaseAddress",
    opennebula="one.vn.delete of the reservation: the lease returns to the public network (a "
    "reservation oned is deleting, LOCK_DELETE, is gone)",
    oned="vn.delete refused while a lease is in use; asynchronous (LOCK_DELETE, then gone): a "
    "reservation in LOCK_DELETE counts as released",
)
async def release_address(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    address = await _one_address(ctx, params, by="AllocationId")
    if address["_vm"] is not None:
        raise EC2Error(
            "InvalidIPAddress.InUse",
            f"Address {address['PublicIp']} is in use; disassociate it first.",
        )
    finish_dry_run(params)
    try:
        await ctx.one("one.vn.delete", address["_vnet"])
    except OneError as err:
        if err.code == NO_EXISTS or (err.code == ACTION and "LOCK_DELETE" in err.message):
            raise ids.ALLOCATION.missing(address["AllocationId"]) from None  # released meanwhile
        if err.code == ACTION:
            raise EC2Error(
                "InvalidIPAddress.InUse", f"Address {address['PublicIp']} is in use."
            ) from None
        raise
    return {}


def _tags(address: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in address["Tags"]}


ADDRESS_FILTERS: dict[str, filters.Extractor] = {
    "allocation-id": lambda a: a["AllocationId"],
    "association-id": lambda a: a.get("AssociationId"),
    "domain": lambda a: a["Domain"],
    "instance-id": lambda a: a.get("InstanceId"),
    "network-border-group": lambda a: a["NetworkBorderGroup"],
    "network-interface-id": lambda a: a.get("NetworkInterfaceId"),
    "network-interface-owner-id": lambda a: a.get("NetworkInterfaceOwnerId"),
    "private-ip-address": lambda a: a.get("PrivateIpAddress"),
    "public-ip": lambda a: a["PublicIp"],
    "public-ipv4-pool": lambda a: a["PublicIpv4Pool"],
}


@action(
    "DescribeAddresses",
    opennebula="one.vnpool.info(-3): the caller's reservations of the public network, "
    "one.vn.info for their leases",
)
async def describe_addresses(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    for allocation_id in params.get("AllocationIds") or []:
        ids.ALLOCATION.decode(allocation_id)
    found = await my_addresses(ctx)
    finish_dry_run(params)
    for key, member, error in (
        ("AllocationIds", "AllocationId", ids.ALLOCATION.missing),
        ("PublicIps", "PublicIp", None),
    ):
        wanted = params.get(key)
        if not wanted:
            continue
        known = {a[member] for a in found}
        missing = [w for w in wanted if w not in known]
        if missing:
            if error is not None:
                raise error(missing)
            raise EC2Error("InvalidAddress.NotFound", f"Address '{missing[0]}' not found.")
        found = [a for a in found if a[member] in wanted]
    await _with_private_ips(ctx, found)
    found = filters.apply(found, params.get("Filters"), ADDRESS_FILTERS, _tags)
    return {"Addresses": [_public(a) for a in found]}


@action(
    "DescribeAddressesAttribute",
    opennebula="one.vnpool.info(-3): the caller's reservations of the public network, "
    "one.vn.info for their address; no PtrRecord (OpenNebula has no reverse DNS)",
    oned="",
)
async def describe_addresses_attribute(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    attribute = params.get("Attribute")
    if attribute is not None and attribute != "domain-name":
        raise EC2Error(
            "InvalidParameterValue",
            f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.",
        )
    wanted = params.get("AllocationIds") or []
    for allocation_id in wanted:
        ids.ALLOCATION.decode(allocation_id)
    found = await my_addresses(ctx)
    finish_dry_run(params)
    if wanted:
        known = {a["AllocationId"] for a in found}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise ids.ALLOCATION.missing(missing)
        found = [a for a in found if a["AllocationId"] in wanted]
    chosen, token = pages.page(found, params, action="DescribeAddressesAttribute")
    return {
        "Addresses": [
            {"PublicIp": a["PublicIp"], "AllocationId": a["AllocationId"]} for a in chosen
        ],
        "NextToken": token,
    }
