"""Instance types are VM templates carrying `EC2_INSTANCE_TYPE` (econe's convention).

The template gives the size (VCPU, MEMORY in MB, CPU share); OpenNebula's permissions on
the template decide who may use the type. When two templates name the same type, the
lowest id wins, so the answer does not change with the pool's order.
"""

from __future__ import annotations

from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.regions import availability_zones, local_region
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, pages
from ec2gw.one import documents
from ec2gw.protocol.errors import EC2Error

TYPE_ATTRIBUTE = "EC2_INSTANCE_TYPE"


async def instance_type_templates(ctx: RequestContext) -> dict[str, documents.Element]:
    """Instance type name → the VMTEMPLATE that defines it, as the caller sees them."""
    pool = await ctx.one_doc("one.templatepool.info", -2, -1, -1)
    found: dict[str, tuple[int, documents.Element]] = {}
    for template in pool.iterfind("VMTEMPLATE"):
        name = documents.text(template, f"TEMPLATE/{TYPE_ATTRIBUTE}").strip()
        tid = documents.integer(template, "ID")
        if name and (name not in found or tid < found[name][0]):
            found[name] = (tid, template)
    return {name: template for name, (_, template) in sorted(found.items())}


def type_info(name: str, template: documents.Element) -> dict[str, Any]:
    vcpus = max(1, documents.integer(template, "TEMPLATE/VCPU", 1))
    memory = documents.integer(template, "TEMPLATE/MEMORY")
    arch = documents.text(template, "TEMPLATE/OS/ARCH") or "x86_64"
    return {
        "InstanceType": name,
        "CurrentGeneration": True,
        "FreeTierEligible": False,
        "SupportedUsageClasses": ["on-demand"],
        "SupportedRootDeviceTypes": ["ebs"],
        "SupportedVirtualizationTypes": ["hvm"],
        "BareMetal": False,
        "Hypervisor": "xen",
        "ProcessorInfo": {"SupportedArchitectures": [arch]},
        "VCpuInfo": {
            "DefaultVCpus": vcpus,
            "DefaultCores": vcpus,
            "DefaultThreadsPerCore": 1,
            "ValidCores": [vcpus],
            "ValidThreadsPerCore": [1],
        },
        "MemoryInfo": {"SizeInMiB": memory},
        "InstanceStorageSupported": False,
        "EbsInfo": {
            "EbsOptimizedSupport": "unsupported",
            "EncryptionSupport": "unsupported",
            "NvmeSupport": "unsupported",
        },
        "NetworkInfo": {
            "NetworkPerformance": "Moderate",
            "MaximumNetworkInterfaces": 8,
            "MaximumNetworkCards": 1,
            "DefaultNetworkCardIndex": 0,
            "Ipv4AddressesPerInterface": 1,
            "Ipv6AddressesPerInterface": 0,
            "Ipv6Supported": False,
            "EnaSupport": "unsupported",
            "EfaSupported": False,
            "EncryptionInTransitSupported": False,
        },
        "PlacementGroupInfo": {"SupportedStrategies": []},
        "HibernationSupported": False,
        "BurstablePerformanceSupported": False,
        "DedicatedHostsSupported": False,
        "AutoRecoverySupported": False,
        "SupportedBootModes": ["legacy-bios", "uefi"],
    }


