from ec2gw.one import states


def test_every_opennebula_state_is_mapped():
    assert set(states.VM_STATES) | {states.ACTIVE} == set(range(12))
    assert set(states.LCM_STATES) == set(range(72))


def test_failures_read_as_terminated():
    for lcm in states.FAILURE_LCM_STATES:
        assert states.instance_state(states.ACTIVE, lcm) == states.TERMINATED
        assert states.is_failure(states.ACTIVE, lcm)
    assert not states.is_failure(states.ACTIVE, 3)


def test_main_lifecycle():
    assert states.instance_state(1, 0).name == "pending"
    assert states.instance_state(3, 3) == (16, "running")
    assert states.instance_state(3, 18).name == "stopping"
    assert states.instance_state(8, 0).name == "stopped"
    assert states.instance_state(3, 12).name == "shutting-down"
    assert states.instance_state(6, 0) == (48, "terminated")
    assert states.instance_state(3, 16).name == "running"  # UNKNOWN: host not monitored
    assert states.instance_state(99, 0).name == "pending"
