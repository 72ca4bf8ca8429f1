"""A long conversion of VMs gives the event loop back now and then (`instances._in_turns`)."""

from __future__ import annotations

from ec2gw.actions import instances
from tests.loop_turns import LoopTurns


async def test_converting_many_vms_lets_other_tasks_run_and_keeps_order_and_filter():
    vms = list(range(3 * instances.CONVERTED_PER_TURN + 1))
    turns_seen: list[int] = []
    async with LoopTurns() as turns:

        def convert(vm: int) -> int:
            turns_seen.append(turns.count)
            return vm * 2

        converted = await instances._in_turns(vms, convert, keep=lambda n: n % 4 == 0)
    assert converted == [vm * 2 for vm in vms if vm * 2 % 4 == 0]
    # Other tasks ran three times during the conversion, once every CONVERTED_PER_TURN VMs.
    assert len(set(turns_seen)) == 4
    assert turns_seen[instances.CONVERTED_PER_TURN - 1] < turns_seen[instances.CONVERTED_PER_TURN]


async def test_a_page_of_vms_is_converted_without_waiting():
    page = range(instances.CONVERTED_PER_TURN)
    async with LoopTurns() as turns:
        before = turns.count
        assert await instances._in_turns(page, str) == [str(n) for n in page]
        assert turns.count == before
