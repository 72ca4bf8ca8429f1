"""Who may do what: object permissions plus the ACL rules oned creates at bootstrap.

oned authorizes a request in `AuthManager`/`AclManager`: members of the oneadmin group may
do anything; otherwise the object's owner/group/other permission bits, then the ACL rules.
Only the rules a fresh oned has are created here (`src/acl/AclManager.cc`, `src/vdc/Vdc.cc`):

* `@1 VM+IMAGE+TEMPLATE+DOCUMENT+SECGROUP+VMGROUP+BACKUPJOB/* CREATE *`
* `* ZONE/* USE *` and `* MARKETPLACE+MARKETPLACEAPP/* USE *`
* the default VDC, for every group in it (group 1 and each group allocated later):
  `@g HOST/* MANAGE`, `@g NET/* USE`, `@g DATASTORE/* USE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Rights (`AuthRequest::Operation`).
USE, MANAGE, ADMIN, CREATE = 0x1, 0x2, 0x4, 0x8
OP_NAMES = {USE: "USE", MANAGE: "MANAGE", ADMIN: "ADMIN", CREATE: "CREATE"}

# Object type bits (`PoolObjectSQL::ObjectType`, include/PoolObjectSQL.h) and the names
# used in messages and in ACL strings.
TYPE_BITS = {
    "vm": (0x0000001000000000, "VM"),
    "host": (0x0000002000000000, "HOST"),
    "vnet": (0x0000004000000000, "NET"),
    "image": (0x0000008000000000, "IMAGE"),
    "user": (0x0000010000000000, "USER"),
    "template": (0x0000020000000000, "TEMPLATE"),
    "group": (0x0000040000000000, "GROUP"),
    "datastore": (0x0000100000000000, "DATASTORE"),
    "cluster": (0x0000200000000000, "CLUSTER"),
    "document": (0x0000400000000000, "DOCUMENT"),
    "zone": (0x0000800000000000, "ZONE"),
    "secgroup": (0x0001000000000000, "SECGROUP"),
}
ACL, VDC, VROUTER = 0x0000080000000000, 0x0002000000000000, 0x0004000000000000
MARKETPLACE, MARKETPLACEAPP, VMGROUP, VNTEMPLATE, BACKUPJOB = (
    0x0008000000000000,
    0x0010000000000000,
    0x0020000000000000,
    0x0040000000000000,
    0x0100000000000000,
)

# Rule user / resource id parts.
INDIVIDUAL, GROUP, ALL, CLUSTER = 0x100000000, 0x200000000, 0x400000000, 0x800000000
ZONE_ALL = 0x400000000
ZONE_0 = INDIVIDUAL  # `#0`: what `one.acl.addrule` gives a rule made without a zone


@dataclass
class Rule:
    id: int
    user: int
    resource: int
    rights: int
    zone: int = ZONE_ALL

    def to_json(self) -> list[int]:
        return [self.id, self.user, self.resource, self.rights, self.zone]

    def text(self) -> str:
        """The human form oned puts in `<STRING>` (`AclRule::build_str`), e.g.
        `@1 VM+IMAGE/* CREATE *`; a selector with no bit set reads `??`."""
        types = "+".join(n for bit, n in _all_types() if self.resource & bit)
        rights = "+".join(n for bit, n in OP_NAMES.items() if self.rights & bit)
        zone = _selector(self.zone, ("#", INDIVIDUAL), ("*", ALL))
        who = _selector(self.user, ("@", GROUP), ("#", INDIVIDUAL), ("*", ALL))
        what = _selector(self.resource, ("@", GROUP), ("#", INDIVIDUAL), ("%", CLUSTER), ("*", ALL))
        return f"{who} {types}/{what} {rights} {zone}"

    def malformed(self) -> str:
        """Why oned refuses the rule (`AclRule::malformed`), or "" when it is fine."""
        return "; ".join(_malformed(self.user, self.resource, self.rights, self.zone))


def _all_types() -> list[tuple[int, str]]:
    """Every object type in the order oned lists them in a rule's string."""
    bits = [(bit, name) for bit, name in TYPE_BITS.values()]
    bits += [(VDC, "VDC"), (VROUTER, "VROUTER")]
    bits += [(MARKETPLACE, "MARKETPLACE"), (MARKETPLACEAPP, "MARKETPLACEAPP")]
    bits += [(VMGROUP, "VMGROUP"), (VNTEMPLATE, "VNTEMPLATE"), (BACKUPJOB, "BACKUPJOB")]
    return sorted(set(bits))


