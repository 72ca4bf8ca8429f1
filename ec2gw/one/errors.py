"""OpenNebula failures and their one table of EC2 equivalents (reference §1.6).

Handlers catch `OneError` where the meaning depends on the resource (a NO_EXISTS on a VM
is `InvalidInstanceID.NotFound`); everything else falls through to `to_ec2_error` in the
app. OpenNebula's own message is logged, never sent: it can name internal ids and users.
"""

from __future__ import annotations

from ec2gw.protocol.errors import EC2Error

AUTHENTICATION = 0x100
AUTHORIZATION = 0x200
NO_EXISTS = 0x400
ACTION = 0x800
RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000
LOCKED = 0x8000
REPLICATION = 0x10000


class OneError(Exception):
    """A failure array from OpenNebula: `[false, message, code, object_id, ...]`."""

    def __init__(self, method: str, code: int, message: str, object_id: int = -1) -> None:
        super().__init__(f"{method}: {code:#x} {message}")
        self.method = method
        self.code = code
        self.message = message
        self.object_id = object_id


_TABLE: dict[int, tuple[str, str]] = {
    AUTHENTICATION: ("AuthFailure", "AWS was not able to validate the provided access credentials"),
    AUTHORIZATION: ("UnauthorizedOperation", "You are not authorized to perform this operation."),
    NO_EXISTS: ("InvalidParameterValue", "A referenced resource does not exist."),
    ACTION: ("IncorrectState", "The resource is not in a state that allows this operation."),
    RPC_API: ("InvalidParameterValue", "OpenNebula rejected a parameter value."),
    INTERNAL: ("InternalError", "An internal error has occurred"),
    ALLOCATE: ("InvalidParameterValue", "The resource could not be created."),
    LOCKED: ("IncorrectState", "The resource is locked."),
    REPLICATION: ("Unavailable", "The service is unavailable. Please try again shortly."),
}


def to_ec2_error(err: OneError) -> EC2Error:
    code, message = _TABLE.get(err.code, ("InternalError", "An internal error has occurred"))
    return EC2Error(code, message)
