"""How an OpenNebula VM looks as an EC2 instance, and the filters over that view.

EC2-specific facts live in the VM's USER_TEMPLATE (written by RunInstances): the instance
type, reservation, key name, launch index, client token and tags. Everything else is read
from the VM itself: state, addresses, disks, host and cluster, times.
"""

from __future__ import annotations

import hashlib
import marshal
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import Any

from botocore.model import StructureShape
from lxml import etree

from ec2gw.ec2 import filters, ids
from ec2gw.one import documents, states
from ec2gw.one.documents import to_integer
from ec2gw.protocol import model, serializer

# USER_TEMPLATE attributes written by RunInstances.
INSTANCE_TYPE = "EC2_INSTANCE_TYPE"
RESERVATION = "EC2_RESERVATION"
KEY_NAME = "EC2_KEY_NAME"
LAUNCH_INDEX = "EC2_LAUNCH_INDEX"
CLIENT_TOKEN = "EC2_CLIENT_TOKEN"
REQUEST_DIGEST = "EC2_REQUEST_DIGEST"
AVAILABILITY_ZONE = "EC2_AVAILABILITY_ZONE"
DISABLE_API_TERMINATION = "EC2_DISABLE_API_TERMINATION"
SHUTDOWN_BEHAVIOR = "EC2_SHUTDOWN_BEHAVIOR"
HIDDEN = "EC2_HIDDEN"  # set on VMs a failed RunInstances rolled back
# NIC attribute marking the NIC AssociateAddress attached on an Elastic IP reservation.
ELASTIC_NIC = "EC2_ELASTIC_IP"
# DISK attribute naming the EBS volume AttachVolume plugged in.
VOLUME_DISK = "EC2_VOLUME_ID"
# DISK attribute AttachVolume writes with it: when the volume was attached (epoch seconds).
# oned records no time on a hot-attached DISK; kept in the DISK itself, it is part of the
# VM document the view is made from (and of the memo's key), and leaves with the DISK on
# detach, so a later disk of the same DISK_ID never shows it.
ATTACH_TIME_DISK = "EC2_ATTACH_TIME"


@dataclass(frozen=True)
class Zones:
    """Cluster id → availability zone name, for placing instances."""

    region: str
    vpc_id: str = ""
    by_cluster: dict[int, str] = field(default_factory=dict)
    default: str = ""

    @cached_property
    def key(self) -> tuple[Any, ...]:
        return (self.region, self.vpc_id, self.default, tuple(sorted(self.by_cluster.items())))


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def user_attr(vm: documents.Element, name: str) -> str:
    return documents.text(vm, f"USER_TEMPLATE/{name}")


@dataclass(frozen=True, slots=True)
class Listing:
    """What decides whether a VM is listed at all, read in one pass."""

    vm_id: int
    uid: int
    state: int
    ended: int  # ETIME
    hidden: bool


LISTING_READ = ("ID", "UID", "STATE", "ETIME", "USER_TEMPLATE")


def listing(vm: documents.Element) -> Listing:
    values: dict[str, str] = {}
    hidden = False
    for child in vm.iterchildren(*LISTING_READ):
        if child.tag == "USER_TEMPLATE":
            hidden = documents.text(child, HIDDEN) == "YES"
        else:
            values.setdefault(child.tag, child.text or "")
    return Listing(
        to_integer(values.get("ID", "")),
        to_integer(values.get("UID", "")),
        to_integer(values.get("STATE", "")),
        to_integer(values.get("ETIME", "")),
        hidden,
    )


def state_of(vm: documents.Element) -> states.InstanceState:
    return states.instance_state(documents.integer(vm, "STATE"), documents.integer(vm, "LCM_STATE"))


def instance_id(vm: documents.Element) -> str:
    return ids.INSTANCE.encode(documents.integer(vm, "ID"))


def reservation_id(vm: documents.Element) -> str:
    return user_attr(vm, RESERVATION) or ids.RESERVATION.encode(documents.integer(vm, "ID"))


