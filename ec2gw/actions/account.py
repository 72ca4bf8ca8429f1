"""Account attributes, answered from the caller's OpenNebula user and quotas."""

from __future__ import annotations

from typing import Any

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.registry import action
from ec2gw.actions.vpc import default_vpc_id
from ec2gw.one import documents
from ec2gw.protocol.errors import invalid_value

# OpenNebula quota limits: -1 means "the default quota", -2 "unlimited".
_UNLIMITED = {"-1", "-2", ""}


def _limit(user: documents.Element, path: str) -> str:
    value = documents.text(user, path)
    return "unlimited" if value.split(".")[0] in _UNLIMITED else value.split(".")[0]


@action(
    "DescribeAccountAttributes",
    opennebula="one.user.info(-1): VM quota for max-instances; EC2-VPC with a default VPC",
)
async def describe_account_attributes(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    user = await ctx.one_doc("one.user.info", -1)
    finish_dry_run(params)
    attributes = {
        "supported-platforms": ["VPC"],
        "default-vpc": [default_vpc_id(ctx)],
        "max-instances": [_limit(user, "VM_QUOTA/VM/VMS")],
        "max-elastic-ips": ["unlimited"],
        "vpc-max-elastic-ips": ["unlimited"],
        "vpc-max-security-groups-per-interface": ["5"],
    }
    wanted = params.get("AttributeNames") or list(attributes)
    for name in wanted:
        if name not in attributes:
            raise invalid_value("AttributeName", name)
    return {
        "AccountAttributes": [
            {
                "AttributeName": name,
                "AttributeValues": [{"AttributeValue": v} for v in attributes[name]],
            }
            for name in wanted
        ]
    }
