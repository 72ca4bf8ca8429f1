"""OpenNebula VM STATE / LCM_STATE → EC2 instance state: the one table (reference §4).

EC2 knows six states. Every OpenNebula state maps to one of them:

* transitions towards running (PROLOG, BOOT*, resume paths) are `pending`;
* anything that keeps the guest up (RUNNING, migrations, hotplugs, snapshots) and UNKNOWN
  (the host cannot be monitored; the VM is still there) is `running`;
* SAVE_*, SHUTDOWN_POWEROFF / _UNDEPLOY and EPILOG_STOP / _UNDEPLOY are `stopping`;
* POWEROFF, SUSPENDED, STOPPED, UNDEPLOYED and the operations done while off are `stopped`;
* SHUTDOWN, EPILOG and CLEANUP are `shutting-down`; DONE is `terminated`;
* every *_FAILURE is `terminated` with a state reason, so that `aws ec2 wait
  instance-running` fails at once instead of polling; TerminateInstances still cleans the
  VM up in OpenNebula.
"""

from __future__ import annotations

from typing import NamedTuple


class InstanceState(NamedTuple):
    code: int
    name: str


PENDING = InstanceState(0, "pending")
RUNNING = InstanceState(16, "running")
SHUTTING_DOWN = InstanceState(32, "shutting-down")
TERMINATED = InstanceState(48, "terminated")
STOPPING = InstanceState(64, "stopping")
STOPPED = InstanceState(80, "stopped")

ACTIVE = 3  # STATE whose meaning is in LCM_STATE
DONE = 6
# The state argument of the VM pool calls: every state (DONE too), or every state but DONE.
ANY = -2
ANY_BUT_DONE = -1

# STATE (when not ACTIVE)
VM_STATES: dict[int, tuple[str, InstanceState]] = {
    0: ("INIT", PENDING),
    1: ("PENDING", PENDING),
    2: ("HOLD", PENDING),
    4: ("STOPPED", STOPPED),
    5: ("SUSPENDED", STOPPED),
    6: ("DONE", TERMINATED),
    7: ("FAILED (retired)", TERMINATED),
    8: ("POWEROFF", STOPPED),
    9: ("UNDEPLOYED", STOPPED),
    10: ("CLONING", PENDING),
    11: ("CLONING_FAILURE", TERMINATED),
}

