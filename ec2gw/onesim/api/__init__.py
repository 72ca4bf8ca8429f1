"""The XML-RPC methods of oned 6.10: argument lists, checks, messages and effects.

Importing this package registers every method; `dispatch` runs one call.
"""

from ec2gw.onesim.api import (  # noqa: F401 - imported to register their methods
    images,
    infra,
    networks,
    secgroups,
    system,
    templates,
    users,
    vms,
)
from ec2gw.onesim.api.base import METHODS, dispatch

__all__ = ["METHODS", "dispatch"]
