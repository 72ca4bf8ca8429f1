"""A VPC view of OpenNebula networks.

There is one VPC per region, the default VPC (`vpc-` + the zone id), spanning every network
the caller may use; each virtual network the caller may use is a subnet (`subnet-` + the
network id) in the availability zone of its first cluster. The lowest-numbered subnet of
each zone is that zone's default subnet, the one RunInstances uses without `SubnetId`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from ec2gw.actions import instance_view as view
from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.instances import my_vms, zones_of
from ec2gw.actions.regions import availability_zones
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, ids, pages
from ec2gw.one import documents
from ec2gw.protocol.errors import EC2Error

VPC = ids.VPC


def default_vpc_id(ctx: RequestContext) -> str:
    return VPC.encode(ctx.settings.gateway.zone_id)


def _network_cidr(vnet: documents.Element) -> ipaddress.IPv4Network | None:
    """The network's CIDR: NETWORK_ADDRESS/NETWORK_MASK, else the span of its ranges."""
    address = documents.text(vnet, "TEMPLATE/NETWORK_ADDRESS")
    mask = documents.text(vnet, "TEMPLATE/NETWORK_MASK")
    try:
        if address and mask:
            return ipaddress.IPv4Network(f"{address}/{mask}", strict=False)
    except ValueError:
        pass
    span: list[ipaddress.IPv4Network] = []
    for ar in vnet.iterfind("AR_POOL/AR"):
        try:
            first = ipaddress.IPv4Address(documents.text(ar, "IP"))
        except ValueError:
            continue
        last = first + max(0, documents.integer(ar, "SIZE", 1) - 1)
        span += ipaddress.summarize_address_range(first, last)
    if not span:
        return None
    return _supernet(span)


