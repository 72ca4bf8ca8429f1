"""Regions are OpenNebula zones; availability zones are OpenNebula clusters."""

from __future__ import annotations

import re
from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.registry import action
from ec2gw.config import Settings
from ec2gw.ec2 import filters
from ec2gw.one import documents
from ec2gw.protocol.errors import EC2Error


def slug(name: str) -> str:
    """A name usable as an EC2 region / zone name: lower case, dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "zone"


def region_name(settings: Settings, zone_id: int, zone_name: str) -> str:
    if zone_id == settings.gateway.zone_id and settings.gateway.region_name:
        return settings.gateway.region_name
    return slug(zone_name)


async def local_region(ctx: RequestContext) -> str:
    """The region this gateway serves: its OpenNebula zone."""
    if ctx.settings.gateway.region_name:
        return ctx.settings.gateway.region_name
    zone = await ctx.one_doc("one.zone.info", ctx.settings.gateway.zone_id)
    return slug(documents.text(zone, "NAME"))


def zone_name(region: str, cluster_name: str) -> str:
    return f"{region}-{slug(cluster_name)}"


def zone_id(region: str, cluster_id: int) -> str:
    return f"{region}-az{cluster_id}"


REGION_FILTERS: dict[str, filters.Extractor] = {
    "endpoint": lambda r: r.get("Endpoint"),
    "opt-in-status": lambda r: r["OptInStatus"],
    "region-name": lambda r: r["RegionName"],
}


@action("DescribeRegions", opennebula="one.zonepool.info: each zone is a region")
async def describe_regions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    pool = await ctx.one_doc("one.zonepool.info")
    finish_dry_run(params)
    regions = []
    for zone in pool.iterfind("ZONE"):
        zid = documents.integer(zone, "ID")
        local = zid == ctx.settings.gateway.zone_id
        regions.append(
            {
                "RegionName": region_name(ctx.settings, zid, documents.text(zone, "NAME")),
                "Endpoint": ctx.endpoint if local else None,
                "OptInStatus": "opt-in-not-required",
            }
        )
    names = params.get("RegionNames")
    if names:
        known = {r["RegionName"] for r in regions}
        for name in names:
            if name not in known:
                raise EC2Error("InvalidParameterValue", f"Invalid region: {name}")
        regions = [r for r in regions if r["RegionName"] in names]
    regions = filters.apply(regions, params.get("Filters"), REGION_FILTERS)
    return {"Regions": sorted(regions, key=lambda r: r["RegionName"])}


ZONE_FILTERS: dict[str, filters.Extractor] = {
    "group-name": lambda z: z["GroupName"],
    "group-long-name": lambda z: z["GroupLongName"],
    "message": lambda z: [m["Message"] for m in z["Messages"]],
    "opt-in-status": lambda z: z["OptInStatus"],
    "parent-zone-id": lambda z: None,
    "parent-zone-name": lambda z: None,
    "region-name": lambda z: z["RegionName"],
    "state": lambda z: z["State"],
    "zone-id": lambda z: z["ZoneId"],
    "zone-name": lambda z: z["ZoneName"],
    "zone-type": lambda z: z["ZoneType"],
}


async def availability_zones(ctx: RequestContext) -> list[dict[str, Any]]:
    """Every cluster the caller can see, as an EC2 availability zone."""
    region = await local_region(ctx)
    pool = await ctx.one_doc("one.clusterpool.info")
    zones = []
    for cluster in pool.iterfind("CLUSTER"):
        cid = documents.integer(cluster, "ID")
        zones.append(
            {
                "ZoneName": zone_name(region, documents.text(cluster, "NAME")),
                "ZoneId": zone_id(region, cid),
                "State": "available",
                "OptInStatus": "opt-in-not-required",
                "Messages": [],
                "RegionName": region,
                "GroupName": region,
                "GroupLongName": region,
                "NetworkBorderGroup": region,
                "ZoneType": "availability-zone",
                "ClusterId": cid,
            }
        )
    return sorted(zones, key=lambda z: z["ZoneName"])


@action(
    "DescribeAvailabilityZones",
    opennebula="one.clusterpool.info: each cluster of the gateway's zone is an availability zone",
)
async def describe_availability_zones(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    zones = await availability_zones(ctx)
    finish_dry_run(params)
    for key, field in (("ZoneNames", "ZoneName"), ("ZoneIds", "ZoneId")):
        wanted = params.get(key)
        if wanted:
            known = {z[field] for z in zones}
            for value in wanted:
                if value not in known:
                    raise EC2Error(
                        "InvalidParameterValue",
                        f"The zone '{value}' does not exist in region "
                        f"{zones[0]['RegionName'] if zones else ''}",
                    )
            zones = [z for z in zones if z[field] in wanted]
    zones = filters.apply(zones, params.get("Filters"), ZONE_FILTERS)
    for zone in zones:
        zone.pop("ClusterId", None)
    return {"AvailabilityZones": zones}