@dataclass(slots=True)
class _VmFacts:
    """What the instance view reads of a VM, gathered in one pass over its document.

    A DescribeInstances reads about 50 values per VM; one walk over the few elements
    that hold them costs about half of looking each one up by path.
    """

    top: dict[str, str]  # the VM's own leaves: ID, UID, STATE, LCM_STATE, STIME, ...
    user: dict[str, str]  # USER_TEMPLATE leaves (EC2_* facts)
    tags: dict[str, str]
    nics: list[dict[str, str]]  # NIC leaves, the Elastic IP's NIC apart
    elastic: dict[str, str] | None
    disks: list[dict[str, str]]
    group_names: dict[int, str]  # security group id -> name, from the copied rules
    vcpu: str
    arch: str
    cluster: int  # CID of the last history record, -1 if none

    def key(self) -> tuple[Any, ...]:
        """All of the facts, as plain tuples (see `instance_xml`)."""
        return (
            tuple(self.top.items()),
            tuple(self.user.items()),
            tuple(self.tags.items()),
            tuple(tuple(nic.items()) for nic in self.nics),
            tuple(self.elastic.items()) if self.elastic is not None else None,
            tuple(tuple(disk.items()) for disk in self.disks),
            tuple(self.group_names.items()),
            self.vcpu,
            self.arch,
            self.cluster,
        )


# The elements `_facts` reads, by parent: lxml filters children by tag in C, so the many
# others (MONITORING, CONTEXT, most of a DISK) never become Python objects.
VM_READ = ("ID", "UID", "STATE", "LCM_STATE", "STIME", "ETIME")
VM_PARTS = ("TEMPLATE", "USER_TEMPLATE", "HISTORY_RECORDS", *VM_READ)
TEMPLATE_READ = ("NIC", "DISK", "SECURITY_GROUP_RULE", "VCPU", "OS")
NIC_READ = ("IP", "MAC", "NETWORK_ID", "NIC_ID", "SECURITY_GROUPS", "EXTERNAL_IP", ELASTIC_NIC)
DISK_READ = ("IMAGE_ID", "DEV_PREFIX", "TARGET", VOLUME_DISK, ATTACH_TIME_DISK)
RULE_READ = ("SECURITY_GROUP_ID", "SECURITY_GROUP_NAME")


def _leaves(element: documents.Element, tags: tuple[str, ...] | None = None) -> dict[str, str]:
    children = element.iterchildren(*tags) if tags else element.iterchildren(etree.Element)
    return {child.tag: child.text or "" for child in children}


def _facts(vm: documents.Element) -> _VmFacts:
    top: dict[str, str] = {}
    user: dict[str, str] = {}
    old_tags: dict[str, str] = {}  # repeated EC2_TAG vectors, as earlier versions wrote them
    tags: dict[str, str] = {}
    nics: list[dict[str, str]] = []
    elastic: dict[str, str] | None = None
    disks: list[dict[str, str]] = []
    names: dict[int, str] = {}
    vcpu = arch = ""
    cluster = -1
    for child in vm.iterchildren(*VM_PARTS):
        tag = child.tag
        if tag == "TEMPLATE":
            for item in child.iterchildren(*TEMPLATE_READ):
                kind = item.tag
                if kind == "NIC":
                    nic = _leaves(item, NIC_READ)
                    if nic.get(ELASTIC_NIC) == "YES":
                        elastic = elastic or nic
                    else:
                        nics.append(nic)
                elif kind == "DISK":
                    disks.append(_leaves(item, DISK_READ))
                elif kind == "SECURITY_GROUP_RULE":
                    rule = _leaves(item, RULE_READ)
                    group = to_integer(rule.get("SECURITY_GROUP_ID", ""))
                    names[group] = rule.get("SECURITY_GROUP_NAME", "")
                elif kind == "VCPU":
                    vcpu = item.text or ""
                elif kind == "OS":
                    arch = documents.text(item, "ARCH")
        elif tag == "USER_TEMPLATE":
            for item in child.iterchildren(etree.Element):
                if documents.TAGS.holds(item):
                    vector = _leaves(item)
                    if vector.get("KEY"):
                        found = old_tags if item.tag == documents.TAG_ATTRIBUTE else tags
                        found[vector["KEY"]] = vector.get("VALUE", "")
                else:
                    user.setdefault(item.tag, item.text or "")
        elif tag == "HISTORY_RECORDS":
            history = child.findall("HISTORY")
            if history:
                cluster = documents.integer(history[-1], "CID", -1)
        else:
            top.setdefault(tag, child.text or "")
    tags = {**old_tags, **tags}
    return _VmFacts(top, user, tags, nics, elastic, disks, names, vcpu, arch, cluster)


