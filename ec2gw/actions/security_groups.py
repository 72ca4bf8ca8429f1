"""Security groups are OpenNebula security groups (`sg-` + the group id).

An EC2 permission (protocol, port range, CIDRs) becomes one OpenNebula `RULE` vector per
CIDR: `PROTOCOL` TCP/UDP/ICMP/ALL, `RANGE "from:to"` (absent = every port), `ICMP_TYPE`,
`IP` + `SIZE` for the CIDR (absent = anywhere), `RULE_TYPE` INBOUND/OUTBOUND. OpenNebula
rules name addresses or networks, never other groups, so group references are refused.
Rules are changed by writing the group's whole template back (`one.secgroup.update`,
which OpenNebula pushes to the VMs using the group).
"""

from __future__ import annotations

import asyncio
import ipaddress
import zlib
from collections.abc import Iterable
from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.regions import local_region
from ec2gw.actions.registry import action
from ec2gw.actions.vpc import default_vpc_id
from ec2gw.ec2 import filters, idempotency, ids, pages
from ec2gw.ec2 import tags as tag_rules
from ec2gw.one import documents
from ec2gw.one.errors import ACTION, ALLOCATE, AUTHORIZATION, INTERNAL, NO_EXISTS, OneError
from ec2gw.protocol.errors import EC2Error, missing_parameter

GROUP = ids.SECURITY_GROUP
RULE_ID = ids.SECURITY_GROUP_RULE
DEFAULT_GROUP = 0  # OpenNebula's "default" group; it cannot be deleted

PROTOCOLS = {
    "tcp": "TCP",
    "6": "TCP",
    "udp": "UDP",
    "17": "UDP",
    "icmp": "ICMP",
    "1": "ICMP",
    "icmpv6": "ICMPV6",
    "58": "ICMPV6",
    "-1": "ALL",
    "all": "ALL",
}
EC2_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "ICMP": "icmp", "ICMPV6": "icmpv6", "ALL": "-1"}
DIRECTIONS = {False: "INBOUND", True: "OUTBOUND"}
# The attributes that make a rule what it is (others, like DESCRIPTION, are notes).
RULE_KEYS = ("RULE_TYPE", "PROTOCOL", "RANGE", "ICMP_TYPE", "IP", "SIZE", "NETWORK_ID")

Rule = dict[str, str]

# --- EC2 permissions ↔ OpenNebula rules -------------------------------------------------


def _invalid(message: str) -> EC2Error:
    return EC2Error("InvalidParameterValue", message)


