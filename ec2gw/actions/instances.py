"""Instances are OpenNebula VMs, launched from an instance-type template and an AMI.

RunInstances composes the VM from the instance type's template (`one.template.instantiate`,
so the template's permissions decide who may use the type) plus the AMI as DISK, a NIC on
the subnet's network, CONTEXT with the SSH key and user data, and the EC2 facts in the
VM's USER_TEMPLATE. A launch that fails half way removes what it made.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ec2gw.actions import instance_view as view
from ec2gw.actions import launch_tokens
from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.images import IMAGE_STATES, is_ami
from ec2gw.actions.instance_types import instance_type_templates
from ec2gw.actions.keypairs import public_key_of
from ec2gw.actions.regions import availability_zones
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, idempotency, ids, pages, tags
from ec2gw.one import documents, states
from ec2gw.one.errors import ACTION, AUTHORIZATION, INTERNAL, NO_EXISTS, OneError, to_ec2_error
from ec2gw.protocol.errors import EC2Error, invalid_value, missing_parameter
from ec2gw.protocol.serializer import Xml

log = logging.getLogger("ec2gw.instances")

MAX_INSTANCES_PER_REQUEST = 100
MAX_USER_DATA = 16 * 1024
RECENT_TERMINATED_LISTED = 200  # newest DONE VMs read to show recently terminated ones
_launch_tokens = launch_tokens.TokenIndex()  # ClientToken -> VM ids, read incrementally
CONVERTED_PER_TURN = 200  # VMs converted between two turns of the event loop
T = TypeVar("T")
V = TypeVar("V")  # a VM document, or whatever the caller converts


# --- reading VMs -------------------------------------------------------------------------


async def zones_of(ctx: RequestContext) -> view.Zones:
    zones = await availability_zones(ctx)
    region = zones[0]["RegionName"] if zones else ""
    return view.Zones(
        region=region,
        vpc_id=ids.VPC.encode(ctx.settings.gateway.zone_id),
        by_cluster={z["ClusterId"]: z["ZoneName"] for z in zones},
        default=zones[0]["ZoneName"] if zones else "",
    )


def _visible_by_id(
    ctx: RequestContext, pools: Sequence[documents.Element]
) -> dict[int, documents.Element]:
    """The caller's own VMs by id, hiding rolled-back ones and long-terminated ones."""
    now = time.time()
    keep = ctx.settings.gateway.terminated_visible_seconds
    visible = {}
    for pool in pools:
        for vm in pool.iterfind("VM"):
            listed = view.listing(vm)
            if listed.uid != ctx.uid or listed.hidden:
                continue
            if listed.state == states.DONE and now - listed.ended > keep:
                continue
            visible[listed.vm_id] = vm
    return visible


async def vms_by_ids(ctx: RequestContext, instance_ids: Sequence[str]) -> list[documents.Element]:
    """The caller's VMs for these ids, in the order asked; NotFound names the unknown ones."""
    one_ids = list(dict.fromkeys(ids.INSTANCE.decode(i) for i in instance_ids))
    pool = await ctx.one_doc("one.vmpool.infoset", ",".join(map(str, one_ids)), True)
    found = _visible_by_id(ctx, [pool])
    missing = [ids.INSTANCE.encode(i) for i in one_ids if i not in found]
    if missing:
        raise ids.INSTANCE.missing(missing)
    return [found[i] for i in one_ids]


async def my_vms(ctx: RequestContext) -> list[documents.Element]:
    """All the caller's live VMs and its recently terminated ones, oldest first."""
    alive, done = await asyncio.gather(
        ctx.one_doc("one.vmpool.infoextended", -3, -1, -1, states.ANY_BUT_DONE),
        ctx.one_doc("one.vmpool.infoextended", -3, 0, -RECENT_TERMINATED_LISTED, states.DONE),
    )
    vms = _visible_by_id(ctx, [alive, done])
    return [vms[i] for i in sorted(vms)]


async def _requested_vms(
    ctx: RequestContext, params: dict[str, Any]
) -> tuple[list[documents.Element], view.Zones]:
    """The VMs a Describe call names with InstanceId.N, or all of the caller's."""
    pages.no_max_results_with(params, "InstanceIds", "instancesSet")
    wanted = params.get("InstanceIds")
    return await asyncio.gather(vms_by_ids(ctx, wanted) if wanted else my_vms(ctx), zones_of(ctx))


async def _in_turns(
    vms: Sequence[V],
    convert: Callable[[V], T],
    keep: Callable[[T], bool] = lambda _: True,
) -> list[T]:
    """`convert(vm)` of each VM, those `keep` accepts, giving the event loop back every
    `CONVERTED_PER_TURN` VMs: converting 10,000 would otherwise hold the worker for about
    a second, and every request queued behind it with it."""
    converted = []
    for index, vm in enumerate(vms):
        if index and index % CONVERTED_PER_TURN == 0:
            await asyncio.sleep(0)
        item = convert(vm)
        if keep(item):
            converted.append(item)
    return converted


def _reservations(
    instances: Iterable[tuple[str, dict[str, Any] | Xml]], owner: str
) -> list[dict[str, Any]]:
    """Reservations of (reservation id, instance) pairs, in the order first seen."""
    grouped: dict[str, list[dict[str, Any] | Xml]] = defaultdict(list)
    for reservation_id, instance in instances:
        grouped[reservation_id].append(instance)
    return [
        {"ReservationId": rid, "OwnerId": owner, "Groups": [], "Instances": members}
        for rid, members in grouped.items()
    ]