def _zone(facts: _VmFacts, zones: Zones) -> str:
    if facts.cluster in zones.by_cluster:
        return zones.by_cluster[facts.cluster]
    return facts.user.get(AVAILABILITY_ZONE) or zones.default


def _state_reason(raw_state: int, lcm: int, state: states.InstanceState) -> dict[str, str] | None:
    if states.is_failure(raw_state, lcm):
        return {
            "Code": "Server.InternalError",
            "Message": "Server.InternalError: Internal error on launch",
        }
    if state.name in ("terminated", "stopped", "stopping"):
        return {
            "Code": "Client.UserInitiatedShutdown",
            "Message": "Client.UserInitiatedShutdown: User initiated shutdown",
        }
    return None


def is_elastic(nic: documents.Element) -> bool:
    return documents.text(nic, ELASTIC_NIC) == "YES"


def elastic_nic(vm: documents.Element) -> documents.Element | None:
    """The NIC carrying the instance's Elastic IP, if it has one."""
    return next((n for n in vm.iterfind("TEMPLATE/NIC") if is_elastic(n)), None)


def _groups(nics: list[dict[str, str]], names: dict[int, str]) -> list[dict[str, str]]:
    """The security groups OpenNebula applies to these NICs (their SECURITY_GROUPS, which
    include their networks'), each once, by id."""
    groups = {
        int(g) for nic in nics for g in nic.get("SECURITY_GROUPS", "").split(",") if g.isdigit()
    }
    return [
        {"GroupId": ids.SECURITY_GROUP.encode(g), "GroupName": names.get(g) or str(g)}
        for g in sorted(groups)
    ]


def _with_elastic(nics: list[dict[str, str]], facts: _VmFacts) -> list[dict[str, str]]:
    """The NICs and the Elastic IP's: EC2 shows the address on the primary interface, so
    the groups filtering its traffic (on its own NIC in OpenNebula) belong there."""
    return [*nics, facts.elastic] if facts.elastic is not None else nics


def _association(facts: _VmFacts, owner: str) -> dict[str, Any] | None:
    """The Elastic IP of the instance as EC2 shows it on the primary interface."""
    nic = facts.elastic
    if nic is None:
        return None
    reservation = to_integer(nic.get("NETWORK_ID", ""))
    return {
        "PublicIp": nic.get("IP", ""),
        "PublicDnsName": "",
        "IpOwnerId": owner,
        "AllocationId": ids.ALLOCATION.encode(reservation),
        "AssociationId": ids.ASSOCIATION.encode(reservation),
    }


def network_interfaces(vm: documents.Element, zones: Zones) -> list[dict[str, Any]]:
    """The VM's NICs (but the Elastic IP's) as EC2 network interfaces, `eni-` + vm + NIC id.

    Shaped for DescribeNetworkInterfaces; the instance view uses the same dicts (the
    serializer keeps the members each shape has).
    """
    return _interfaces(_facts(vm), zones)