def _port(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not -1 <= int(value) <= 65535:
        raise _invalid(f"Invalid value '{value}' for {name}")
    return int(value)


def rules_of_permission(permission: dict[str, Any], egress: bool) -> list[Rule]:
    """One EC2 IpPermission as OpenNebula RULE vectors (one per CIDR)."""
    raw = str(permission.get("IpProtocol") or "").lower()
    if raw not in PROTOCOLS:
        raise _invalid(f"Invalid IP protocol '{raw}'. Use tcp, udp, icmp or -1.")
    protocol = PROTOCOLS[raw]
    if permission.get("UserIdGroupPairs") or permission.get("PrefixListIds"):
        raise _invalid(
            "OpenNebula security group rules name addresses, not other security groups or "
            "prefix lists; use IpRanges"
        )
    if permission.get("Ipv6Ranges"):
        raise _invalid("IPv6 ranges are not supported; use IpRanges")
    low = _port(permission.get("FromPort"), "FromPort")
    high = _port(permission.get("ToPort"), "ToPort")
    base: Rule = {"RULE_TYPE": DIRECTIONS[egress], "PROTOCOL": protocol}
    if protocol in ("TCP", "UDP"):
        if low is None or high is None:
            raise missing_parameter("FromPort" if low is None else "ToPort")
        if low == -1 and high == -1:
            low, high = 0, 65535
        if low < 0 or high < low:
            raise _invalid(f"Invalid port range {low}-{high}")
        if (low, high) != (0, 65535):
            base["RANGE"] = str(low) if low == high else f"{low}:{high}"
    elif protocol in ("ICMP", "ICMPV6") and low is not None and low != -1:
        base["ICMP_TYPE"] = str(low)
    ranges = permission.get("IpRanges") or []
    if not ranges:
        raise missing_parameter("IpRanges")
    rules = []
    for entry in ranges:
        cidr = entry.get("CidrIp") or ""
        try:
            network = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            raise _invalid(f"CIDR block {cidr} is malformed") from None
        rule = dict(base)
        if network.prefixlen:
            rule["IP"], rule["SIZE"] = str(network.network_address), str(network.num_addresses)
        if entry.get("Description"):
            rule["DESCRIPTION"] = entry["Description"]
        rules.append(rule)
    return rules


def permissions_from_params(params: dict[str, Any]) -> list[dict[str, Any]]:
    """IpPermissions, or the older flat CidrIp/IpProtocol/FromPort/ToPort form."""
    if params.get("SourceSecurityGroupName") or params.get("SourceSecurityGroupOwnerId"):
        raise _invalid("OpenNebula security group rules cannot name other security groups")
    permissions = list(params.get("IpPermissions") or [])
    if params.get("IpProtocol"):
        permissions.append(
            {
                "IpProtocol": params["IpProtocol"],
                "FromPort": params.get("FromPort"),
                "ToPort": params.get("ToPort"),
                "IpRanges": [{"CidrIp": params.get("CidrIp") or "0.0.0.0/0"}],
            }
        )
    return permissions


def _key(rule: Rule) -> tuple[str, ...]:
    return tuple(rule.get(k, "") for k in RULE_KEYS)


def rule_id(group: int, rule: Rule) -> str:
    """`sgr-`: the group id and a digest of what the rule is, stable across edits."""
    digest = zlib.crc32("|".join(_key(rule)).encode()) & 0xFFFFFFFF
    return RULE_ID.encode_pair(group, digest)


def _ports(rule: Rule) -> list[tuple[int, int]]:
    if rule.get("PROTOCOL") in ("ICMP", "ICMPV6"):
        icmp = rule.get("ICMP_TYPE", "")
        return [(int(icmp), -1)] if icmp.isdigit() else [(-1, -1)]
    if rule.get("PROTOCOL") not in ("TCP", "UDP"):
        return [(-1, -1)]
    if not rule.get("RANGE"):
        return [(0, 65535)]
    result = []
    for part in rule["RANGE"].split(","):
        low, _, high = part.strip().partition(":")
        if low.isdigit() and (high or low).isdigit():
            result.append((int(low), int(high or low)))
    return result


def _cidrs(rule: Rule) -> list[str]:
    if not rule.get("IP"):
        return [] if rule.get("NETWORK_ID") else ["0.0.0.0/0"]
    try:
        first = ipaddress.IPv4Address(rule["IP"])
        last = first + max(1, int(rule.get("SIZE") or 1)) - 1
    except ValueError:
        return []
    return [str(n) for n in ipaddress.summarize_address_range(first, last)]


def ec2_rules(group: int, owner: str, rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """OpenNebula rules as EC2 SecurityGroupRules (one per port range and CIDR)."""
    result = []
    for rule in rules:
        protocol = EC2_PROTOCOLS.get(rule.get("PROTOCOL", ""), "-1")
        for low, high in _ports(rule):
            for cidr in _cidrs(rule):
                result.append(
                    {
                        "SecurityGroupRuleId": rule_id(group, rule),
                        "GroupId": GROUP.encode(group),
                        "GroupOwnerId": owner,
                        "IsEgress": rule.get("RULE_TYPE") == "OUTBOUND",
                        "IpProtocol": protocol,
                        "FromPort": low,
                        "ToPort": high,
                        "CidrIpv4": cidr,
                        "Description": rule.get("DESCRIPTION") or None,
                        "Tags": [],
                    }
                )
    return result


def _permissions(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """EC2 rules grouped into IpPermissions by protocol and ports."""
    grouped: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for rule in rules:
        key = (rule["IpProtocol"], rule["FromPort"], rule["ToPort"])
        grouped.setdefault(key, []).append(
            {"CidrIp": rule["CidrIpv4"], "Description": rule["Description"]}
        )
    result = []
    for (protocol, low, high), ranges in grouped.items():
        permission: dict[str, Any] = {
            "IpProtocol": protocol,
            "IpRanges": ranges,
            "Ipv6Ranges": [],
            "PrefixListIds": [],
            "UserIdGroupPairs": [],
        }
        if protocol != "-1":
            permission.update(FromPort=low, ToPort=high)
        result.append(permission)
    return result


# --- reading groups ----------------------------------------------------------------------


def rules_of(group: documents.Element) -> list[Rule]:
    return [
        {child.tag: child.text or "" for child in vector}
        for vector in group.iterfind("TEMPLATE/RULE")
    ]


def to_ec2(ctx: RequestContext, group: documents.Element, region: str) -> dict[str, Any]:
    one_id = documents.integer(group, "ID")
    owner = ids.account_id(documents.integer(group, "UID"))
    rules = ec2_rules(one_id, owner, rules_of(group))
    group_id = GROUP.encode(one_id)
    return {
        "GroupId": group_id,
        "GroupName": documents.text(group, "NAME"),
        "Description": documents.text(group, "TEMPLATE/DESCRIPTION")
        or documents.text(group, "NAME"),
        "OwnerId": owner,
        "VpcId": default_vpc_id(ctx),
        "SecurityGroupArn": f"arn:aws:ec2:{region}:{owner}:security-group/{group_id}",
        "IpPermissions": _permissions([r for r in rules if not r["IsEgress"]]),
        "IpPermissionsEgress": _permissions([r for r in rules if r["IsEgress"]]),
        "Tags": [{"Key": k, "Value": v} for k, v in documents.tags(group.find("TEMPLATE")).items()],
        "_rules": rules,
    }


async def group_doc(ctx: RequestContext, group_id: str) -> documents.Element:
    """The security group `sg-…` as the caller sees it, or InvalidGroup.NotFound."""
    one_id = GROUP.decode(group_id)
    try:
        return await ctx.one_doc("one.secgroup.info", one_id)
    except OneError as err:
        if err.code in (NO_EXISTS, AUTHORIZATION):
            raise GROUP.missing(group_id) from None
        raise


async def _usable(ctx: RequestContext) -> list[documents.Element]:
    pool = await ctx.one_doc("one.secgrouppool.info", -2, -1, -1)
    return sorted(pool.iterfind("SECURITY_GROUP"), key=lambda g: documents.integer(g, "ID"))


async def _named(ctx: RequestContext, params: dict[str, Any]) -> documents.Element:
    """The group of GroupId, or the caller's own group called GroupName."""
    if params.get("GroupId"):
        return await group_doc(ctx, params["GroupId"])
    name = params.get("GroupName")
    if not name:
        raise missing_parameter("GroupId")
    for group in await _usable(ctx):
        if documents.text(group, "NAME") == name and documents.integer(group, "UID") == ctx.uid:
            return group
    raise EC2Error(
        "InvalidGroup.NotFound", f"The security group '{name}' does not exist in default VPC"
    )


async def group_ids_by_name(ctx: RequestContext, names: list[str]) -> list[str]:
    """`sg-` ids of the groups named (RunInstances SecurityGroup.N): the caller's own
    group of that name, else one it may use (such as OpenNebula's `default`)."""
    groups = await _usable(ctx)
    result = []
    for name in names:
        named = [g for g in groups if documents.text(g, "NAME") == name]
        named.sort(key=lambda g: documents.integer(g, "UID") != ctx.uid)
        if not named:
            raise EC2Error(
                "InvalidGroup.NotFound",
                f"The security group '{name}' does not exist in default VPC",
            )
        result.append(GROUP.encode(documents.integer(named[0], "ID")))
    return result


# --- actions -----------------------------------------------------------------------------


@action(
    "CreateSecurityGroup",
    opennebula="one.secgroup.allocate (NAME, DESCRIPTION, an allow-all OUTBOUND RULE, EC2_TAG_* "
    "tags)",
    oned="one secgroup.allocate with the rules and tags, nothing half-made; a taken name (oned "
    "answers INTERNAL 'NAME is already taken') is InvalidGroup.Duplicate",
)
async def create_security_group(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name, description = params.get("GroupName"), params.get("Description")
    if not name:
        raise missing_parameter("GroupName")
    if not description:
        raise missing_parameter("GroupDescription")
    if len(name) > 255 or len(description) > 255:
        raise _invalid("Group names and descriptions are at most 255 characters")
    if name.startswith("sg-") or name == "default":
        raise _invalid(f"Group names may not be 'default' or start with 'sg-': {name}")
    vpc_id = params.get("VpcId")
    if vpc_id:
        ids.VPC.decode(vpc_id)
        if vpc_id != default_vpc_id(ctx):
            raise ids.VPC.missing(vpc_id)
    group_tags = tag_rules.from_specifications(params.get("TagSpecifications"), "security-group")
    finish_dry_run(params)
    template: list[tuple[str, Any]] = [
        ("NAME", name),
        ("DESCRIPTION", description),
        ("RULE", {"PROTOCOL": "ALL", "RULE_TYPE": "OUTBOUND"}),
        *documents.tag_vectors(group_tags),
    ]
    try:
        one_id = await ctx.one("one.secgroup.allocate", documents.template_text(template))
    except OneError as err:
        # oned answers a taken NAME with INTERNAL (its pool's allocate failed)
        if err.code in (ALLOCATE, INTERNAL) and "already taken" in err.message:
            raise EC2Error(
                "InvalidGroup.Duplicate",
                f"The security group '{name}' already exists for VPC '{default_vpc_id(ctx)}'",
            ) from None
        raise
    group_id = GROUP.encode(one_id)
    return {
        "GroupId": group_id,
        "Tags": [{"Key": k, "Value": v} for k, v in group_tags.items()],
    }


@action(
    "DeleteSecurityGroup",
    opennebula="one.secgroup.delete (refused while VMs use it)",
    oned="secgroup.delete refused for group 0 and while a VM uses the group (a VM releases it "
    "only once DONE)",
)
async def delete_security_group(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    group = await _named(ctx, params)
    one_id = documents.integer(group, "ID")
    group_id = GROUP.encode(one_id)
    if one_id == DEFAULT_GROUP or documents.integer(group, "UID") != ctx.uid:
        raise EC2Error(
            "CannotDelete",
            f'the specified group: "{group_id}" name: "{documents.text(group, "NAME")}" '
            "cannot be deleted by this user",
        )
    finish_dry_run(params)
    try:
        await ctx.one("one.secgroup.delete", one_id)
    except OneError as err:
        if err.code == ACTION:
            raise EC2Error(
                "DependencyViolation", f"resource {group_id} has a dependent object"
            ) from None
        raise
    return {"Return": True, "GroupId": group_id}


def _tags(group: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in group["Tags"]}


def _perm(direction: str, pick: str) -> filters.Extractor:
    def extract(group: dict[str, Any]) -> list[Any]:
        egress = direction == "egress"
        return [r[pick] for r in group["_rules"] if r["IsEgress"] == egress]

    return extract


def _none(group: dict[str, Any]) -> None:
    return None


SECURITY_GROUP_FILTERS: dict[str, filters.Extractor] = {
    "description": lambda g: g["Description"],
    "group-id": lambda g: g["GroupId"],
    "group-name": lambda g: g["GroupName"],
    "owner-id": lambda g: g["OwnerId"],
    "vpc-id": lambda g: g["VpcId"],
    "ip-permission.cidr": _perm("ingress", "CidrIpv4"),
    "ip-permission.from-port": _perm("ingress", "FromPort"),
    "ip-permission.to-port": _perm("ingress", "ToPort"),
    "ip-permission.protocol": _perm("ingress", "IpProtocol"),
    "ip-permission.group-id": _none,
    "ip-permission.group-name": _none,
    "ip-permission.ipv6-cidr": _none,
    "ip-permission.prefix-list-id": _none,
    "ip-permission.user-id": _none,
    "egress.ip-permission.cidr": _perm("egress", "CidrIpv4"),
    "egress.ip-permission.from-port": _perm("egress", "FromPort"),
    "egress.ip-permission.to-port": _perm("egress", "ToPort"),
    "egress.ip-permission.protocol": _perm("egress", "IpProtocol"),
    "egress.ip-permission.group-id": _none,
    "egress.ip-permission.group-name": _none,
    "egress.ip-permission.ipv6-cidr": _none,
    "egress.ip-permission.prefix-list-id": _none,
    "egress.ip-permission.user-id": _none,
}


@action(
    "DescribeSecurityGroups",
    opennebula="one.secgrouppool.info(-2) (or one.secgroup.info per GroupId): groups the "
    "caller may use",
)
async def describe_security_groups(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    pages.no_max_results_with(params, "GroupIds", "groupIdSet")
    wanted = params.get("GroupIds")
    if wanted:
        found = await asyncio.gather(*(group_doc(ctx, g) for g in dict.fromkeys(wanted)))
    else:
        found = await _usable(ctx)
    finish_dry_run(params)
    region = await local_region(ctx)
    groups = [to_ec2(ctx, g, region) for g in found]
    names = params.get("GroupNames")
    if names:
        known = {g["GroupName"] for g in groups}
        missing = [n for n in names if n not in known]
        if missing:
            raise EC2Error(
                "InvalidGroup.NotFound",
                f"The security group '{missing[0]}' does not exist in default VPC",
            )
        groups = [g for g in groups if g["GroupName"] in names]
    groups = filters.apply(groups, params.get("Filters"), SECURITY_GROUP_FILTERS, _tags)
    chosen, token = pages.page(groups, params, action="DescribeSecurityGroups")
    return {
        "SecurityGroups": [{k: v for k, v in g.items() if k != "_rules"} for g in chosen],
        "NextToken": token,
    }


async def _change_rules(
    ctx: RequestContext, params: dict[str, Any], *, egress: bool, add: bool
) -> dict[str, Any]:
    """Authorize (add) or revoke rules of one direction, writing the template back once."""
    group = await _named(ctx, params)
    one_id = documents.integer(group, "ID")
    owner = ids.account_id(documents.integer(group, "UID"))
    asked = [r for p in permissions_from_params(params) for r in rules_of_permission(p, egress)]
    rule_ids = params.get("SecurityGroupRuleIds") or []
    if not asked and not rule_ids:
        raise missing_parameter("IpPermissions")
    # One writer per group in this process: rule changes read, modify and write the template.
    async with idempotency.lock_for(("security-group", one_id)):
        group = await ctx.one_doc("one.secgroup.info", one_id)
        current = rules_of(group)
        current_keys = [_key(r) for r in current]
        if add:
            seen = set(current_keys)
            for rule in asked:
                if _key(rule) in seen:
                    raise EC2Error(
                        "InvalidPermission.Duplicate",
                        "the specified rule already exists in the security group",
                    )
                seen.add(_key(rule))
            changed, result = current + asked, asked
        else:
            for wanted in rule_ids:
                RULE_ID.decode_pair(wanted)
            doomed = [
                r
                for r in current
                if r.get("RULE_TYPE") == DIRECTIONS[egress]
                and (_key(r) in map(_key, asked) or rule_id(one_id, r) in rule_ids)
            ]
            found_ids = {rule_id(one_id, r) for r in doomed}
            found_keys = {_key(r) for r in doomed}
            if any(_key(r) not in found_keys for r in asked) or any(
                w not in found_ids for w in rule_ids
            ):
                raise EC2Error(
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                )
            changed = [r for r in current if r not in doomed]
            result = doomed
        finish_dry_run(params)
        await ctx.one(
            "one.secgroup.update",
            one_id,
            documents.with_vectors(group.find("TEMPLATE"), "RULE", changed),
            0,
        )
    rules = ec2_rules(one_id, owner, result)
    if add:
        return {"Return": True, "SecurityGroupRules": rules}
    return {"Return": True, "RevokedSecurityGroupRules": rules}


RULE_CHANGES_ON_ONED = (
    "security group templates are not in replace mode: the RULEs are rewritten from the "
    "template read just before (append=0) under a per-process lock; oned validates the rules "
    "and pushes them to every VM in the group"
)


@action(
    "AuthorizeSecurityGroupIngress",
    opennebula="one.secgroup.update: INBOUND RULEs added",
    oned=RULE_CHANGES_ON_ONED,
)
async def authorize_ingress(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _change_rules(ctx, params, egress=False, add=True)


@action(
    "AuthorizeSecurityGroupEgress",
    opennebula="one.secgroup.update: OUTBOUND RULEs added",
    oned=RULE_CHANGES_ON_ONED,
)
async def authorize_egress(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _change_rules(ctx, params, egress=True, add=True)


@action(
    "RevokeSecurityGroupIngress",
    opennebula="one.secgroup.update: INBOUND RULEs removed",
    oned=RULE_CHANGES_ON_ONED,
)
async def revoke_ingress(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _change_rules(ctx, params, egress=False, add=False)


@action(
    "RevokeSecurityGroupEgress",
    opennebula="one.secgroup.update: OUTBOUND RULEs removed",
    oned=RULE_CHANGES_ON_ONED,
)
async def revoke_egress(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _change_rules(ctx, params, egress=True, add=False)


RULE_FILTERS: dict[str, filters.Extractor] = {
    "group-id": lambda r: r["GroupId"],
    "security-group-rule-id": lambda r: r["SecurityGroupRuleId"],
}


@action(
    "DescribeSecurityGroupRules",
    opennebula="one.secgrouppool.info(-2): each RULE of each group (sgr- + group id + digest)",
)
async def describe_security_group_rules(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    wanted = params.get("SecurityGroupRuleIds") or []
    for rule in wanted:
        RULE_ID.decode_pair(rule)
    groups = await _usable(ctx)
    finish_dry_run(params)
    region = await local_region(ctx)
    rules = [r for g in groups for r in to_ec2(ctx, g, region)["_rules"]]
    if wanted:
        known = {r["SecurityGroupRuleId"] for r in rules}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise RULE_ID.missing(missing)
        rules = [r for r in rules if r["SecurityGroupRuleId"] in wanted]
    rules = filters.apply(rules, params.get("Filters"), RULE_FILTERS, _tags)
    chosen, token = pages.page(rules, params, action="DescribeSecurityGroupRules")
    return {"SecurityGroupRules": list(chosen), "NextToken": token}
