"""EC2 identifiers derived from OpenNebula ids: deterministic and reversible.

`ami-` + 8 hex digits of the image id, `i-` + 8 hex digits of the VM id, and so on; no
side table maps one to the other. An id of the wrong shape is `*.Malformed`, a well-formed
id OpenNebula does not know (or will not show to this caller) is `*.NotFound`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ec2gw.protocol.errors import EC2Error


@dataclass(frozen=True)
class IdKind:
    prefix: str
    malformed: str  # error code for an id of the wrong shape
    not_found: str  # error code for an unknown id
    noun: str  # how EC2's messages name it

    def encode(self, one_id: int) -> str:
        return f"{self.prefix}-{one_id:08x}"

    def decode(self, ec2_id: str) -> int:
        match = _SHAPE.fullmatch(ec2_id or "")
        if not match or match.group(1) != self.prefix:
            raise EC2Error(self.malformed, f'Invalid id: "{ec2_id}"')
        value = int(match.group(2), 16)
        if value > 0x7FFFFFFF:
            raise EC2Error(self.malformed, f'Invalid id: "{ec2_id}"')
        return value

    def encode_pair(self, first: int, second: int) -> str:
        """17 hex digits naming two OpenNebula ids at once (a VM and one of its NICs)."""
        return f"{self.prefix}-{first:08x}{second:09x}"

    def decode_pair(self, ec2_id: str) -> tuple[int, int]:
        match = _SHAPE.fullmatch(ec2_id or "")
        if not match or match.group(1) != self.prefix or len(match.group(2)) != 17:
            raise EC2Error(self.malformed, f'Invalid id: "{ec2_id}"')
        digits = match.group(2)
        return int(digits[:8], 16), int(digits[8:], 16)

    def missing(self, ec2_ids: list[str] | str) -> EC2Error:
        if isinstance(ec2_ids, str):
            ec2_ids = [ec2_ids]
        shown = ", ".join(ec2_ids)
        return EC2Error(self.not_found, f"The {self.noun} '{shown}' does not exist")


# 8 or 17 hex digits, as EC2 issues them.
_SHAPE = re.compile(r"([a-z]+)-([0-9a-f]{8}|[0-9a-f]{17})")

IMAGE = IdKind("ami", "InvalidAMIID.Malformed", "InvalidAMIID.NotFound", "image id")
INSTANCE = IdKind("i", "InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound", "instance ID")
RESERVATION = IdKind(
    "r", "InvalidReservationID.Malformed", "InvalidReservationID.NotFound", "reservation ID"
)
VOLUME = IdKind("vol", "InvalidVolumeID.Malformed", "InvalidVolume.NotFound", "volume")
SNAPSHOT = IdKind("snap", "InvalidSnapshotID.Malformed", "InvalidSnapshot.NotFound", "snapshot")
SECURITY_GROUP = IdKind("sg", "InvalidGroupId.Malformed", "InvalidGroup.NotFound", "security group")
SUBNET = IdKind("subnet", "InvalidSubnetID.Malformed", "InvalidSubnetID.NotFound", "subnet ID")
VPC = IdKind("vpc", "InvalidVpcID.Malformed", "InvalidVpcID.NotFound", "vpc ID")
ALLOCATION = IdKind(
    "eipalloc", "InvalidAllocationID.Malformed", "InvalidAllocationID.NotFound", "allocation ID"
)
ASSOCIATION = IdKind(
    "eipassoc", "InvalidAssociationID.Malformed", "InvalidAssociationID.NotFound", "association ID"
)
NETWORK_INTERFACE = IdKind(
    "eni",
    "InvalidNetworkInterfaceID.Malformed",
    "InvalidNetworkInterfaceID.NotFound",
    "network interface ID",
)
SECURITY_GROUP_RULE = IdKind(
    "sgr",
    "InvalidSecurityGroupRuleId.Malformed",
    "InvalidSecurityGroupRuleId.NotFound",
    "security group rule ID",
)
KEY_PAIR = IdKind("key", "InvalidKeyPair.Malformed", "InvalidKeyPair.NotFound", "key pair")


def account_id(uid: int) -> str:
    """The 12-digit EC2 account id of an OpenNebula user."""
    return f"{uid:012d}"