def _selector(value: int, *kinds: tuple[str, int]) -> str:
    low = value & 0xFFFFFFFF
    for sign, bit in kinds:
        if value & bit:
            return "*" if sign == "*" else f"{sign}{low}"
    return "??"


def _signed_id(value: int) -> int:
    low = value & 0xFFFFFFFF
    return low - (1 << 32) if low & 0x80000000 else low


_CLUSTER_TYPES = TYPE_BITS["datastore"][0] | TYPE_BITS["host"][0] | TYPE_BITS["vnet"][0]
_NO_GROUP_TYPES = (
    TYPE_BITS["host"][0] | TYPE_BITS["group"][0] | TYPE_BITS["cluster"][0] | TYPE_BITS["zone"][0]
) | VDC
_FEDERATED = TYPE_BITS["user"][0] | TYPE_BITS["group"][0] | TYPE_BITS["zone"][0] | ACL | VDC
_ALL_TYPES = 0xFFFFFFF000000000
_SELECTORS = 0xF00000000


def _malformed(user: int, resource: int, rights: int, zone: int) -> list[str]:
    """The checks of `AclRule::malformed`, in its order and words."""
    out: list[str] = []
    if user & INDIVIDUAL and user & GROUP:
        out.append("[user] INDIVIDUAL (#) and GROUP (@) bits are exclusive")
    if user & INDIVIDUAL and user & ALL:
        out.append("[user] INDIVIDUAL (#) and ALL (*) bits are exclusive")
    if user & GROUP and user & ALL:
        out.append("[user] GROUP (@) and ALL (*) bits are exclusive")
    if user & 0x700000000 == 0:
        out.append("[user] is missing one of the INDIVIDUAL, GROUP or ALL bits")
    if _signed_id(user) < 0:
        out.append("[user] ID cannot be negative")
    if user & ALL and _signed_id(user) != 0:
        out.append("when using the ALL bit, [user] ID must be 0")
    selector = resource & _SELECTORS
    if any(resource & bit and selector != bit for bit in (INDIVIDUAL, GROUP, CLUSTER, ALL)):
        out.append(
            "[resource] INDIVIDUAL (#), GROUP (@), CLUSTER (%) and ALL (*) bits are exclusive"
        )
    types = resource & _ALL_TYPES
    if resource & CLUSTER and types & ~_CLUSTER_TYPES & _ALL_TYPES:
        out.append(
            "[resource] CLUSTER(%) selector can be applied only to DATASTORE, HOST and NET types"
        )
    if resource & GROUP and types & _NO_GROUP_TYPES:
        out.append(
            "[resource] GROUP(@) selector cannot be applied to HOST, GROUP, CLUSTER, ZONE "
            "or VDC types"
        )
    if selector == 0:
        out.append("[resource] is missing one of the INDIVIDUAL, GROUP, CLUSTER or ALL bits")
    if _signed_id(resource) < 0:
        out.append("[resource] ID cannot be negative")
    if resource & ALL and _signed_id(resource) != 0:
        out.append("when using the ALL bit, [resource] ID must be 0")
    if types == 0:
        out.append("[resource] type is missing")
    if resource & 0xFE80000000000000:
        out.append("wrong [resource] type")
    if rights == 0:
        out.append("wrong [rights], it cannot be 0")
    if rights > 0xF:
        out.append("wrong [rights], it cannot be bigger than 0xF")
    if zone & GROUP:
        out.append("[zone] GROUP (@) bit is not supported")
    if zone & INDIVIDUAL and zone & ALL:
        out.append("[zone] INDIVIDUAL (#) and ALL (*) bits are exclusive")
    if zone & 0x700000000 == 0:
        out.append("[zone] is missing one of the INDIVIDUAL or ALL bits")
    if _signed_id(zone) < 0:
        out.append("[zone] ID cannot be negative")
    if zone & ALL and _signed_id(zone) != 0:
        out.append("when using the ALL bit, [zone] ID must be 0")
    if zone & ALL and resource & INDIVIDUAL and types & ~_FEDERATED & _ALL_TYPES:
        out.append(
            "[resource] INDIVIDUAL(#) selector cannot be applied to ALL zones, except for "
            "USER, GROUP and ZONE types"
        )
    return out