TYPE_FILTERS: dict[str, filters.Extractor] = {
    "auto-recovery-supported": lambda t: t["AutoRecoverySupported"],
    "bare-metal": lambda t: t["BareMetal"],
    "burstable-performance-supported": lambda t: t["BurstablePerformanceSupported"],
    "current-generation": lambda t: t["CurrentGeneration"],
    "dedicated-hosts-supported": lambda t: t["DedicatedHostsSupported"],
    "ebs-info.ebs-optimized-support": lambda t: t["EbsInfo"]["EbsOptimizedSupport"],
    "ebs-info.encryption-support": lambda t: t["EbsInfo"]["EncryptionSupport"],
    "ebs-info.nvme-support": lambda t: t["EbsInfo"]["NvmeSupport"],
    "free-tier-eligible": lambda t: t["FreeTierEligible"],
    "hibernation-supported": lambda t: t["HibernationSupported"],
    "hypervisor": lambda t: t["Hypervisor"],
    "instance-storage-supported": lambda t: t["InstanceStorageSupported"],
    "instance-type": lambda t: t["InstanceType"],
    "memory-info.size-in-mib": lambda t: t["MemoryInfo"]["SizeInMiB"],
    "network-info.ena-support": lambda t: t["NetworkInfo"]["EnaSupport"],
    "network-info.ipv6-supported": lambda t: t["NetworkInfo"]["Ipv6Supported"],
    "network-info.maximum-network-interfaces": lambda t: t["NetworkInfo"][
        "MaximumNetworkInterfaces"
    ],
    "network-info.network-performance": lambda t: t["NetworkInfo"]["NetworkPerformance"],
    "processor-info.supported-architecture": lambda t: t["ProcessorInfo"]["SupportedArchitectures"],
    "supported-boot-mode": lambda t: t["SupportedBootModes"],
    "supported-root-device-type": lambda t: t["SupportedRootDeviceTypes"],
    "supported-usage-class": lambda t: t["SupportedUsageClasses"],
    "supported-virtualization-type": lambda t: t["SupportedVirtualizationTypes"],
    "vcpu-info.default-cores": lambda t: t["VCpuInfo"]["DefaultCores"],
    "vcpu-info.default-threads-per-core": lambda t: t["VCpuInfo"]["DefaultThreadsPerCore"],
    "vcpu-info.default-vcpus": lambda t: t["VCpuInfo"]["DefaultVCpus"],
}


@action(
    "DescribeInstanceTypes",
    opennebula="one.templatepool.info(-2): templates with EC2_INSTANCE_TYPE (VCPU, MEMORY)",
)
async def describe_instance_types(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    templates = await instance_type_templates(ctx)
    finish_dry_run(params)
    wanted = params.get("InstanceTypes")
    if wanted:
        unknown = [name for name in wanted if name not in templates]
        if unknown:
            raise EC2Error(
                "InvalidInstanceType",
                f"The following supplied instance types do not exist: [{', '.join(unknown)}]",
            )
        templates = {name: t for name, t in templates.items() if name in wanted}
    infos = [type_info(name, template) for name, template in templates.items()]
    infos = filters.apply(infos, params.get("Filters"), TYPE_FILTERS)
    chosen, token = pages.page(infos, params, action="DescribeInstanceTypes")
    return {"InstanceTypes": list(chosen), "NextToken": token}


OFFERING_FILTERS: dict[str, filters.Extractor] = {
    "instance-type": lambda o: o["InstanceType"],
    "location": lambda o: o["Location"],
}


@action(
    "DescribeInstanceTypeOfferings",
    opennebula="instance-type templates × the region or its clusters (availability zones)",
)
async def describe_instance_type_offerings(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    templates = await instance_type_templates(ctx)
    location_type = params.get("LocationType") or "region"
    if location_type == "region":
        locations = [await local_region(ctx)]
    elif location_type in ("availability-zone", "availability-zone-id"):
        key = "ZoneName" if location_type == "availability-zone" else "ZoneId"
        locations = [zone[key] for zone in await availability_zones(ctx)]
    else:
        raise EC2Error("InvalidParameterValue", f"Invalid value '{location_type}' for LocationType")
    finish_dry_run(params)
    offerings = [
        {"InstanceType": name, "LocationType": location_type, "Location": location}
        for location in locations
        for name in templates
    ]
    offerings = filters.apply(offerings, params.get("Filters"), OFFERING_FILTERS)
    chosen, token = pages.page(offerings, params, action="DescribeInstanceTypeOfferings")
    return {"InstanceTypeOfferings": list(chosen), "NextToken": token}
