"""A long conversion of VMs gives the event loop back now and then (`instances._in_turns`)."""

from __future__ import annotations

import asyncio

from ec2gw.actions import instances


async def test_converting_many_vms_lets_other_tasks_run_and_keeps_order_and_filter():
    vms = list(range(3 * instances.CONVERTED_PER_TURN + 1))
    turns_seen: list[int] = []
    turns = [0]

    async def count_turns() -> None:
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    def convert(vm: int) -> int:
        turns_seen.append(turns[0])
        return vm * 2

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    converted = await instances._in_turns(vms, convert, keep=lambda n: n % 4 == 0)
    counter.cancel()
    assert converted == [vm * 2 for vm in vms if vm * 2 % 4 == 0]
    # Other tasks ran three times during the conversion, once every CONVERTED_PER_TURN VMs.
    assert len(set(turns_seen)) == 4
    assert turns_seen[instances.CONVERTED_PER_TURN - 1] < turns_seen[instances.CONVERTED_PER_TURN]


async def test_a_page_of_vms_is_converted_without_waiting():
    turns = [0]

    async def count_turns() -> None:
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    before = turns[0]
    assert await instances._in_turns(range(instances.CONVERTED_PER_TURN), str) == [
        str(n) for n in range(instances.CONVERTED_PER_TURN)
    ]
    assert turns[0] == before
    counter.cancel()
