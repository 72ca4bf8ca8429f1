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

# STATE (when not ACTIVE)
VM_STATES: dict[int, InstanceState] = {
    0: PENDING,  # INIT
    1: PENDING,  # PENDING
    2: PENDING,  # HOLD
    4: STOPPED,  # STOPPED
    5: STOPPED,  # SUSPENDED
    6: TERMINATED,  # DONE
    7: TERMINATED,  # FAILED (retired)
    8: STOPPED,  # POWEROFF
    9: STOPPED,  # UNDEPLOYED
    10: PENDING,  # CLONING
    11: TERMINATED,  # CLONING_FAILURE
}

# LCM_STATE (when STATE is ACTIVE)
LCM_STATES: dict[int, InstanceState] = {
    0: PENDING,  # LCM_INIT
    1: PENDING,  # PROLOG
    2: PENDING,  # BOOT
    3: RUNNING,  # RUNNING
    4: RUNNING,  # MIGRATE
    5: STOPPING,  # SAVE_STOP
    6: STOPPING,  # SAVE_SUSPEND
    7: RUNNING,  # SAVE_MIGRATE
    8: RUNNING,  # PROLOG_MIGRATE
    9: PENDING,  # PROLOG_RESUME
    10: STOPPING,  # EPILOG_STOP
    11: SHUTTING_DOWN,  # EPILOG
    12: SHUTTING_DOWN,  # SHUTDOWN
    13: SHUTTING_DOWN,  # CANCEL (retired)
    14: TERMINATED,  # FAILURE (retired)
    15: PENDING,  # CLEANUP_RESUBMIT
    16: RUNNING,  # UNKNOWN
    17: RUNNING,  # HOTPLUG
    18: STOPPING,  # SHUTDOWN_POWEROFF
    19: PENDING,  # BOOT_UNKNOWN
    20: PENDING,  # BOOT_POWEROFF
    21: PENDING,  # BOOT_SUSPENDED
    22: PENDING,  # BOOT_STOPPED
    23: SHUTTING_DOWN,  # CLEANUP_DELETE
    24: RUNNING,  # HOTPLUG_SNAPSHOT
    25: RUNNING,  # HOTPLUG_NIC
    26: RUNNING,  # HOTPLUG_SAVEAS
    27: STOPPED,  # HOTPLUG_SAVEAS_POWEROFF
    28: STOPPED,  # HOTPLUG_SAVEAS_SUSPENDED
    29: STOPPING,  # SHUTDOWN_UNDEPLOY
    30: STOPPING,  # EPILOG_UNDEPLOY
    31: PENDING,  # PROLOG_UNDEPLOY
    32: PENDING,  # BOOT_UNDEPLOY
    33: STOPPED,  # HOTPLUG_PROLOG_POWEROFF
    34: STOPPED,  # HOTPLUG_EPILOG_POWEROFF
    35: RUNNING,  # BOOT_MIGRATE
    36: TERMINATED,  # BOOT_FAILURE
    37: TERMINATED,  # BOOT_MIGRATE_FAILURE
    38: TERMINATED,  # PROLOG_MIGRATE_FAILURE
    39: TERMINATED,  # PROLOG_FAILURE
    40: TERMINATED,  # EPILOG_FAILURE
    41: TERMINATED,  # EPILOG_STOP_FAILURE
    42: TERMINATED,  # EPILOG_UNDEPLOY_FAILURE
    43: STOPPED,  # PROLOG_MIGRATE_POWEROFF
    44: TERMINATED,  # PROLOG_MIGRATE_POWEROFF_FAILURE
    45: STOPPED,  # PROLOG_MIGRATE_SUSPEND
    46: TERMINATED,  # PROLOG_MIGRATE_SUSPEND_FAILURE
    47: TERMINATED,  # BOOT_UNDEPLOY_FAILURE
    48: TERMINATED,  # BOOT_STOPPED_FAILURE
    49: TERMINATED,  # PROLOG_RESUME_FAILURE
    50: TERMINATED,  # PROLOG_UNDEPLOY_FAILURE
    51: STOPPED,  # DISK_SNAPSHOT_POWEROFF
    52: STOPPED,  # DISK_SNAPSHOT_REVERT_POWEROFF
    53: STOPPED,  # DISK_SNAPSHOT_DELETE_POWEROFF
    54: STOPPED,  # DISK_SNAPSHOT_SUSPENDED
    55: STOPPED,  # DISK_SNAPSHOT_REVERT_SUSPENDED
    56: STOPPED,  # DISK_SNAPSHOT_DELETE_SUSPENDED
    57: RUNNING,  # DISK_SNAPSHOT
    58: RUNNING,  # DISK_SNAPSHOT_REVERT (retired)
    59: RUNNING,  # DISK_SNAPSHOT_DELETE
    60: RUNNING,  # PROLOG_MIGRATE_UNKNOWN
    61: TERMINATED,  # PROLOG_MIGRATE_UNKNOWN_FAILURE
    62: RUNNING,  # DISK_RESIZE
    63: STOPPED,  # DISK_RESIZE_POWEROFF
    64: STOPPED,  # DISK_RESIZE_UNDEPLOYED
    65: STOPPED,  # HOTPLUG_NIC_POWEROFF
    66: RUNNING,  # HOTPLUG_RESIZE
    67: STOPPED,  # HOTPLUG_SAVEAS_UNDEPLOYED
    68: STOPPED,  # HOTPLUG_SAVEAS_STOPPED
    69: RUNNING,  # BACKUP
    70: STOPPED,  # BACKUP_POWEROFF
    71: STOPPED,  # RESTORE
}

FAILURE_LCM_STATES = frozenset({14, 36, 37, 38, 39, 40, 41, 42, 44, 46, 47, 48, 49, 50, 61})
FAILURE_VM_STATES = frozenset({7, 11})


def instance_state(state: int, lcm_state: int) -> InstanceState:
    """The EC2 state of a VM; an unknown future state reads as `pending`, never an error."""
    if state == ACTIVE:
        return LCM_STATES.get(lcm_state, PENDING)
    return VM_STATES.get(state, PENDING)


def is_failure(state: int, lcm_state: int) -> bool:
    if state == ACTIVE:
        return lcm_state in FAILURE_LCM_STATES
    return state in FAILURE_VM_STATES