def _interfaces(facts: _VmFacts, zones: Zones) -> list[dict[str, Any]]:
    vm_id = to_integer(facts.top.get("ID", ""))
    owner = ids.account_id(to_integer(facts.top.get("UID", "")))
    association = _association(facts, owner)
    launched = _time(to_integer(facts.top.get("STIME", "")))
    zone = _zone(facts, zones)
    result = []
    for index, nic in enumerate(facts.nics):
        nic_id = to_integer(nic.get("NIC_ID", ""))
        ip = nic.get("IP", "")
        dns = f"ip-{ip.replace('.', '-')}.{zones.region}.compute.internal" if ip else ""
        public = association if index == 0 else None
        result.append(
            {
                "NetworkInterfaceId": ids.NETWORK_INTERFACE.encode_pair(vm_id, nic_id),
                "SubnetId": ids.SUBNET.encode(to_integer(nic.get("NETWORK_ID", ""))),
                "VpcId": zones.vpc_id,
                "AvailabilityZone": zone,
                "Description": "",
                "OwnerId": owner,
                "RequesterManaged": False,
                "Status": "in-use",
                "MacAddress": nic.get("MAC", ""),
                "PrivateIpAddress": ip or None,
                "PrivateDnsName": dns,
                "SourceDestCheck": True,
                "InterfaceType": "interface",
                "Groups": _groups(
                    _with_elastic([nic], facts) if index == 0 else [nic], facts.group_names
                ),
                "Attachment": {
                    "AttachmentId": f"eni-attach-{vm_id:08x}{nic_id:09x}",
                    "DeviceIndex": index,
                    "NetworkCardIndex": 0,
                    "Status": "attached",
                    "AttachTime": launched,
                    "DeleteOnTermination": True,
                    "InstanceId": ids.INSTANCE.encode(vm_id),
                    "InstanceOwnerId": owner,
                },
                "Association": public,
                "PrivateIpAddresses": [
                    {
                        "Primary": True,
                        "PrivateIpAddress": ip or None,
                        "PrivateDnsName": dns,
                        "Association": public,
                    }
                ],
                "Ipv6Addresses": [],
                "TagSet": [],
            }
        )
    return result


def _block_device(disk: dict[str, str], launched: datetime) -> dict[str, Any]:
    """A VM disk as a block device mapping; an attached EBS volume names itself and, when
    AttachVolume recorded it, the time it was attached (the VM's disks: its launch time)."""
    volume_id = disk.get(VOLUME_DISK, "")
    attached = disk.get(ATTACH_TIME_DISK, "")
    ebs: dict[str, Any] = {
        "AttachTime": _time(int(attached)) if volume_id and attached.isdigit() else launched,
        "DeleteOnTermination": not volume_id,
        "Status": "attached",
    }
    if volume_id:
        ebs["VolumeId"] = volume_id
    return {"DeviceName": f"/dev/{disk['TARGET']}", "Ebs": ebs}


def to_instance(vm: documents.Element, zones: Zones) -> dict[str, Any]:
    """A VM document (full body: vm.info or vmpool.infoextended) as EC2's Instance."""
    return _instance(_facts(vm), zones)


# Instances already serialized, by a digest of all that the conversion reads: the VM's
# facts and the zones. A fleet listed again and again (inventories, dashboards, pollers)
# is converted once per change of a VM. Not keyed by the VM's document: its monitoring
# data changes on every poll of the host. About 3 KB per instance; oldest out first.
INSTANCE_XML_ENTRIES = 20_000
_instance_xml: dict[bytes, serializer.Xml] = {}


@cache
def _instance_shape() -> StructureShape:
    shape = model.service_model().shape_for("Instance")
    assert isinstance(shape, StructureShape)
    return shape


def instance_xml(vm: documents.Element, zones: Zones) -> tuple[str, serializer.Xml]:
    """(reservation id, the instance serialized): what `to_instance` and the serializer
    would make of `vm`, remembered across requests."""
    facts = _facts(vm)
    digest = hashlib.blake2b(marshal.dumps((facts.key(), zones.key)), digest_size=16).digest()
    xml = _instance_xml.get(digest)
    if xml is None:
        xml = serializer.structure_xml(_instance_shape(), _instance(facts, zones))
        if len(_instance_xml) >= INSTANCE_XML_ENTRIES:
            del _instance_xml[next(iter(_instance_xml))]
        _instance_xml[digest] = xml
    return _reservation_of(facts), xml


def _reservation_of(facts: _VmFacts) -> str:
    vm_id = to_integer(facts.top.get("ID", ""))
    return facts.user.get(RESERVATION) or ids.RESERVATION.encode(vm_id)