def bootstrap_rules() -> list[Rule]:
    t = TYPE_BITS
    create = (
        (t["vm"][0] | t["image"][0] | t["template"][0] | t["document"][0] | t["secgroup"][0])
        | VMGROUP
        | BACKUPJOB
    )
    rules = [
        Rule(0, GROUP | 1, ALL | create, CREATE),
        Rule(1, ALL, ALL | t["zone"][0], USE),
        Rule(2, ALL, ALL | MARKETPLACE | MARKETPLACEAPP, USE),
    ]
    rules += vdc_rules(1, 3)
    return rules


def vdc_rules(gid: int, first_id: int) -> list[Rule]:
    """What the default VDC grants a group in it (DEFAULT_VDC_*_ACL of oned.conf)."""
    t = TYPE_BITS
    return [
        Rule(first_id, GROUP | gid, ALL | t["host"][0], MANAGE),
        Rule(first_id + 1, GROUP | gid, ALL | t["vnet"][0], USE),
        Rule(first_id + 2, GROUP | gid, ALL | t["datastore"][0], USE),
    ]


@dataclass
class Caller:
    """The identity a call runs as (after server_cipher impersonation, the target's)."""

    uid: int
    gid: int
    groups: set[int] = field(default_factory=set)
    name: str = ""
    gname: str = ""
    umask: int = 0o177

    @property
    def is_admin(self) -> bool:
        return self.uid == 0 or 0 in self.groups


def perm_bits(obj: dict) -> list[int]:
    """OWNER_U, OWNER_M, OWNER_A, GROUP_U, …, OTHER_A of an object (hosts etc. have none)."""
    return obj.get("perms", [1, 1, 0, 0, 0, 0, 0, 0, 0])


def _perm_allows(caller: Caller, obj: dict, op: int) -> bool:
    if op == CREATE:
        return False
    bits = perm_bits(obj)
    column = {USE: 0, MANAGE: 1, ADMIN: 2}[op]
    if obj.get("uid") == caller.uid and bits[column]:
        return True
    if obj.get("gid") in caller.groups and bits[3 + column]:
        return True
    return bool(bits[6 + column])


def _rule_applies(rule: Rule, caller: Caller, kind: str, obj: dict | None, op: int) -> bool:
    user = rule.user
    low = user & 0xFFFFFFFF
    if not (
        user & ALL
        or (user & INDIVIDUAL and low == caller.uid)
        or (user & GROUP and low in caller.groups)
    ):
        return False
    if not rule.resource & TYPE_BITS[kind][0] or rule.rights & op != op:
        return False
    res = rule.resource
    low = res & 0xFFFFFFFF
    if res & ALL:
        return True
    if obj is None:
        return False
    if res & INDIVIDUAL:
        return obj.get("id") == low
    if res & GROUP:
        return obj.get("gid") == low
    if res & CLUSTER:
        return low in obj.get("clusters", [obj.get("cluster_id")])
    return False


def authorize(caller: Caller, rules: list[Rule], kind: str, obj: dict | None, op: int) -> bool:
    """May `caller` perform `op` on `obj` (or CREATE a `kind` when obj is None)?"""
    if caller.is_admin:
        return True
    if obj is not None and _perm_allows(caller, obj, op):
        return True
    return any(_rule_applies(r, caller, kind, obj, op) for r in rules)


def denial(kind: str, op: int, oid: int = -1) -> str:
    """`AuthRequest` message, e.g. `Not authorized to perform USE VM [5]`."""
    text = f"Not authorized to perform {OP_NAMES[op]} {TYPE_BITS[kind][1]}"
    return text + (f" [{oid}]" if oid != -1 else "")


def umask_perms(umask: int, group_u: int = 0) -> list[int]:
    """Permissions of a new object: 0777 & ~umask, as `PoolObjectSQL::set_umask`."""
    mode = 0o777 & ~umask
    bits = [
        (mode >> 8) & 1,
        (mode >> 7) & 1,
        (mode >> 6) & 1,
        (mode >> 5) & 1,
        (mode >> 4) & 1,
        (mode >> 3) & 1,
        (mode >> 2) & 1,
        (mode >> 1) & 1,
        mode & 1,
    ]
    if group_u:
        bits[3] = 1
    return bits
