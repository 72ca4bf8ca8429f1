"""How an OpenNebula VM looks as an EC2 instance, and the filters over that view.

EC2-specific facts live in the VM's USER_TEMPLATE (written by RunInstances): the instance
type, reservation, key name, launch index, client token and tags. Everything else is read
from the VM itself: state, addresses, disks, host and cluster, times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ec2gw.ec2 import filters, ids
from ec2gw.one import documents, states

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


@dataclass
class Zones:
    """Cluster id → availability zone name, for placing instances."""

    region: str
    vpc_id: str = ""
    by_cluster: dict[int, str] = field(default_factory=dict)
    default: str = ""


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def user_attr(vm: documents.Element, name: str) -> str:
    return documents.text(vm, f"USER_TEMPLATE/{name}")


def is_hidden(vm: documents.Element) -> bool:
    return user_attr(vm, HIDDEN) == "YES"


def state_of(vm: documents.Element) -> states.InstanceState:
    return states.instance_state(documents.integer(vm, "STATE"), documents.integer(vm, "LCM_STATE"))


def instance_id(vm: documents.Element) -> str:
    return ids.INSTANCE.encode(documents.integer(vm, "ID"))


def reservation_id(vm: documents.Element) -> str:
    return user_attr(vm, RESERVATION) or ids.RESERVATION.encode(documents.integer(vm, "ID"))


def _zone(vm: documents.Element, zones: Zones) -> str:
    history = vm.findall("HISTORY_RECORDS/HISTORY")
    if history:
        cluster = documents.integer(history[-1], "CID", -1)
        if cluster in zones.by_cluster:
            return zones.by_cluster[cluster]
    return user_attr(vm, AVAILABILITY_ZONE) or zones.default


def _state_reason(vm: documents.Element, state: states.InstanceState) -> dict[str, str] | None:
    raw_state, lcm = documents.integer(vm, "STATE"), documents.integer(vm, "LCM_STATE")
    if states.is_failure(raw_state, lcm):
        return {
            "Code": "Server.InternalError",
            "Message": "Server.InternalError: Internal error on launch",
        }
    if state.name == "terminated":
        return {
            "Code": "Client.UserInitiatedShutdown",
            "Message": "Client.UserInitiatedShutdown: User initiated shutdown",
        }
    if state.name in ("stopped", "stopping"):
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


def group_names(vm: documents.Element) -> dict[int, str]:
    """Security group id → name, from the rules OpenNebula copied into the VM."""
    return {
        documents.integer(rule, "SECURITY_GROUP_ID"): documents.text(rule, "SECURITY_GROUP_NAME")
        for rule in vm.iterfind("TEMPLATE/SECURITY_GROUP_RULE")
    }


def _groups(nic: documents.Element, names: dict[int, str]) -> list[dict[str, str]]:
    groups = [int(g) for g in documents.text(nic, "SECURITY_GROUPS").split(",") if g.isdigit()]
    return [
        {"GroupId": ids.SECURITY_GROUP.encode(g), "GroupName": names.get(g) or str(g)}
        for g in groups
    ]


def address_association(vm: documents.Element) -> dict[str, Any] | None:
    """The Elastic IP of the instance as EC2 shows it on the primary interface."""
    nic = elastic_nic(vm)
    if nic is None:
        return None
    reservation = documents.integer(nic, "NETWORK_ID")
    return {
        "PublicIp": documents.text(nic, "IP"),
        "PublicDnsName": "",
        "IpOwnerId": ids.account_id(documents.integer(vm, "UID")),
        "AllocationId": ids.ALLOCATION.encode(reservation),
        "AssociationId": ids.ASSOCIATION.encode(reservation),
    }


def network_interfaces(vm: documents.Element, zones: Zones) -> list[dict[str, Any]]:
    """The VM's NICs (but the Elastic IP's) as EC2 network interfaces, `eni-` + vm + NIC id.

    Shaped for DescribeNetworkInterfaces; the instance view uses the same dicts (the
    serializer keeps the members each shape has).
    """
    vm_id = documents.integer(vm, "ID")
    owner = ids.account_id(documents.integer(vm, "UID"))
    names = group_names(vm)
    association = address_association(vm)
    launched = _time(documents.integer(vm, "STIME"))
    result = []
    for index, nic in enumerate(n for n in vm.iterfind("TEMPLATE/NIC") if not is_elastic(n)):
        nic_id = documents.integer(nic, "NIC_ID")
        ip = documents.text(nic, "IP")
        dns = f"ip-{ip.replace('.', '-')}.{zones.region}.compute.internal" if ip else ""
        public = association if index == 0 else None
        result.append(
            {
                "NetworkInterfaceId": ids.NETWORK_INTERFACE.encode_pair(vm_id, nic_id),
                "SubnetId": ids.SUBNET.encode(documents.integer(nic, "NETWORK_ID")),
                "VpcId": zones.vpc_id,
                "AvailabilityZone": _zone(vm, zones),
                "Description": "",
                "OwnerId": owner,
                "RequesterManaged": False,
                "Status": "in-use",
                "MacAddress": documents.text(nic, "MAC"),
                "PrivateIpAddress": ip or None,
                "PrivateDnsName": dns,
                "SourceDestCheck": True,
                "InterfaceType": "interface",
                "Groups": _groups(nic, names),
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


def _block_device(disk: documents.Element, launched: datetime) -> dict[str, Any]:
    """A VM disk as a block device mapping; an attached EBS volume names itself."""
    volume_id = documents.text(disk, VOLUME_DISK)
    ebs: dict[str, Any] = {
        "AttachTime": launched,
        "DeleteOnTermination": not volume_id,
        "Status": "attached",
    }
    if volume_id:
        ebs["VolumeId"] = volume_id
    return {"DeviceName": f"/dev/{documents.text(disk, 'TARGET')}", "Ebs": ebs}


def to_instance(vm: documents.Element, zones: Zones) -> dict[str, Any]:
    """A VM document (full body: vm.info or vmpool.infoextended) as EC2's Instance."""
    state = state_of(vm)
    alive = state.name != "terminated"
    nics = [n for n in vm.findall("TEMPLATE/NIC") if not is_elastic(n)]
    disks = vm.findall("TEMPLATE/DISK")
    private_ip = documents.text(nics[0], "IP") if nics and alive else ""
    elastic = elastic_nic(vm)
    public_ip = (
        documents.text(elastic, "IP")
        if elastic is not None
        else next(
            (documents.text(n, "EXTERNAL_IP") for n in nics if documents.text(n, "EXTERNAL_IP")),
            "",
        )
    )
    root_prefix = documents.text(disks[0], "DEV_PREFIX", "vd") if disks else "vd"
    root_device = f"/dev/{root_prefix}a"
    launched = _time(documents.integer(vm, "STIME"))
    vcpus = max(1, documents.integer(vm, "TEMPLATE/VCPU", 1))
    names = group_names(vm)
    security_groups = list({g["GroupId"]: g for nic in nics for g in _groups(nic, names)}.values())
    security_groups.sort(key=lambda g: g["GroupId"])
    image_id = documents.integer(disks[0], "IMAGE_ID", -1) if disks else -1
    network_id = documents.integer(nics[0], "NETWORK_ID", -1) if nics else -1
    tags = documents.tags(vm.find("USER_TEMPLATE"))
    instance: dict[str, Any] = {
        # OwnerId and ReservationId belong to the reservation; kept here for the filters
        # (the serializer drops members the Instance shape does not have).
        "OwnerId": ids.account_id(documents.integer(vm, "UID")),
        "ReservationId": reservation_id(vm),
        "InstanceId": instance_id(vm),
        "ImageId": ids.IMAGE.encode(image_id) if image_id >= 0 else "",
        "State": {"Code": state.code, "Name": state.name},
        "PrivateDnsName": f"ip-{private_ip.replace('.', '-')}.{zones.region}.compute.internal"
        if private_ip
        else "",
        "PublicDnsName": "",
        "StateTransitionReason": "",
        "KeyName": user_attr(vm, KEY_NAME) or None,
        "AmiLaunchIndex": documents.integer(vm, f"USER_TEMPLATE/{LAUNCH_INDEX}"),
        "ProductCodes": [],
        "InstanceType": user_attr(vm, INSTANCE_TYPE) or "custom",
        "LaunchTime": launched,
        "Placement": {
            "AvailabilityZone": _zone(vm, zones),
            "GroupName": "",
            "Tenancy": "default",
        },
        "Monitoring": {"State": "disabled"},
        "SubnetId": ids.SUBNET.encode(network_id) if network_id >= 0 and alive else None,
        "VpcId": zones.vpc_id if network_id >= 0 and alive else None,
        "PrivateIpAddress": private_ip or None,
        "PublicIpAddress": (public_ip or None) if alive else None,
        "Architecture": documents.text(vm, "TEMPLATE/OS/ARCH", "x86_64") or "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": root_device,
        "BlockDeviceMappings": [
            _block_device(disk, launched)
            for disk in disks
            if alive and documents.text(disk, "TARGET")
        ],
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "ClientToken": user_attr(vm, CLIENT_TOKEN),
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        "SecurityGroups": security_groups if alive else [],
        "NetworkInterfaces": network_interfaces(vm, zones) if alive else [],
        "SourceDestCheck": True,
        "EbsOptimized": False,
        "EnaSupport": False,
        "StateReason": _state_reason(vm, state),
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


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return _tags(instance)


def size_gib(megabytes: int) -> int:
    return max(1, math.ceil(megabytes / 1024))