def _instance(facts: _VmFacts, zones: Zones) -> dict[str, Any]:
    top, user, nics, disks = facts.top, facts.user, facts.nics, facts.disks
    raw_state, lcm = to_integer(top.get("STATE", "")), to_integer(top.get("LCM_STATE", ""))
    state = states.instance_state(raw_state, lcm)
    alive = state.name != "terminated"
    vm_id = to_integer(top.get("ID", ""))
    private_ip = nics[0].get("IP", "") if nics and alive else ""
    if facts.elastic is not None:
        public_ip = facts.elastic.get("IP", "")
    else:
        public_ip = next((n["EXTERNAL_IP"] for n in nics if n.get("EXTERNAL_IP")), "")
    root_prefix = (disks[0].get("DEV_PREFIX") or "vd") if disks else "vd"
    launched = _time(to_integer(top.get("STIME", "")))
    vcpus = max(1, to_integer(facts.vcpu, 1))
    security_groups = _groups(_with_elastic(nics, facts), facts.group_names)
    image_id = to_integer(disks[0].get("IMAGE_ID", ""), -1) if disks else -1
    network_id = to_integer(nics[0].get("NETWORK_ID", ""), -1) if nics else -1
    owner = ids.account_id(to_integer(top.get("UID", "")))
    instance: dict[str, Any] = {
        # OwnerId and ReservationId belong to the reservation; kept here for the filters
        # (the serializer drops members the Instance shape does not have).
        "OwnerId": owner,
        "ReservationId": _reservation_of(facts),
        "InstanceId": ids.INSTANCE.encode(vm_id),
        "ImageId": ids.IMAGE.encode(image_id) if image_id >= 0 else "",
        "State": {"Code": state.code, "Name": state.name},
        "PrivateDnsName": f"ip-{private_ip.replace('.', '-')}.{zones.region}.compute.internal"
        if private_ip
        else "",
        "PublicDnsName": "",
        "StateTransitionReason": "",
        "KeyName": user.get(KEY_NAME) or None,
        "AmiLaunchIndex": to_integer(user.get(LAUNCH_INDEX, "")),
        "ProductCodes": [],
        "InstanceType": user.get(INSTANCE_TYPE) or "custom",
        "LaunchTime": launched,
        "Placement": {
            "AvailabilityZone": _zone(facts, zones),
            "GroupName": "",
            "Tenancy": "default",
        },
        "Monitoring": {"State": "disabled"},
        "SubnetId": ids.SUBNET.encode(network_id) if network_id >= 0 and alive else None,
        "VpcId": zones.vpc_id if network_id >= 0 and alive else None,
        "PrivateIpAddress": private_ip or None,
        "PublicIpAddress": (public_ip or None) if alive else None,
        "Architecture": facts.arch or "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": f"/dev/{root_prefix}a",
        "BlockDeviceMappings": [
            _block_device(disk, launched) for disk in disks if alive and disk.get("TARGET")
        ],
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "ClientToken": user.get(CLIENT_TOKEN, ""),
        "Tags": [{"Key": k, "Value": v} for k, v in facts.tags.items()],
        "SecurityGroups": security_groups if alive else [],
        "NetworkInterfaces": _interfaces(facts, zones) if alive else [],
        "SourceDestCheck": True,
        "EbsOptimized": False,
        "EnaSupport": False,
        "StateReason": _state_reason(raw_state, lcm, state),
        "CpuOptions": {"CoreCount": vcpus, "ThreadsPerCore": 1},
        "HibernationOptions": {"Configured": False},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": "optional",
            "HttpPutResponseHopLimit": 1,
            "HttpEndpoint": "disabled",
        },
        "EnclaveOptions": {"Enabled": False},
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "UsageOperationUpdateTime": launched,
    }
    return instance


def _tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance["Tags"]}


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _eni(member: str) -> filters.Extractor:
    return lambda i: [n[member] for n in i["NetworkInterfaces"]]


