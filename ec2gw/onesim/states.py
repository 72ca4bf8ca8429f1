"""VM states and history action codes (include/VirtualMachine.h, include/VMActions.h)."""

from __future__ import annotations

# STATE
INIT, PENDING, HOLD, ACTIVE, STOPPED, SUSPENDED, DONE = 0, 1, 2, 3, 4, 5, 6
POWEROFF, UNDEPLOYED, CLONING, CLONING_FAILURE = 8, 9, 10, 11

STATE_NAMES = {
    0: "INIT",
    1: "PENDING",
    2: "HOLD",
    3: "ACTIVE",
    4: "STOPPED",
    5: "SUSPENDED",
    6: "DONE",
    7: "FAILED",
    8: "POWEROFF",
    9: "UNDEPLOYED",
    10: "CLONING",
    11: "CLONING_FAILURE",
}

# LCM_STATE
LCM_INIT, PROLOG, BOOT, RUNNING = 0, 1, 2, 3
SAVE_STOP, SAVE_SUSPEND = 5, 6
PROLOG_RESUME, EPILOG_STOP, EPILOG, SHUTDOWN = 9, 10, 11, 12
UNKNOWN, HOTPLUG, SHUTDOWN_POWEROFF = 16, 17, 18
BOOT_UNKNOWN, BOOT_POWEROFF, BOOT_SUSPENDED, BOOT_STOPPED = 19, 20, 21, 22
HOTPLUG_NIC, HOTPLUG_SAVEAS = 25, 26
HOTPLUG_SAVEAS_POWEROFF, HOTPLUG_SAVEAS_SUSPENDED = 27, 28
SHUTDOWN_UNDEPLOY, EPILOG_UNDEPLOY, PROLOG_UNDEPLOY, BOOT_UNDEPLOY = 29, 30, 31, 32
HOTPLUG_PROLOG_POWEROFF = 33
DISK_SNAPSHOT_POWEROFF, DISK_SNAPSHOT = 51, 57
HOTPLUG_NIC_POWEROFF, HOTPLUG_RESIZE = 65, 66

LCM_NAMES = {
    0: "LCM_INIT",
    1: "PROLOG",
    2: "BOOT",
    3: "RUNNING",
    4: "MIGRATE",
    5: "SAVE_STOP",
    6: "SAVE_SUSPEND",
    7: "SAVE_MIGRATE",
    8: "PROLOG_MIGRATE",
    9: "PROLOG_RESUME",
    10: "EPILOG_STOP",
    11: "EPILOG",
    12: "SHUTDOWN",
    15: "CLEANUP_RESUBMIT",
    16: "UNKNOWN",
    17: "HOTPLUG",
    18: "SHUTDOWN_POWEROFF",
    19: "BOOT_UNKNOWN",
    20: "BOOT_POWEROFF",
    21: "BOOT_SUSPENDED",
    22: "BOOT_STOPPED",
    23: "CLEANUP_DELETE",
    24: "HOTPLUG_SNAPSHOT",
    25: "HOTPLUG_NIC",
    26: "HOTPLUG_SAVEAS",
    27: "HOTPLUG_SAVEAS_POWEROFF",
    28: "HOTPLUG_SAVEAS_SUSPENDED",
    29: "SHUTDOWN_UNDEPLOY",
    30: "EPILOG_UNDEPLOY",
    31: "PROLOG_UNDEPLOY",
    32: "BOOT_UNDEPLOY",
    33: "HOTPLUG_PROLOG_POWEROFF",
    34: "HOTPLUG_EPILOG_POWEROFF",
    35: "BOOT_MIGRATE",
    36: "BOOT_FAILURE",
    37: "BOOT_MIGRATE_FAILURE",
    38: "PROLOG_MIGRATE_FAILURE",
    39: "PROLOG_FAILURE",
    40: "EPILOG_FAILURE",
    41: "EPILOG_STOP_FAILURE",
    42: "EPILOG_UNDEPLOY_FAILURE",
    47: "BOOT_UNDEPLOY_FAILURE",
    48: "BOOT_STOPPED_FAILURE",
    49: "PROLOG_RESUME_FAILURE",
    50: "PROLOG_UNDEPLOY_FAILURE",
    51: "DISK_SNAPSHOT_POWEROFF",
    57: "DISK_SNAPSHOT",
    65: "HOTPLUG_NIC_POWEROFF",
    66: "HOTPLUG_RESIZE",
}
FAILURE_LCM = {36, 37, 38, 39, 40, 41, 42, 44, 46, 47, 48, 49, 50, 61}

# `VirtualMachine::set_saveas_state`: (STATE, LCM_STATE) a disk can be saved in -> the
# saving LCM state, and back (`clear_saveas_state`).
SAVEAS_STATES = {
    (ACTIVE, RUNNING): HOTPLUG_SAVEAS,
    (POWEROFF, LCM_INIT): HOTPLUG_SAVEAS_POWEROFF,
    (SUSPENDED, LCM_INIT): HOTPLUG_SAVEAS_SUSPENDED,
}
SAVEAS_DONE = {
    HOTPLUG_SAVEAS: (ACTIVE, RUNNING),
    HOTPLUG_SAVEAS_POWEROFF: (POWEROFF, LCM_INIT),
    HOTPLUG_SAVEAS_SUSPENDED: (SUSPENDED, LCM_INIT),
}

# History ACTION codes (VMActions::Action).
ACTION_CODES = {
    "none": 0,
    "undeploy": 5,
    "undeploy-hard": 6,
    "hold": 7,
    "release": 8,
    "stop": 9,
    "suspend": 10,
    "resume": 11,
    "delete": 13,
    "reboot": 15,
    "reboot-hard": 16,
    "resched": 17,
    "unresched": 18,
    "poweroff": 19,
    "poweroff-hard": 20,
    "disk-attach": 21,
    "disk-detach": 22,
    "nic-attach": 23,
    "nic-detach": 24,
    "disk-snapshot-create": 25,
    "disk-snapshot-delete": 26,
    "terminate": 27,
    "terminate-hard": 28,
    "disk-resize": 29,
    "resize": 35,
    "deploy": 30,
    "recover": 42,
}

# Operations that need ADMIN rather than MANAGE (VM_ADMIN_OPERATIONS of oned.conf).
ADMIN_ACTIONS = {"resched", "unresched", "deploy", "recover", "migrate"}


def state_name(vm: dict) -> str:
    """The name in "not available for state X": the LCM name while ACTIVE."""
    if vm["state"] == ACTIVE:
        return LCM_NAMES.get(vm["lcm_state"], str(vm["lcm_state"]))
    return STATE_NAMES[vm["state"]]


def holds_host(vm: dict) -> bool:
    """Does the VM occupy capacity on its host (running, suspended or powered off)?"""
    return vm["state"] in (ACTIVE, SUSPENDED, POWEROFF) and bool(vm["history"])
