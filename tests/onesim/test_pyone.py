"""Acceptance: pyone, OpenNebula's own Python client, drives a VM through its life."""

from __future__ import annotations

import pyone

from tests.onesim.conftest import Cloud


def test_pyone_allocate_running_terminate_done(cloud: Cloud) -> None:
    one = pyone.OneServer(cloud.sim.url, session=cloud.sim.oneadmin_session)
    vm_id = one.vm.allocate(
        'NAME = "acceptance"\nCPU = "0.5"\nMEMORY = "128"\n'
        "DISK = [ IMAGE_ID = 0 ]\nNIC = [ NETWORK_ID = 0 ]"
    )
    vm = one.vm.info(vm_id)
    assert vm.NAME == "acceptance"
    assert (vm.STATE, vm.LCM_STATE) == (3, 3)  # ACTIVE / RUNNING
    assert vm.HISTORY_RECORDS.HISTORY[0].HOSTNAME == "dummy-host-0"
    assert vm.TEMPLATE["NIC"]["IP"] == "10.0.0.10"
    assert one.vm.action("terminate-hard", vm_id) == vm_id
    vm = one.vm.info(vm_id)
    assert vm.STATE == 6  # DONE
    assert vm.ETIME > 0
    pool = one.vmpool.info(-2, -1, -1, -1)
    assert [v.ID for v in pool.VM] == []
    done = one.vmpool.info(-2, -1, -1, 6)
    assert [v.ID for v in done.VM] == [vm_id]


def test_pyone_errors_map_to_its_exceptions(cloud: Cloud) -> None:
    one = pyone.OneServer(cloud.sim.url, session=cloud.sim.oneadmin_session)
    try:
        one.vm.info(4242)
    except pyone.OneNoExistsException as err:
        assert "Error getting virtual machine [4242]" in str(err)
    else:
        raise AssertionError("expected OneNoExistsException")
    bad = pyone.OneServer(cloud.sim.url, session="oneadmin:wrong")
    try:
        bad.vm.info(0)
    except pyone.OneAuthenticationException:
        pass
    else:
        raise AssertionError("expected OneAuthenticationException")