def _supernet(networks: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The smallest network containing all of them."""
    result = networks[0]
    for network in networks[1:]:
        while not (network.network_address in result and network.broadcast_address in result):
            result = result.supernet()
    return result


def public_network_id(ctx: RequestContext, pool: documents.Element) -> int | None:
    """The id of `[gateway] public_network` (a name or an id) in a vnet pool, if set."""
    return network_named(pool, ctx.settings.gateway.public_network)


def network_named(pool: documents.Element, wanted: str) -> int | None:
    """The id of the network called `wanted` (a name or an id) in a vnet pool, if any."""
    if not wanted:
        return None
    for vnet in pool.iterfind("VNET"):
        if str(documents.integer(vnet, "ID", -1)) == wanted or documents.text(vnet, "NAME") == (
            wanted
        ):
            return documents.integer(vnet, "ID")
    return None


def is_public(vnet: documents.Element, public_id: int | None) -> bool:
    """The public network itself, or an Elastic IP reserved from it."""
    if public_id is None:
        return False
    return public_id in (
        documents.integer(vnet, "ID"),
        documents.integer(vnet, "PARENT_NETWORK_ID", -1),
    )


async def subnets(ctx: RequestContext) -> list[dict[str, Any]]:
    """Every network the caller may use, as an EC2 subnet, lowest id first.

    The public network of Elastic IPs and the caller's reservations of it are not subnets.
    """
    pool = await ctx.one_doc("one.vnpool.info", -2, -1, -1)
    public_id = public_network_id(ctx, pool)
    zones = await availability_zones(ctx)
    by_cluster = {z["ClusterId"]: z for z in zones}
    result = []
    seen_zones: set[str] = set()
    vpc_id = default_vpc_id(ctx)
    for vnet in sorted(pool.iterfind("VNET"), key=lambda v: documents.integer(v, "ID")):
        if is_public(vnet, public_id):
            continue
        clusters = [int(c.text) for c in vnet.iterfind("CLUSTERS/ID") if (c.text or "").isdigit()]
        zone = next((by_cluster[c] for c in clusters if c in by_cluster), None)
        if zone is None:
            continue
        cidr = _network_cidr(vnet)
        size = sum(documents.integer(ar, "SIZE") for ar in vnet.iterfind("AR_POOL/AR"))
        used = documents.integer(vnet, "USED_LEASES")
        default = zone["ZoneName"] not in seen_zones
        seen_zones.add(zone["ZoneName"])
        subnet_id = ids.SUBNET.encode(documents.integer(vnet, "ID"))
        result.append(
            {
                "SubnetId": subnet_id,
                "SubnetArn": (
                    f"arn:aws:ec2:{zone['RegionName']}:{ctx.account_id}:subnet/{subnet_id}"
                ),
                "State": "available",
                "VpcId": vpc_id,
                "CidrBlock": str(cidr) if cidr else "0.0.0.0/32",
                "AvailableIpAddressCount": max(0, size - used),
                "AvailabilityZone": zone["ZoneName"],
                "AvailabilityZoneId": zone["ZoneId"],
                "DefaultForAz": default,
                "MapPublicIpOnLaunch": False,
                "MapCustomerOwnedIpOnLaunch": False,
                "AssignIpv6AddressOnCreation": False,
                "Ipv6CidrBlockAssociationSet": [],
                "OwnerId": ids.account_id(documents.integer(vnet, "UID")),
                "Tags": [{"Key": "Name", "Value": documents.text(vnet, "NAME")}],
                "_cidr": cidr,
            }
        )
    return result


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource["Tags"]}


SUBNET_FILTERS: dict[str, filters.Extractor] = {
    "availability-zone": lambda s: s["AvailabilityZone"],
    "availability-zone-id": lambda s: s["AvailabilityZoneId"],
    "available-ip-address-count": lambda s: s["AvailableIpAddressCount"],
    "cidr": lambda s: s["CidrBlock"],
    "cidr-block": lambda s: s["CidrBlock"],
    "cidrBlock": lambda s: s["CidrBlock"],
    "default-for-az": lambda s: s["DefaultForAz"],
    "defaultForAz": lambda s: s["DefaultForAz"],
    "map-public-ip-on-launch": lambda s: s["MapPublicIpOnLaunch"],
    "owner-id": lambda s: s["OwnerId"],
    "state": lambda s: s["State"],
    "subnet-arn": lambda s: s["SubnetArn"],
    "subnet-id": lambda s: s["SubnetId"],
    "vpc-id": lambda s: s["VpcId"],
}


@action(
    "DescribeSubnets",
    opennebula="one.vnpool.info(-2): each usable virtual network is a subnet of the default VPC",
)
async def describe_subnets(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    found = await subnets(ctx)
    finish_dry_run(params)
    wanted = params.get("SubnetIds")
    if wanted:
        for subnet_id in wanted:
            ids.SUBNET.decode(subnet_id)
        known = {s["SubnetId"] for s in found}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise ids.SUBNET.missing(missing)
        found = [s for s in found if s["SubnetId"] in wanted]
    found = filters.apply(found, params.get("Filters"), SUBNET_FILTERS, _tags)
    chosen, token = pages.page(found, params, action="DescribeSubnets")
    return {
        "Subnets": [{k: v for k, v in s.items() if k != "_cidr"} for s in chosen],
        "NextToken": token,
    }


VPC_FILTERS: dict[str, filters.Extractor] = {
    "cidr": lambda v: v["CidrBlock"],
    "cidr-block-association.cidr-block": lambda v: v["CidrBlock"],
    "cidr-block-association.state": lambda v: "associated",
    "dhcp-options-id": lambda v: v["DhcpOptionsId"],
    "is-default": lambda v: v["IsDefault"],
    "isDefault": lambda v: v["IsDefault"],
    "owner-id": lambda v: v["OwnerId"],
    "state": lambda v: v["State"],
    "vpc-id": lambda v: v["VpcId"],
}


@action(
    "DescribeVpcs",
    opennebula="one default VPC per zone, spanning the caller's networks (one.vnpool.info)",
)
async def describe_vpcs(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    found = await subnets(ctx)
    finish_dry_run(params)
    cidrs = [s["_cidr"] for s in found if s["_cidr"] is not None]
    cidr = str(_supernet(cidrs)) if cidrs else "10.0.0.0/16"
    vpc_id = default_vpc_id(ctx)
    vpc = {
        "VpcId": vpc_id,
        "State": "available",
        "CidrBlock": cidr,
        "DhcpOptionsId": "default",
        "InstanceTenancy": "default",
        "IsDefault": True,
        "OwnerId": ctx.account_id,
        "CidrBlockAssociationSet": [
            {
                "AssociationId": f"vpc-cidr-assoc-{vpc_id[4:]}",
                "CidrBlock": cidr,
                "CidrBlockState": {"State": "associated"},
            }
        ],
        "Tags": [],
    }
    wanted = params.get("VpcIds")
    if wanted:
        for value in wanted:
            VPC.decode(value)
        missing = [w for w in wanted if w != vpc_id]
        if missing:
            raise EC2Error(
                "InvalidVpcID.NotFound", f"The vpc ID '{', '.join(missing)}' does not exist"
            )
    vpcs = filters.apply([vpc], params.get("Filters"), VPC_FILTERS, _tags)
    chosen, token = pages.page(vpcs, params, action="DescribeVpcs")
    return {"Vpcs": list(chosen), "NextToken": token}


def _eni_tags(eni: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in eni["TagSet"]}


def _eni_attachment(member: str) -> filters.Extractor:
    return lambda n: n["Attachment"][member]


def _eni_association(member: str) -> filters.Extractor:
    return lambda n: (n["Association"] or {}).get(member)


ENI_FILTERS: dict[str, filters.Extractor] = {
    "addresses.private-ip-address": lambda n: n["PrivateIpAddress"],
    "addresses.primary": lambda n: True,
    "addresses.association.public-ip": _eni_association("PublicIp"),
    "addresses.association.owner-id": _eni_association("IpOwnerId"),
    "association.allocation-id": _eni_association("AllocationId"),
    "association.association-id": _eni_association("AssociationId"),
    "association.ip-owner-id": _eni_association("IpOwnerId"),
    "association.public-ip": _eni_association("PublicIp"),
    "association.public-dns-name": _eni_association("PublicDnsName"),
    "attachment.attachment-id": _eni_attachment("AttachmentId"),
    "attachment.attach-time": lambda n: n["Attachment"]["AttachTime"].strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    ),
    "attachment.delete-on-termination": _eni_attachment("DeleteOnTermination"),
    "attachment.device-index": _eni_attachment("DeviceIndex"),
    "attachment.instance-id": _eni_attachment("InstanceId"),
    "attachment.instance-owner-id": _eni_attachment("InstanceOwnerId"),
    "attachment.status": _eni_attachment("Status"),
    "availability-zone": lambda n: n["AvailabilityZone"],
    "description": lambda n: n["Description"],
    "group-id": lambda n: [g["GroupId"] for g in n["Groups"]],
    "group-name": lambda n: [g["GroupName"] for g in n["Groups"]],
    "interface-type": lambda n: n["InterfaceType"],
    "mac-address": lambda n: n["MacAddress"],
    "network-interface-id": lambda n: n["NetworkInterfaceId"],
    "owner-id": lambda n: n["OwnerId"],
    "private-dns-name": lambda n: n["PrivateDnsName"],
    "private-ip-address": lambda n: n["PrivateIpAddress"],
    "requester-managed": lambda n: n["RequesterManaged"],
    "source-dest-check": lambda n: n["SourceDestCheck"],
    "status": lambda n: n["Status"],
    "subnet-id": lambda n: n["SubnetId"],
    "vpc-id": lambda n: n["VpcId"],
}


@action(
    "DescribeNetworkInterfaces",
    opennebula="the NICs of the caller's VMs (one.vmpool.infoextended): eni- + VM id + NIC_ID",
)
async def describe_network_interfaces(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    wanted = params.get("NetworkInterfaceIds") or []
    for eni_id in wanted:
        ids.NETWORK_INTERFACE.decode_pair(eni_id)
    vms, zones = await asyncio.gather(my_vms(ctx), zones_of(ctx))
    finish_dry_run(params)
    found = [
        eni
        for vm in vms
        if view.state_of(vm).name != "terminated"
        for eni in view.network_interfaces(vm, zones)
    ]
    if wanted:
        known = {n["NetworkInterfaceId"] for n in found}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise ids.NETWORK_INTERFACE.missing(missing)
        found = [n for n in found if n["NetworkInterfaceId"] in wanted]
    found = filters.apply(found, params.get("Filters"), ENI_FILTERS, _eni_tags)
    found.sort(key=lambda n: n["NetworkInterfaceId"])
    chosen, token = pages.page(found, params, action="DescribeNetworkInterfaces")
    return {"NetworkInterfaces": list(chosen), "NextToken": token}


# The attributes of EC2's default VPC: OpenNebula VMs resolve names and get host names as
# there; there are no Network Address Usage metrics.
VPC_ATTRIBUTES = {
    "enableDnsSupport": ("EnableDnsSupport", True),
    "enableDnsHostnames": ("EnableDnsHostnames", True),
    "enableNetworkAddressUsageMetrics": ("EnableNetworkAddressUsageMetrics", False),
}


@action(
    "DescribeVpcAttribute",
    opennebula="nothing: the default VPC (vpc- + the zone id) answers EC2's default-VPC values "
    "(DNS support and host names on, no address usage metrics)",
    oned="",
)
async def describe_vpc_attribute(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    attribute = params.get("Attribute")
    if attribute not in VPC_ATTRIBUTES:
        raise EC2Error(
            "InvalidParameterValue",
            f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.",
        )
    vpc_id = params.get("VpcId") or ""
    VPC.decode(vpc_id)
    if vpc_id != default_vpc_id(ctx):
        raise EC2Error("InvalidVpcID.NotFound", f"The vpc ID '{vpc_id}' does not exist")
    finish_dry_run(params)
    member, value = VPC_ATTRIBUTES[attribute]
    return {"VpcId": vpc_id, member: {"Value": value}}