# LCM_STATE (when STATE is ACTIVE)
LCM_STATES: dict[int, tuple[str, InstanceState]] = {
    0: ("LCM_INIT", PENDING),
    1: ("PROLOG", PENDING),
    2: ("BOOT", PENDING),
    3: ("RUNNING", RUNNING),
    4: ("MIGRATE", RUNNING),
    5: ("SAVE_STOP", STOPPING),
    6: ("SAVE_SUSPEND", STOPPING),
    7: ("SAVE_MIGRATE", RUNNING),
    8: ("PROLOG_MIGRATE", RUNNING),
    9: ("PROLOG_RESUME", PENDING),
    10: ("EPILOG_STOP", STOPPING),
    11: ("EPILOG", SHUTTING_DOWN),
    12: ("SHUTDOWN", SHUTTING_DOWN),
    13: ("CANCEL (retired)", SHUTTING_DOWN),
    14: ("FAILURE (retired)", TERMINATED),
    15: ("CLEANUP_RESUBMIT", PENDING),
    16: ("UNKNOWN", RUNNING),
    17: ("HOTPLUG", RUNNING),
    18: ("SHUTDOWN_POWEROFF", STOPPING),
    19: ("BOOT_UNKNOWN", PENDING),
    20: ("BOOT_POWEROFF", PENDING),
    21: ("BOOT_SUSPENDED", PENDING),
    22: ("BOOT_STOPPED", PENDING),
    23: ("CLEANUP_DELETE", SHUTTING_DOWN),
    24: ("HOTPLUG_SNAPSHOT", RUNNING),
    25: ("HOTPLUG_NIC", RUNNING),
    26: ("HOTPLUG_SAVEAS", RUNNING),
    27: ("HOTPLUG_SAVEAS_POWEROFF", STOPPED),
    28: ("HOTPLUG_SAVEAS_SUSPENDED", STOPPED),
    29: ("SHUTDOWN_UNDEPLOY", STOPPING),
    30: ("EPILOG_UNDEPLOY", STOPPING),
    31: ("PROLOG_UNDEPLOY", PENDING),
    32: ("BOOT_UNDEPLOY", PENDING),
    33: ("HOTPLUG_PROLOG_POWEROFF", STOPPED),
    34: ("HOTPLUG_EPILOG_POWEROFF", STOPPED),
    35: ("BOOT_MIGRATE", RUNNING),
    36: ("BOOT_FAILURE", TERMINATED),
    37: ("BOOT_MIGRATE_FAILURE", TERMINATED),
    38: ("PROLOG_MIGRATE_FAILURE", TERMINATED),
    39: ("PROLOG_FAILURE", TERMINATED),
    40: ("EPILOG_FAILURE", TERMINATED),
    41: ("EPILOG_STOP_FAILURE", TERMINATED),
    42: ("EPILOG_UNDEPLOY_FAILURE", TERMINATED),
    43: ("PROLOG_MIGRATE_POWEROFF", STOPPED),
    44: ("PROLOG_MIGRATE_POWEROFF_FAILURE", TERMINATED),
    45: ("PROLOG_MIGRATE_SUSPEND", STOPPED),
    46: ("PROLOG_MIGRATE_SUSPEND_FAILURE", TERMINATED),
    47: ("BOOT_UNDEPLOY_FAILURE", TERMINATED),
    48: ("BOOT_STOPPED_FAILURE", TERMINATED),
    49: ("PROLOG_RESUME_FAILURE", TERMINATED),
    50: ("PROLOG_UNDEPLOY_FAILURE", TERMINATED),
    51: ("DISK_SNAPSHOT_POWEROFF", STOPPED),
    52: ("DISK_SNAPSHOT_REVERT_POWEROFF", STOPPED),
    53: ("DISK_SNAPSHOT_DELETE_POWEROFF", STOPPED),
    54: ("DISK_SNAPSHOT_SUSPENDED", STOPPED),
    55: ("DISK_SNAPSHOT_REVERT_SUSPENDED", STOPPED),
    56: ("DISK_SNAPSHOT_DELETE_SUSPENDED", STOPPED),
    57: ("DISK_SNAPSHOT", RUNNING),
    58: ("DISK_SNAPSHOT_REVERT (retired)", RUNNING),
    59: ("DISK_SNAPSHOT_DELETE", RUNNING),
    60: ("PROLOG_MIGRATE_UNKNOWN", RUNNING),
    61: ("PROLOG_MIGRATE_UNKNOWN_FAILURE", TERMINATED),
    62: ("DISK_RESIZE", RUNNING),
    63: ("DISK_RESIZE_POWEROFF", STOPPED),
    64: ("DISK_RESIZE_UNDEPLOYED", STOPPED),
    65: ("HOTPLUG_NIC_POWEROFF", STOPPED),
    66: ("HOTPLUG_RESIZE", RUNNING),
    67: ("HOTPLUG_SAVEAS_UNDEPLOYED", STOPPED),
    68: ("HOTPLUG_SAVEAS_STOPPED", STOPPED),
    69: ("BACKUP", RUNNING),
    70: ("BACKUP_POWEROFF", STOPPED),
    71: ("RESTORE", STOPPED),
}

FAILURE_LCM_STATES = frozenset({14, 36, 37, 38, 39, 40, 41, 42, 44, 46, 47, 48, 49, 50, 61})
FAILURE_VM_STATES = frozenset({7, 11})


def instance_state(state: int, lcm_state: int) -> InstanceState:
    """The EC2 state of a VM; an unknown future state reads as `pending`, never an error."""
    if state == ACTIVE:
        return LCM_STATES.get(lcm_state, ("", PENDING))[1]
    return VM_STATES.get(state, ("", PENDING))[1]


def readme_table() -> str:
    """The mapping as a Markdown table, for docs/mapping.md."""
    rows = [
        "| EC2 state | OpenNebula STATE | OpenNebula LCM_STATE (STATE = ACTIVE) |",
        "| --- | --- | --- |",
    ]
    for ec2 in (PENDING, RUNNING, STOPPING, STOPPED, SHUTTING_DOWN, TERMINATED):
        vm = ", ".join(name for name, s in VM_STATES.values() if s == ec2)
        lcm = ", ".join(name for name, s in LCM_STATES.values() if s == ec2)
        rows.append(f"| `{ec2.name}` ({ec2.code}) | {vm or '-'} | {lcm or '-'} |")
    return "\n".join(rows)


def is_failure(state: int, lcm_state: int) -> bool:
    if state == ACTIVE:
        return lcm_state in FAILURE_LCM_STATES
    return state in FAILURE_VM_STATES
