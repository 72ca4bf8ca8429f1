"""Hot-plugging disks and NICs into VMs: one operation at a time, in a state that allows it.

OpenNebula takes a disk or NIC hotplug only when the VM is RUNNING or POWEROFF, and answers
ACTION while the previous hotplug is still under way (HOTPLUG, HOTPLUG_NIC, ...). EC2
clients expect back-to-back Attach/Detach/Associate calls to work, so each operation first
waits briefly for the VM to settle; a VM that is in any other state is `IncorrectState`.
"""

from __future__ import annotations

import asyncio
import time

from ec2gw.actions.context import RequestContext
from ec2gw.ec2 import ids
from ec2gw.one import documents
from ec2gw.one.errors import ACTION, OneError
from ec2gw.protocol.errors import EC2Error

ACTIVE, POWEROFF = 3, 8
RUNNING = 3  # LCM_STATE
# LCM states of a hotplug or save-as still under way: wait for them to end.
BUSY = {17, 25, 26, 27, 28, 33, 34, 62, 63, 65, 66, 67, 68}
SETTLE_SECONDS = 30.0
# How long a request waits for oned to finish a hotplug it started (a NIC detach on KVM
# takes about a second) before answering without the outcome.
FINISH_SECONDS = 10.0


def _ready(vm: documents.Element) -> bool:
    state, lcm = documents.integer(vm, "STATE"), documents.integer(vm, "LCM_STATE")
    return state == POWEROFF or (state == ACTIVE and lcm == RUNNING)


def busy(vm: documents.Element) -> bool:
    """A hotplug, save-as or disk resize of the VM is still under way in oned."""
    return documents.integer(vm, "LCM_STATE") in BUSY


async def _until_idle(ctx: RequestContext, vm_id: int, seconds: float) -> documents.Element:
    """The VM's document once it is not `busy`, or its last one after `seconds`."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        vm = await ctx.one_doc("one.vm.info", vm_id)
        if not busy(vm) or time.monotonic() > deadline:
            return vm
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def settled(ctx: RequestContext, vm_id: int) -> documents.Element:
    """The VM's document once no hotplug is under way; IncorrectState if it cannot take one."""
    vm = await _until_idle(ctx, vm_id, SETTLE_SECONDS)
    if not _ready(vm):
        raise EC2Error(
            "IncorrectState",
            f"The instance '{ids.INSTANCE.encode(vm_id)}' is not 'running' or 'stopped'.",
        )
    return vm


async def finished(
    ctx: RequestContext, vm_id: int, seconds: float = FINISH_SECONDS
) -> documents.Element | None:
    """The VM's document once oned has finished the hotplug it is doing, None if it has not
    within `seconds`. oned accepts a detach, a disk resize... at once and does it later: a
    NIC's lease is only free, a disk only resized, when the VM has left its HOTPLUG_* state."""
    vm = await _until_idle(ctx, vm_id, seconds)
    return None if busy(vm) else vm


async def hotplug(ctx: RequestContext, method: str, vm_id: int, *args: object) -> None:
    """Run one `one.vm.attach/detach/attachnic/detachnic/diskresize` call once the VM can
    take it."""
    await settled(ctx, vm_id)
    try:
        await ctx.one(method, vm_id, *args)
    except OneError as err:
        if err.code == ACTION:
            raise EC2Error(
                "IncorrectState",
                f"The instance '{ids.INSTANCE.encode(vm_id)}' cannot be changed in its "
                "current state.",
            ) from None
        raise