INSTANCE_FILTERS: dict[str, filters.Extractor] = {
    "affinity": lambda i: None,
    "architecture": lambda i: i["Architecture"],
    "availability-zone": lambda i: i["Placement"]["AvailabilityZone"],
    "block-device-mapping.attach-time": lambda i: [
        _iso(m["Ebs"]["AttachTime"]) for m in i["BlockDeviceMappings"]
    ],
    "block-device-mapping.delete-on-termination": lambda i: [
        m["Ebs"]["DeleteOnTermination"] for m in i["BlockDeviceMappings"]
    ],
    "block-device-mapping.device-name": lambda i: [
        m["DeviceName"] for m in i["BlockDeviceMappings"]
    ],
    "block-device-mapping.status": lambda i: [m["Ebs"]["Status"] for m in i["BlockDeviceMappings"]],
    "block-device-mapping.volume-id": lambda i: [
        m["Ebs"].get("VolumeId") for m in i["BlockDeviceMappings"]
    ],
    "client-token": lambda i: i["ClientToken"],
    "dns-name": lambda i: i["PublicDnsName"],
    "group-id": lambda i: [g["GroupId"] for g in i["SecurityGroups"]],
    "group-name": lambda i: [g["GroupName"] for g in i["SecurityGroups"]],
    "hypervisor": lambda i: i["Hypervisor"],
    "image-id": lambda i: i["ImageId"],
    "instance-id": lambda i: i["InstanceId"],
    "instance-lifecycle": lambda i: None,
    "instance-state-code": lambda i: i["State"]["Code"],
    "instance-state-name": lambda i: i["State"]["Name"],
    "instance-type": lambda i: i["InstanceType"],
    "instance.group-id": lambda i: [g["GroupId"] for g in i["SecurityGroups"]],
    "instance.group-name": lambda i: [g["GroupName"] for g in i["SecurityGroups"]],
    "ip-address": lambda i: i["PublicIpAddress"],
    "association.public-ip": lambda i: i["PublicIpAddress"],
    "network-interface.addresses.association.public-ip": lambda i: i["PublicIpAddress"],
    "network-interface.network-interface-id": _eni("NetworkInterfaceId"),
    "network-interface.mac-address": _eni("MacAddress"),
    "network-interface.subnet-id": _eni("SubnetId"),
    "network-interface.addresses.private-ip-address": _eni("PrivateIpAddress"),
    "network-interface.private-dns-name": _eni("PrivateDnsName"),
    "key-name": lambda i: i["KeyName"],
    "launch-index": lambda i: i["AmiLaunchIndex"],
    "launch-time": lambda i: _iso(i["LaunchTime"]),
    "monitoring-state": lambda i: i["Monitoring"]["State"],
    "owner-id": lambda i: i["OwnerId"],
    "placement-group-name": lambda i: None,
    "platform": lambda i: None,
    "platform-details": lambda i: i["PlatformDetails"],
    "private-dns-name": lambda i: i["PrivateDnsName"],
    "private-ip-address": lambda i: i["PrivateIpAddress"],
    "product-code": lambda i: None,
    "reason": lambda i: i["StateTransitionReason"],
    "requester-id": lambda i: None,
    "reservation-id": lambda i: i["ReservationId"],
    "root-device-name": lambda i: i["RootDeviceName"],
    "root-device-type": lambda i: i["RootDeviceType"],
    "source-dest-check": lambda i: i["SourceDestCheck"],
    "state-reason-code": lambda i: (i["StateReason"] or {}).get("Code"),
    "state-reason-message": lambda i: (i["StateReason"] or {}).get("Message"),
    "subnet-id": lambda i: i["SubnetId"],
    "tenancy": lambda i: i["Placement"]["Tenancy"],
    "usage-operation": lambda i: i["UsageOperation"],
    "virtualization-type": lambda i: i["VirtualizationType"],
    "vpc-id": lambda i: i.get("VpcId"),
}


def vm_tags(vm: documents.Element) -> dict[str, str]:
    """A VM's tags, read without converting the rest of it."""
    return documents.tags(vm.find("USER_TEMPLATE"))


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return _tags(instance)


def size_gib(megabytes: int) -> int:
    return max(1, math.ceil(megabytes / 1024))
