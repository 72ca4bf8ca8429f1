"""Regions are OpenNebula zones; availability zones are OpenNebula clusters."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.registry import action
from ec2gw.config import Settings
from ec2gw.ec2 import filters
from ec2gw.ec2.cache import TTLCache
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.protocol.errors import EC2Error

SYSTEM_DATASTORE = 1  # datastore TYPE


def slug(name: str) -> str:
    """A name usable as an EC2 region / zone name: lower case, dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "zone"


def region_name(settings: Settings, zone_id: int, zone_name: str) -> str:
    if zone_id == settings.gateway.zone_id and settings.gateway.region_name:
        return settings.gateway.region_name
    return slug(zone_name)


# Zones and a user's clusters change rarely; asking OpenNebula on every request would
# add four calls to each DescribeInstances. Changes show within ten seconds.
_zone_names: TTLCache[str] = TTLCache(10)
_zones_of_user: TTLCache[list[dict[str, Any]]] = TTLCache(10)
# Every user may read the zones (oned's `* ZONE/* USE` rule), so one list serves all.
_zone_list: TTLCache[list[tuple[int, str]]] = TTLCache(10)


async def _zones(ctx: RequestContext) -> list[tuple[int, str]]:
    pool = await ctx.one_doc("one.zonepool.info")
    return [(documents.integer(z, "ID"), documents.text(z, "NAME")) for z in pool.iterfind("ZONE")]


async def local_region(ctx: RequestContext) -> str:
    """The region this gateway serves: its OpenNebula zone."""
    if ctx.settings.gateway.region_name:
        return ctx.settings.gateway.region_name
    zone_id = ctx.settings.gateway.zone_id

    async def load() -> str:
        return documents.text(await ctx.one_doc("one.zone.info", zone_id), "NAME")

    return slug(await _zone_names.get((ctx.one_client.endpoint, zone_id), load))


# Every zone's region name and its EC2_ENDPOINT, read as the gateway's own account: what
# the signing-region check of every request compares the caller's scope with.
_federation: TTLCache[dict[str, tuple[int, str]]] = TTLCache(10)


async def federation_regions(
    one_client: OneClient, session: str, settings: Settings
) -> dict[str, tuple[int, str]]:
    """Region name -> (zone id, the zone template's `EC2_ENDPOINT` or "") of every zone of
    this OpenNebula, this gateway's own included (cached ten seconds).

    `EC2_ENDPOINT` is an operator's attribute (`onezone update`): the URL of the gateway
    serving that zone, named to a client that signed for its region here.
    """

    async def load() -> dict[str, tuple[int, str]]:
        pool = await one_client.call_document(session, "one.zonepool.info")
        found: dict[str, tuple[int, str]] = {}
        for zone in pool.iterfind("ZONE"):
            zid = documents.integer(zone, "ID")
            name = region_name(settings, zid, documents.text(zone, "NAME"))
            found[name] = (zid, documents.text(zone, "TEMPLATE/EC2_ENDPOINT").strip())
        return found

    key = (one_client.endpoint, settings.gateway.zone_id, settings.gateway.region_name)
    return await _federation.get(key, load)


def zone_name(region: str, cluster_id: int) -> str:
    """`<region>a` for cluster 0, `b` for 1, ... `aa` after `z`, as EC2 names zones.

    Always the region followed by letters, never a separator: tools such as Ansible's
    aws_ec2 inventory find a zone's region by dropping its last letter.
    """
    letters, n = "", cluster_id
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return f"{region}{letters}"


def zone_id(region: str, cluster_id: int) -> str:
    return f"{region}-az{cluster_id}"


REGION_FILTERS: dict[str, filters.Extractor] = {
    "endpoint": lambda r: r.get("Endpoint"),
    "opt-in-status": lambda r: r["OptInStatus"],
    "region-name": lambda r: r["RegionName"],
}


@action("DescribeRegions", opennebula="one.zonepool.info: each zone is a region")
async def describe_regions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    zones = await _zone_list.get(ctx.one_client.endpoint, lambda: _zones(ctx))
    finish_dry_run(params)
    regions = []
    for zid, name in zones:
        local = zid == ctx.settings.gateway.zone_id
        regions.append(
            {
                "RegionName": region_name(ctx.settings, zid, name),
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


async def _usable_clusters(ctx: RequestContext) -> list[int]:
    """Clusters the caller can run VMs in.

    OpenNebula's default VDC gives users rights on a cluster's hosts, networks and
    datastores, not on the cluster object, so `one.clusterpool.info` may be empty for them:
    the system datastores and hosts they can see name their clusters.
    """
    hosts, datastores, clusters = await asyncio.gather(
        ctx.one_doc("one.hostpool.info"),
        ctx.one_doc("one.datastorepool.info"),
        ctx.one_doc("one.clusterpool.info"),
    )
    found = {documents.integer(h, "CLUSTER_ID") for h in hosts.iterfind("HOST")}
    for ds in datastores.iterfind("DATASTORE"):
        if documents.integer(ds, "TYPE") == SYSTEM_DATASTORE:
            found.update(int(c.text) for c in ds.iterfind("CLUSTERS/ID") if c.text.isdigit())
    for cluster in clusters.iterfind("CLUSTER"):
        if cluster.find("HOSTS/ID") is not None:
            found.add(documents.integer(cluster, "ID"))
    return sorted(found)


async def availability_zones(ctx: RequestContext) -> list[dict[str, Any]]:
    """Every cluster the caller can use, as an EC2 availability zone (a fresh copy)."""
    key = (ctx.one_client.endpoint, ctx.uid)
    zones = await _zones_of_user.get(key, lambda: _availability_zones(ctx))
    return [dict(zone) for zone in zones]


async def _availability_zones(ctx: RequestContext) -> list[dict[str, Any]]:
    region, clusters = await asyncio.gather(local_region(ctx), _usable_clusters(ctx))
    zones = []
    for cid in clusters:
        zones.append(
            {
                "ZoneName": zone_name(region, cid),
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
    opennebula="each cluster the caller can run VMs in (hosts and system datastores it sees) "
    "is an availability zone",
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