@action(
    "DescribeInstances",
    opennebula="one.vmpool.infoset(ids) or one.vmpool.infoextended(-3) (own VMs, recently "
    "DONE ones for an hour)",
)
async def describe_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms, zones = await _requested_vms(ctx, params)
    finish_dry_run(params)
    wanted = params.get("Filters") or []
    # Tag filters first, on each VM's tags alone: only the VMs they keep are converted.
    by_tag = [f for f in wanted if filters.is_tag_filter(f.get("Name") or "")]
    others = [f for f in wanted if not filters.is_tag_filter(f.get("Name") or "")]
    if by_tag:
        tagged = filters.compile_filters(by_tag, {}, lambda tags: tags)
        vms = [vm for vm in vms if tagged(view.vm_tags(vm))]
    if others:  # judged on the instances themselves
        keep = filters.compile_filters(others, view.INSTANCE_FILTERS, view.tags_of)
        instances = await _in_turns(vms, lambda vm: view.to_instance(vm, zones), keep)
        chosen, token = pages.page(instances, params, action="DescribeInstances")
        pairs: Iterable[tuple[str, dict[str, Any] | Xml]] = (
            (i["ReservationId"], i) for i in chosen
        )
    else:  # one page of VMs is all that needs converting
        page_vms, token = pages.page(vms, params, action="DescribeInstances")
        pairs = await _in_turns(page_vms, lambda vm: view.instance_xml(vm, zones))
    return {"Reservations": _reservations(pairs, ctx.account_id), "NextToken": token}


# --- launching ---------------------------------------------------------------------------


def _decode_user_data(value: str | None) -> str | None:
    """Validate base64 user data (EC2 limits the decoded size to 16 KB)."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EC2Error("InvalidParameterValue", "Invalid BASE64 encoding of user data") from None
    if len(raw) > MAX_USER_DATA:
        raise EC2Error("InvalidParameterValue", f"User data is limited to {MAX_USER_DATA} bytes")
    return base64.b64encode(raw).decode()


async def _by_client_token(ctx: RequestContext, token: str) -> list[documents.Element]:
    """The caller's visible VMs (live, or terminated within the hour) launched with `token`,
    in launch order: EC2 honours a token after its instance has been terminated too."""

    async def read_since(newest: int) -> Iterable[documents.Element]:
        if newest < 0:
            return await my_vms(ctx)
        pool = await ctx.one_doc("one.vmpool.infoextended", -3, newest + 1, -1, states.ANY)
        return pool.iterfind("VM")

    user = (ctx.one_client.endpoint, ctx.uid)
    candidates = await _launch_tokens.vm_ids(user, token, read_since)
    if not candidates:
        return []
    pool = await ctx.one_doc("one.vmpool.infoset", ",".join(map(str, candidates)), True)
    found = {
        vm_id: vm
        for vm_id, vm in _visible_by_id(ctx, [pool]).items()
        if view.user_attr(vm, view.CLIENT_TOKEN) == token
    }
    gone = set(candidates) - found.keys()
    if gone:
        _launch_tokens.forget(user, token, gone)
    return [found[vm_id] for vm_id in sorted(found)]


def _smallest(types: dict[str, documents.Element]) -> str | None:
    """The default instance type: the smallest offered (EC2's own default is m1.small)."""

    def size(name: str) -> tuple[int, int, str]:
        t = types[name]
        return (
            documents.integer(t, "TEMPLATE/MEMORY"),
            documents.integer(t, "TEMPLATE/VCPU"),
            name,
        )

    return min(types, key=size, default=None)


async def _resolve_image(ctx: RequestContext, image_id: str) -> documents.Element:
    one_id = ids.IMAGE.decode(image_id)
    try:
        image = await ctx.one_doc("one.image.info", one_id)
    except OneError as err:
        if err.code in (NO_EXISTS, AUTHORIZATION):
            raise ids.IMAGE.missing(image_id) from None
        raise
    if not is_ami(image):
        raise ids.IMAGE.missing(image_id)
    if IMAGE_STATES.get(documents.integer(image, "STATE")) != "available":
        raise EC2Error("InvalidAMIID.Unavailable", f"The image '{image_id}' is not available")
    return image


async def _resolve_subnet(
    ctx: RequestContext, subnet_id: str | None, zone: str | None
) -> dict[str, Any] | None:
    """The subnet to launch into: the one asked for, else the default of the zone."""
    from ec2gw.actions.vpc import subnets

    if subnet_id:
        ids.SUBNET.decode(subnet_id)
    known = await subnets(ctx)
    if subnet_id:
        chosen = next((s for s in known if s["SubnetId"] == subnet_id), None)
        if chosen is None:
            raise ids.SUBNET.missing(subnet_id)
        if zone and chosen["AvailabilityZone"] != zone:
            raise EC2Error(
                "InvalidParameterValue",
                f"The subnet {subnet_id} is not in the availability zone {zone}",
            )
        return chosen
    return next(
        (s for s in known if s["DefaultForAz"] and (zone is None or s["AvailabilityZone"] == zone)),
        None,
    )


def _primary_interface(params: dict[str, Any]) -> tuple[str | None, list[str]]:
    """Subnet and security group ids, given for the instance or on its one network
    interface (`NetworkInterface.1.SubnetId` / `.SecurityGroupId.N`, as Ansible sends)."""
    interfaces = params.get("NetworkInterfaces") or []
    if not interfaces:
        return params.get("SubnetId"), list(params.get("SecurityGroupIds") or [])
    (interface, *others) = interfaces
    if others or interface.get("DeviceIndex", 0) != 0 or interface.get("NetworkInterfaceId"):
        raise EC2Error(
            "InvalidParameterValue",
            "Only one new network interface, at device index 0, can be given at launch",
        )
    if interface.get("AssociatePublicIpAddress"):
        raise EC2Error(
            "InvalidParameterValue",
            "Public addresses are not assigned at launch: allocate and associate an address",
        )
    if params.get("SubnetId") or params.get("SecurityGroupIds") or params.get("SecurityGroups"):
        raise EC2Error(
            "InvalidParameterCombination",
            "Network interfaces and an instance-level subnet ID or security groups may not be "
            "specified on the same request",
        )
    return interface.get("SubnetId"), list(interface.get("Groups") or [])


async def _resolve_security_groups(ctx: RequestContext, group_ids: list[str]) -> list[int]:
    one_ids = [ids.SECURITY_GROUP.decode(g) for g in group_ids]
    for group_id, one_id in zip(group_ids, one_ids, strict=True):
        try:
            await ctx.one("one.secgroup.info", one_id)
        except OneError as err:
            if err.code in (NO_EXISTS, AUTHORIZATION):
                raise ids.SECURITY_GROUP.missing(group_id) from None
            raise
    return one_ids


async def _launch_groups(
    ctx: RequestContext, params: dict[str, Any], group_ids: list[str]
) -> list[int]:
    """The OpenNebula groups the instance's NIC asks for: those given (by id or name), else
    OpenNebula's group 0, EC2's `default` group, named explicitly so that the instance
    shows the group it is in whatever its network adds (oned adds the network's
    SECURITY_GROUPS to every NIC; `ec2gw check` warns when those open a subnet)."""
    from ec2gw.actions.security_groups import DEFAULT_GROUP, group_ids_by_name

    if params.get("SecurityGroups"):
        group_ids = group_ids + await group_ids_by_name(ctx, params["SecurityGroups"])
    if not group_ids:
        return [DEFAULT_GROUP]
    return await _resolve_security_groups(ctx, list(dict.fromkeys(group_ids)))


async def _fitting(
    ctx: RequestContext, template: documents.Element, cluster: int | None, wanted: int
) -> int | None:
    """How many VMs of this size the cluster's hosts can still take (None: cannot tell)."""
    try:
        pool = await ctx.infrastructure("one.hostpool.info")
    except OneError as err:
        if err.code == AUTHORIZATION:
            return None  # the gateway's account may not list hosts: let the scheduler decide
        raise
    hosts = [
        h
        for h in pool.iterfind("HOST")
        if documents.integer(h, "STATE") in (0, 1, 2)
        and (cluster is None or documents.integer(h, "CLUSTER_ID") == cluster)
    ]
    cpu = round(documents.number(template, "TEMPLATE/CPU", 1.0) * 100)
    memory = documents.integer(template, "TEMPLATE/MEMORY") * 1024
    fits = 0
    for host in hosts:
        free_cpu = documents.integer(host, "HOST_SHARE/MAX_CPU") - documents.integer(
            host, "HOST_SHARE/CPU_USAGE"
        )
        free_mem = documents.integer(host, "HOST_SHARE/MAX_MEM") - documents.integer(
            host, "HOST_SHARE/MEM_USAGE"
        )
        by_cpu = free_cpu // cpu if cpu > 0 else wanted
        by_mem = free_mem // memory if memory > 0 else wanted
        fits += max(0, min(by_cpu, by_mem))
        if fits >= wanted:
            return wanted
    return fits


def _launch_error(err: OneError, count: int) -> EC2Error:
    if err.code == AUTHORIZATION and "quota" in err.message.lower():
        return EC2Error(
            "InstanceLimitExceeded",
            f"You have requested more instances ({count}) than your current instance limit "
            "allows for the specified instance type.",
        )
    if err.code == NO_EXISTS:
        return EC2Error("InvalidParameterValue", "A resource needed by the launch does not exist")
    return to_ec2_error(err)


def _type_context(type_template: documents.Element) -> dict[str, str]:
    """The instance type's own CONTEXT members (start scripts, ONEGATE token...).

    `one.template.instantiate` merges the extra template with `Template::merge`, which
    replaces a same-named attribute whole: the launch sends the union itself."""
    context = type_template.find("TEMPLATE/CONTEXT")
    return {c.tag: c.text or "" for c in (context if context is not None else [])}


def _requirements(type_template: documents.Element, cluster: int | None) -> str:
    """The type's SCHED_REQUIREMENTS ANDed with the zone's cluster (replaced whole by
    instantiate's merge, like CONTEXT)."""
    own = documents.text(type_template, "TEMPLATE/SCHED_REQUIREMENTS").strip()
    if cluster is None:
        return own
    zone = f"CLUSTER_ID = {cluster}"
    return f"({own}) & ({zone})" if own else zone


async def _roll_back(ctx: RequestContext, vm_ids: list[int]) -> None:
    """Remove VMs made by a launch that failed: hide them, then terminate them, waiting as
    TerminateInstances does for those the scheduler has meanwhile moved to PROLOG/BOOT."""
    deadline = time.monotonic() + ctx.settings.gateway.terminate_wait_seconds

    async def remove(vm_id: int) -> None:
        try:
            await ctx.one("one.vm.update", vm_id, f'{view.HIDDEN} = "YES"', 1)
            await _terminate(ctx, await ctx.one_doc("one.vm.info", vm_id), deadline)
        except (OneError, EC2Error):
            # Best effort: the VM stays hidden or is left for the operator; log it.
            log.error("request_id=%s could not roll back VM %s", ctx.request_id, vm_id)

    await asyncio.gather(*(remove(vm_id) for vm_id in vm_ids))


@action(
    "RunInstances",
    opennebula="one.template.instantiate of the instance-type template with DISK=[IMAGE_ID], "
    "NIC, CONTEXT (the type's with the SSH key and user data) and EC2_* facts in USER_TEMPLATE",
    oned="instantiate merges the extra template with Template::merge, which replaces same-named "
    "attributes: DISK and NIC replace the type's, CONTEXT and SCHED_REQUIREMENTS are sent as the "
    "union with the type's; rollback: HIDDEN=YES, terminate-hard once out of PROLOG/BOOT "
    "(bounded wait)",
)
async def run_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("ImageId"):
        raise missing_parameter("ImageId")
    min_count, max_count = params["MinCount"], params["MaxCount"]
    if min_count < 1:
        raise invalid_value("MinCount", min_count, "MinCount must be at least 1.")
    if max_count < min_count:
        raise invalid_value("MaxCount", max_count, "MaxCount must not be less than MinCount.")
    if max_count > MAX_INSTANCES_PER_REQUEST:
        raise invalid_value(
            "MaxCount", max_count, f"At most {MAX_INSTANCES_PER_REQUEST} instances per request."
        )
    token = params.get("ClientToken")
    if not token:
        return await _launch(ctx, params, None)
    # One launch per (user, token) at a time: a retry racing its own first attempt finds
    # the first attempt's VMs instead of launching twice.
    async with idempotency.lock_for(("instances", ctx.uid, idempotency.check_token(token))):
        existing = await _by_client_token(ctx, token)
        if not existing:
            return await _launch(ctx, params, token)
        if view.user_attr(existing[0], view.REQUEST_DIGEST) != idempotency.request_digest(params):
            raise idempotency.mismatch()
        finish_dry_run(params)
        zones = await zones_of(ctx)
        return _reservations([view.instance_xml(vm, zones) for vm in existing], ctx.account_id)[0]


async def _launch(ctx: RequestContext, params: dict[str, Any], token: str | None) -> dict:
    image = await _resolve_image(ctx, params["ImageId"])
    user_data = _decode_user_data(params.get("UserData"))
    instance_tags = tags.from_specifications(params.get("TagSpecifications"), "instance")
    types = await instance_type_templates(ctx)
    type_name = params.get("InstanceType") or _smallest(types)
    if type_name not in types:
        raise invalid_value("InstanceType", type_name)
    type_template = types[type_name]
    public_key = await public_key_of(ctx, params["KeyName"]) if params.get("KeyName") else None
    zones = await zones_of(ctx)
    requested_zone = (params.get("Placement") or {}).get("AvailabilityZone")
    by_name = {name: cid for cid, name in zones.by_cluster.items()}
    if requested_zone and requested_zone not in by_name:
        raise EC2Error("InvalidParameterValue", f"Invalid availability zone: [{requested_zone}]")
    subnet_id, group_ids = _primary_interface(params)
    subnet = await _resolve_subnet(ctx, subnet_id, requested_zone)
    if subnet is not None:
        requested_zone = subnet["AvailabilityZone"]
    cluster = by_name.get(requested_zone) if requested_zone else None
    network = ids.SUBNET.decode(subnet["SubnetId"]) if subnet else None
    groups = await _launch_groups(ctx, params, group_ids)
    finish_dry_run(params)

    count = params["MaxCount"]
    fitting = await _fitting(ctx, type_template, cluster, count)
    if fitting is not None:
        if fitting < params["MinCount"]:
            raise EC2Error(
                "InsufficientInstanceCapacity",
                f"We currently do not have sufficient {type_name} capacity in the "
                f"Availability Zone you requested ({requested_zone or zones.default}).",
            )
        count = min(count, fitting)

    facts: list[tuple[str, Any]] = [
        (view.INSTANCE_TYPE, type_name),
        (view.REQUEST_DIGEST, idempotency.request_digest(params)),
        (view.AVAILABILITY_ZONE, requested_zone or zones.default),
    ]
    if token:
        facts.append((view.CLIENT_TOKEN, token))
    if params.get("KeyName"):
        facts.append((view.KEY_NAME, params["KeyName"]))
    if params.get("DisableApiTermination"):
        facts.append((view.DISABLE_API_TERMINATION, "YES"))
    if params.get("InstanceInitiatedShutdownBehavior"):
        facts.append((view.SHUTDOWN_BEHAVIOR, params["InstanceInitiatedShutdownBehavior"]))
    hardware: list[tuple[str, Any]] = [("DISK", {"IMAGE_ID": documents.integer(image, "ID")})]
    if network is not None:
        nic = {"NETWORK_ID": network, "SECURITY_GROUPS": ",".join(map(str, groups))}
        hardware.append(("NIC", nic))
    context: dict[str, Any] = {**_type_context(type_template), "NETWORK": "YES"}
    context["SET_HOSTNAME"] = "$NAME"
    if public_key:
        context["SSH_PUBLIC_KEY"] = public_key
    if user_data:
        context["USER_DATA"] = user_data
        context["USERDATA_ENCODING"] = "base64"
    hardware.append(("CONTEXT", context))
    requirements = _requirements(type_template, cluster)
    if requirements:
        hardware.append(("SCHED_REQUIREMENTS", requirements))
    tag_vectors = documents.tag_vectors(instance_tags)
    name = instance_tags.get("Name", "")

    created: list[int] = []
    try:
        for index in range(count):
            extra = [*hardware, *facts, (view.LAUNCH_INDEX, index), *tag_vectors]
            if created:
                extra.append((view.RESERVATION, ids.RESERVATION.encode(created[0])))
            vm_id = await ctx.one(
                "one.template.instantiate",
                documents.integer(type_template, "ID"),
                name,
                False,
                documents.template_text(extra),
                False,
            )
            created.append(vm_id)
    except OneError as err:
        if len(created) < params["MinCount"]:
            await _roll_back(ctx, created)
            raise _launch_error(err, count) from None
    except BaseException:
        await _roll_back(ctx, created)
        raise
    vms = await vms_by_ids(ctx, [ids.INSTANCE.encode(i) for i in created])
    return _reservations([view.instance_xml(vm, zones) for vm in vms], ctx.account_id)[0]


# --- state changes -----------------------------------------------------------------------


def _change(instance_id: str, before: states.InstanceState, after: states.InstanceState) -> dict:
    return {
        "InstanceId": instance_id,
        "PreviousState": {"Code": before.code, "Name": before.name},
        "CurrentState": {"Code": after.code, "Name": after.name},
    }


def _incorrect(instance_id: str, what: str) -> EC2Error:
    return EC2Error(
        "IncorrectInstanceState",
        f"This instance '{instance_id}' is not in a state from which it can be {what}.",
    )


# The states oned's DispatchManager takes each action in (poweroff, reboot, resume), so
# that a request is refused as a whole before any of its instances changes (as EC2 does),
# rather than midway.
_UNKNOWN, _SHUTDOWN_POWEROFF = 16, 18
_ACTIVE_LCM_ACCEPTED = {
    "poweroff": {3, _UNKNOWN},  # RUNNING, UNKNOWN
    "poweroff-hard": {3, _UNKNOWN, _SHUTDOWN_POWEROFF},  # and a stop that is stuck
    "reboot": {3},
    "resume": {_UNKNOWN},
}
_RESUMABLE_STATES = {4, 5, 8, 9}  # STOPPED, SUSPENDED, POWEROFF, UNDEPLOYED


def _accepts(vm: documents.Element, one_action: str) -> bool:
    raw_state, lcm = _lcm(vm)
    if one_action == "resume" and raw_state in _RESUMABLE_STATES:
        return True
    return raw_state == states.ACTIVE and lcm in _ACTIVE_LCM_ACCEPTED[one_action]


def _instance_limit() -> EC2Error:
    return EC2Error(
        "InstanceLimitExceeded",
        "Your quota allows for 0 more running instance(s). You requested at least 1.",
    )


async def _act(ctx: RequestContext, one_action: str, vm: documents.Element, what: str) -> None:
    try:
        await ctx.one("one.vm.action", one_action, documents.integer(vm, "ID"))
    except OneError as err:
        # oned checks the running-VM quota of a resume first and refuses it as ACTION.
        if err.code in (ACTION, AUTHORIZATION) and "quota" in err.message.lower():
            raise _instance_limit() from None
        if err.code == ACTION:
            raise _incorrect(view.instance_id(vm), what) from None
        raise


def _lcm(vm: documents.Element) -> tuple[int, int]:
    return documents.integer(vm, "STATE"), documents.integer(vm, "LCM_STATE")


Plan = list[tuple[documents.Element, states.InstanceState, str | None]]


async def _carry_out(
    ctx: RequestContext, plan: Plan, what: str, after: states.InstanceState
) -> list[dict]:
    """Send each planned action (None: nothing to do) and describe the state changes."""
    changes = []
    for vm, state, one_action in plan:
        if one_action is None:
            changes.append(_change(view.instance_id(vm), state, state))
        else:
            await _act(ctx, one_action, vm, what)
            changes.append(_change(view.instance_id(vm), state, after))
    return changes


async def _settled(
    ctx: RequestContext,
    vms: Sequence[documents.Element],
    busy: Callable[[documents.Element], bool],
) -> list[documents.Element]:
    """The VMs as they are once none is `busy` (in a transient state oned refuses the
    action in: a hotplug, a save, a migration, PROLOG/BOOT...), waiting for all of them
    together, bounded by [gateway] terminate_wait_seconds; those still busy at the deadline
    come back as last seen (for the caller to refuse, before acting on any)."""
    deadline = time.monotonic() + ctx.settings.gateway.terminate_wait_seconds
    return list(await asyncio.gather(*(_wait_for(ctx, vm, busy, deadline) for vm in vms)))


def _busy_for(one_action: str, *names: str) -> Callable[[documents.Element], bool]:
    """Busy: an ACTIVE VM that EC2 calls one of `names` but oned does not take
    `one_action` from (yet)."""

    def busy(vm: documents.Element) -> bool:
        return (
            documents.integer(vm, "STATE") == states.ACTIVE
            and view.state_of(vm).name in names
            and not _accepts(vm, one_action)
        )

    return busy


@action(
    "StartInstances",
    opennebula='one.vm.action("resume") on stopped VMs (STOPPED, SUSPENDED, POWEROFF, '
    "UNDEPLOYED), all checked first (a transient state waited out, bounded: [gateway] "
    "terminate_wait_seconds); a running-VM quota refusal is InstanceLimitExceeded",
    oned="resume: STOPPED/UNDEPLOYED to PENDING, SUSPENDED restored, POWEROFF/UNKNOWN booted; "
    "other states ACTION; the running quota is checked first (ACTION too); one by one",
)
async def start_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms = await vms_by_ids(ctx, params["InstanceIds"])
    vms = await _settled(ctx, vms, _busy_for("resume", "stopped"))
    plan: Plan = []
    for vm in vms:
        state = view.state_of(vm)
        if state.name in ("running", "pending"):
            plan.append((vm, state, None))
        elif state.name == "stopped" and _accepts(vm, "resume"):
            plan.append((vm, state, "resume"))
        else:  # terminated, on its way somewhere, or in an operation done while off
            raise _incorrect(view.instance_id(vm), "started")
    finish_dry_run(params)
    return {"StartingInstances": await _carry_out(ctx, plan, "started", states.PENDING)}


@action(
    "StopInstances",
    opennebula='one.vm.action("poweroff") on RUNNING/UNKNOWN VMs, all checked first (a '
    "transient state waited out, bounded: [gateway] terminate_wait_seconds); with "
    'Force "poweroff-hard", also for a stop stuck in SHUTDOWN_POWEROFF',
    oned="poweroff only ACTIVE RUNNING/UNKNOWN, poweroff-hard also SHUTDOWN_POWEROFF; "
    "asynchronous (SHUTDOWN_POWEROFF until the driver answers); one by one",
)
async def stop_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms = await vms_by_ids(ctx, params["InstanceIds"])
    one_action = "poweroff-hard" if params.get("Force") else "poweroff"
    vms = await _settled(ctx, vms, _busy_for(one_action, "running", "pending"))
    plan: Plan = []
    for vm in vms:
        state = view.state_of(vm)
        if state.name in ("running", "stopping") and _accepts(vm, one_action):
            plan.append((vm, state, one_action))
        elif state.name in ("stopped", "stopping"):
            plan.append((vm, state, None))
        else:  # terminated, pending, or running but still busy (a hotplug, a migration...)
            raise _incorrect(view.instance_id(vm), "stopped")
    finish_dry_run(params)
    return {"StoppingInstances": await _carry_out(ctx, plan, "stopped", states.STOPPING)}


@action(
    "RebootInstances",
    opennebula='one.vm.action("reboot") on RUNNING VMs, all checked first (a transient '
    "state waited out, bounded: [gateway] terminate_wait_seconds)",
    oned="reboot only ACTIVE RUNNING (ACTION otherwise); one by one",
)
async def reboot_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms = await vms_by_ids(ctx, params["InstanceIds"])
    vms = await _settled(ctx, vms, _busy_for("reboot", "running", "pending"))
    for vm in vms:
        if not _accepts(vm, "reboot"):
            raise _incorrect(view.instance_id(vm), "rebooted")
    finish_dry_run(params)
    for vm in vms:
        await _act(ctx, "reboot", vm, "rebooted")
    return {}


# oned's DispatchManager::terminate: the states it terminates from (any other ACTIVE one,
# a transient PROLOG, BOOT, hotplug, migration, save..., is "wrong state").
_TERMINABLE_STATES = {0, 1, 2, 4, 5, 6, 8, 9, 10, 11}  # INIT ... CLONING_FAILURE, DONE
_TERMINABLE_LCM = {3, 12, 16} | {  # RUNNING, SHUTDOWN (with terminate-hard), UNKNOWN
    lcm for lcm, (name, _) in states.LCM_STATES.items() if name.endswith("_FAILURE")
}
_ALREADY_TERMINATING_LCM = {11, 23}  # EPILOG, CLEANUP_DELETE: on their way to DONE
TERMINATE_POLL_SECONDS = 0.2


def _terminable(vm: documents.Element) -> bool:
    raw_state, lcm = _lcm(vm)
    return raw_state in _TERMINABLE_STATES or (
        raw_state == states.ACTIVE and lcm in _TERMINABLE_LCM
    )


async def _wait_for(
    ctx: RequestContext,
    vm: documents.Element,
    busy: Callable[[documents.Element], bool],
    deadline: float,
) -> documents.Element:
    """The VM re-read every TERMINATE_POLL_SECONDS while `busy(vm)`, until `deadline`:
    the wait of every instance-state action for a transient state oned refuses to end."""
    while busy(vm) and time.monotonic() < deadline:
        await asyncio.sleep(TERMINATE_POLL_SECONDS)
        vm = await ctx.one_doc("one.vm.info", documents.integer(vm, "ID"))
    return vm


def _terminate_busy(vm: documents.Element) -> bool:
    raw_state, lcm = _lcm(vm)
    if raw_state == states.DONE or (raw_state == states.ACTIVE and lcm in _ALREADY_TERMINATING_LCM):
        return False
    return not _terminable(vm)


async def _terminate(ctx: RequestContext, vm: documents.Element, deadline: float) -> dict:
    """Terminate one VM, first waiting (until `deadline`) for a transient state oned
    refuses to end, as EC2 terminates pending instances; IncorrectInstanceState if the
    VM does not get to a state oned accepts in time."""
    instance_id, vm_id = view.instance_id(vm), documents.integer(vm, "ID")
    before = view.state_of(vm)
    while True:
        vm = await _wait_for(ctx, vm, _terminate_busy, deadline)
        raw_state, lcm = _lcm(vm)
        if raw_state == states.DONE:
            return _change(instance_id, before, states.TERMINATED)
        if raw_state == states.ACTIVE and lcm in _ALREADY_TERMINATING_LCM:
            return _change(instance_id, before, states.SHUTTING_DOWN)
        if not _terminable(vm):
            raise _incorrect(instance_id, "terminated")
        graceful = raw_state == states.ACTIVE and lcm in (3, 16)
        try:
            one_action = "terminate" if graceful else "terminate-hard"
            await ctx.one("one.vm.action", one_action, vm_id)
            return _change(instance_id, before, states.SHUTTING_DOWN)
        except OneError as err:  # it moved on in between: look again
            if err.code != ACTION:
                raise
        if time.monotonic() >= deadline:
            raise _incorrect(instance_id, "terminated")
        await asyncio.sleep(TERMINATE_POLL_SECONDS)
        vm = await ctx.one_doc("one.vm.info", vm_id)


@action(
    "TerminateInstances",
    opennebula='one.vm.action("terminate") when running, "terminate-hard" otherwise',
    oned="terminate: RUNNING/UNKNOWN; terminate-hard also PENDING/HOLD/POWEROFF/STOPPED/"
    "UNDEPLOYED/SUSPENDED/SHUTDOWN/*_FAILURE; other ACTIVE states (PROLOG, BOOT, hotplugs) "
    "waited out, bounded ([gateway] terminate_wait_seconds)",
)
async def terminate_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms = await vms_by_ids(ctx, params["InstanceIds"])
    for vm in vms:
        if view.user_attr(vm, view.DISABLE_API_TERMINATION) == "YES":
            raise EC2Error(
                "OperationNotPermitted",
                f"The instance '{view.instance_id(vm)}' may not be terminated. Modify its "
                "'disableApiTermination' instance attribute and try again.",
            )
    finish_dry_run(params)
    deadline = time.monotonic() + ctx.settings.gateway.terminate_wait_seconds
    results = await asyncio.gather(
        *(_terminate(ctx, vm, deadline) for vm in vms), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return {"TerminatingInstances": results}


# --- status and attributes ---------------------------------------------------------------


def _status(vm: documents.Element, state: states.InstanceState) -> str:
    if state.name == "pending":
        return "initializing"
    if state.name != "running":
        return "not-applicable"
    return "impaired" if _lcm(vm) == (states.ACTIVE, 16) else "ok"


def _status_entry(vm: documents.Element, zones: view.Zones) -> dict[str, Any]:
    state = view.state_of(vm)
    status = _status(vm, state)
    reachability = {"ok": "passed", "impaired": "failed", "initializing": "initializing"}.get(
        status
    )
    summary = {
        "Status": status,
        "Details": [{"Name": "reachability", "Status": reachability}] if reachability else [],
    }
    return {
        "InstanceId": view.instance_id(vm),
        "AvailabilityZone": view.to_instance(vm, zones)["Placement"]["AvailabilityZone"],
        "InstanceState": {"Code": state.code, "Name": state.name},
        "InstanceStatus": summary,
        "SystemStatus": summary,
        "Events": [],
    }


STATUS_FILTERS: dict[str, filters.Extractor] = {
    "availability-zone": lambda s: s["AvailabilityZone"],
    "event.code": lambda s: None,
    "event.description": lambda s: None,
    "event.not-after": lambda s: None,
    "event.not-before": lambda s: None,
    "instance-state-code": lambda s: s["InstanceState"]["Code"],
    "instance-state-name": lambda s: s["InstanceState"]["Name"],
    "instance-status.reachability": lambda s: [d["Status"] for d in s["InstanceStatus"]["Details"]],
    "instance-status.status": lambda s: s["InstanceStatus"]["Status"],
    "system-status.reachability": lambda s: [d["Status"] for d in s["SystemStatus"]["Details"]],
    "system-status.status": lambda s: s["SystemStatus"]["Status"],
}


@action(
    "DescribeInstanceStatus",
    opennebula="as DescribeInstances; UNKNOWN (host not monitored) reads as impaired",
)
async def describe_instance_status(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    vms, zones = await _requested_vms(ctx, params)
    finish_dry_run(params)
    if not params.get("IncludeAllInstances"):
        vms = [vm for vm in vms if view.state_of(vm).name == "running"]
    entries = [_status_entry(vm, zones) for vm in vms]
    entries = filters.apply(entries, params.get("Filters"), STATUS_FILTERS)
    chosen, token = pages.page(entries, params, action="DescribeInstanceStatus")
    return {"InstanceStatuses": list(chosen), "NextToken": token}


ATTRIBUTES = (
    "instanceType",
    "kernel",
    "ramdisk",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "rootDeviceName",
    "blockDeviceMapping",
    "productCodes",
    "sourceDestCheck",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "enclaveOptions",
    "disableApiStop",
)


@action(
    "DescribeInstanceAttribute",
    opennebula="one.vm.info: USER_TEMPLATE EC2_* facts, CONTEXT/USER_DATA, disks, NICs",
)
async def describe_instance_attribute(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    attribute = params["Attribute"]
    if attribute not in ATTRIBUTES:
        raise invalid_value("Attribute", attribute)
    (listed,) = await vms_by_ids(ctx, [params["InstanceId"]])
    finish_dry_run(params)
    vm = await ctx.one_doc("one.vm.info", documents.integer(listed, "ID"))
    instance = view.to_instance(vm, await zones_of(ctx))
    user_data = documents.text(vm, "TEMPLATE/CONTEXT/USER_DATA")
    values: dict[str, Any] = {
        "instanceType": {"InstanceType": {"Value": instance["InstanceType"]}},
        "kernel": {"KernelId": {}},
        "ramdisk": {"RamdiskId": {}},
        "userData": {"UserData": {"Value": user_data} if user_data else {}},
        "disableApiTermination": {
            "DisableApiTermination": {
                "Value": view.user_attr(vm, view.DISABLE_API_TERMINATION) == "YES"
            }
        },
        "instanceInitiatedShutdownBehavior": {
            "InstanceInitiatedShutdownBehavior": {
                "Value": view.user_attr(vm, view.SHUTDOWN_BEHAVIOR) or "stop"
            }
        },
        "rootDeviceName": {"RootDeviceName": {"Value": instance["RootDeviceName"]}},
        "blockDeviceMapping": {"BlockDeviceMappings": instance["BlockDeviceMappings"]},
        "productCodes": {"ProductCodes": []},
        "sourceDestCheck": {"SourceDestCheck": {"Value": True}},
        "groupSet": {"Groups": instance["SecurityGroups"]},
        "ebsOptimized": {"EbsOptimized": {"Value": False}},
        "sriovNetSupport": {"SriovNetSupport": {}},
        "enaSupport": {"EnaSupport": {"Value": False}},
        "enclaveOptions": {"EnclaveOptions": {"Enabled": False}},
        "disableApiStop": {"DisableApiStop": {"Value": False}},
    }
    return {"InstanceId": instance["InstanceId"], **values[attribute]}


def _attribute_change(params: dict[str, Any]) -> tuple[str, Any]:
    """The one attribute a ModifyInstanceAttribute call changes, and its new value."""
    given = [
        (name, params[key]["Value"])
        for name, key in (
            ("instanceType", "InstanceType"),
            ("userData", "UserData"),
            ("disableApiTermination", "DisableApiTermination"),
            ("instanceInitiatedShutdownBehavior", "InstanceInitiatedShutdownBehavior"),
        )
        if isinstance(params.get(key), dict) and "Value" in params[key]
    ]
    if params.get("Attribute"):
        if "Value" not in params:
            raise missing_parameter("Value")
        given.append((params["Attribute"], params["Value"]))
    if params.get("Groups"):
        raise EC2Error(
            "UnsupportedOperation",
            "Changing the security groups of an existing instance is not supported by ec2gw",
        )
    if len(given) != 1:
        raise EC2Error(
            "InvalidParameterCombination", "Exactly one attribute must be modified per call."
        )
    return given[0]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise invalid_value("Value", value)


# The stopped states in which oned both resizes (DispatchManager::resize) and updates the
# configuration (VirtualMachine::updateconf); SUSPENDED and STOPPED it refuses.
_RECONFIGURABLE_STATES = {8, 9}  # POWEROFF, UNDEPLOYED


def _not_stopped(instance_id: str) -> EC2Error:
    return EC2Error(
        "IncorrectInstanceState", f"The instance '{instance_id}' is not in the 'stopped' state."
    )


async def _change_type(
    ctx: RequestContext, vm: documents.Element, name: str, size: documents.Element
) -> None:
    """Resize the VM to the type `size` and label it `name`: the label first, put back if
    oned refuses the resize, so that a failure leaves the instance as it was."""
    vm_id, instance_id = documents.integer(vm, "ID"), view.instance_id(vm)
    resize = documents.template_text(
        [
            (key, documents.text(size, f"TEMPLATE/{key}"))
            for key in ("CPU", "VCPU", "MEMORY")
            if documents.text(size, f"TEMPLATE/{key}")
        ]
    )
    before = view.user_attr(vm, view.INSTANCE_TYPE) or ""
    await ctx.one("one.vm.update", vm_id, documents.template_text([(view.INSTANCE_TYPE, name)]), 1)
    try:
        await ctx.one("one.vm.resize", vm_id, resize, False)
    except OneError as err:  # refused: nothing changed but the label
        await ctx.one(
            "one.vm.update", vm_id, documents.template_text([(view.INSTANCE_TYPE, before)]), 1
        )
        if err.code == ACTION:
            raise _not_stopped(instance_id) from None
        raise


async def _change_user_data(ctx: RequestContext, vm: documents.Element, raw: bytes) -> None:
    """Set CONTEXT's USER_DATA in merge mode (append=1): in replace mode oned's updateconf
    erases the OS (firmware, boot order, UUID), FEATURES, GRAPHICS, CPU_MODEL... that the
    update does not name, and rebuilds CONTEXT from the update alone."""
    context = {"USER_DATA": base64.b64encode(raw).decode(), "USERDATA_ENCODING": "base64"}
    try:
        await ctx.one(
            "one.vm.updateconf",
            documents.integer(vm, "ID"),
            documents.template_text([("CONTEXT", context)]),
            1,
        )
    except OneError as err:  # a state oned refuses: INTERNAL 'cannot be updated in state'
        if err.code in (ACTION, INTERNAL) and "in state" in err.message:
            raise _not_stopped(view.instance_id(vm)) from None
        raise


@action(
    "ModifyInstanceAttribute",
    opennebula="instanceType: one.vm.update of EC2_INSTANCE_TYPE, then one.vm.resize "
    "(POWEROFF/UNDEPLOYED only); userData: one.vm.updateconf of CONTEXT in merge mode "
    "(POWEROFF/UNDEPLOYED only); others: one.vm.update of USER_TEMPLATE",
    oned="updateconf in replace mode would erase OS/FEATURES/GRAPHICS/CPU_MODEL..., so merge "
    "(append=1); updateconf and resize refuse SUSPENDED/STOPPED (INTERNAL, ACTION); a refused "
    "resize puts the type label back; others: update append=1, any state",
)
async def modify_instance_attribute(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name, value = _attribute_change(params)
    (vm,) = await vms_by_ids(ctx, [params["InstanceId"]])
    vm_id = documents.integer(vm, "ID")
    instance_id = view.instance_id(vm)
    reconfigurable = _lcm(vm)[0] in _RECONFIGURABLE_STATES
    if name == "instanceType":
        types = await instance_type_templates(ctx)
        if value not in types:
            raise invalid_value("InstanceType", value)
        if not reconfigurable:
            raise _not_stopped(instance_id)
        finish_dry_run(params)
        await _change_type(ctx, vm, value, types[value])
    elif name == "userData":
        if not reconfigurable:
            raise _not_stopped(instance_id)
        raw = value if isinstance(value, bytes) else str(value).encode()
        if len(raw) > MAX_USER_DATA:
            raise EC2Error(
                "InvalidParameterValue", f"User data is limited to {MAX_USER_DATA} bytes"
            )
        finish_dry_run(params)
        await _change_user_data(ctx, vm, raw)
    elif name == "disableApiTermination":
        flag = _as_bool(value)
        finish_dry_run(params)
        await ctx.one(
            "one.vm.update",
            vm_id,
            documents.template_text([(view.DISABLE_API_TERMINATION, "YES" if flag else "NO")]),
            1,
        )
    elif name == "instanceInitiatedShutdownBehavior":
        if value not in ("stop", "terminate"):
            raise invalid_value("InstanceInitiatedShutdownBehavior", value)
        finish_dry_run(params)
        await ctx.one(
            "one.vm.update", vm_id, documents.template_text([(view.SHUTDOWN_BEHAVIOR, value)]), 1
        )
    else:
        raise EC2Error(
            "UnsupportedOperation", f"Modifying the instance attribute '{name}' is not supported."
        )
    return {}


@action(
    "GetConsoleOutput",
    opennebula="none: OpenNebula keeps no console log; answers an empty output for own VMs",
)
async def get_console_output(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    await vms_by_ids(ctx, [params["InstanceId"]])
    finish_dry_run(params)
    return {"InstanceId": params["InstanceId"], "Timestamp": datetime.now(UTC), "Output": None}
