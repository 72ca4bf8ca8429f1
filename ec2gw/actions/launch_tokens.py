"""Which of a user's VMs a RunInstances ClientToken made, without reading all of them.

boto3 and the aws cli send a ClientToken with every RunInstances (the model marks it an
idempotency token), so every launch asks whether its token was used before. Reading all
of the user's VMs for that made a launch cost grow with the user's pool (with 1,000 VMs,
48 ms of CPU for a launch and its termination instead of 12-18, gateway and embedded
OpenNebula together). OpenNebula numbers VMs in increasing order, so after one full read
only the VMs made since the newest one seen need reading.
What this memory says is a hint: the caller reads the VMs it names again, by id, and
trusts what OpenNebula says then.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ec2gw.actions import instance_view as view
from ec2gw.one import documents

MAX_USERS = 10_000  # users remembered; the one that launched least recently is forgotten
MAX_VMS_PER_USER = 50_000  # beyond this, a user's memory is rebuilt by a full read

# Reads the user's VMs with an id above the given one (-1: all of them).
ReadSince = Callable[[int], Awaitable[Iterable[documents.Element]]]


@dataclass
class _UserTokens:
    newest: int = -1  # the highest VM id read so far
    vms: dict[str, set[int]] = field(default_factory=dict)  # token -> VM ids
    count: int = 0  # VM ids in `vms`


class TokenIndex:
    """ClientToken → VM ids per user (keyed by OpenNebula endpoint and user id), kept up
    to date by reading only new VMs. Needs no lock: two reads at once add the same facts."""

    def __init__(self, max_users: int = MAX_USERS, max_vms: int = MAX_VMS_PER_USER) -> None:
        self._users: OrderedDict[tuple[str, int], _UserTokens] = OrderedDict()
        self._max_users = max_users
        self._max_vms = max_vms

    async def vm_ids(self, user_key: tuple[str, int], token: str, read: ReadSince) -> list[int]:
        """The ids of the VMs read so far that were launched with `token`."""
        user = self._users.get(user_key)
        if user is None or user.count > self._max_vms:
            user = self._users[user_key] = _UserTokens()
        self._users.move_to_end(user_key)
        while len(self._users) > self._max_users:
            self._users.popitem(last=False)
        for vm in await read(user.newest):
            vm_id = documents.integer(vm, "ID")
            user.newest = max(user.newest, vm_id)
            made_with = view.user_attr(vm, view.CLIENT_TOKEN)
            if not made_with:
                continue
            made = user.vms.setdefault(made_with, set())
            if vm_id not in made:
                made.add(vm_id)
                user.count += 1
        return sorted(user.vms.get(token, ()))

    def forget(self, user_key: tuple[str, int], token: str, vm_ids: set[int]) -> None:
        """Drop VMs that are gone, or no longer carry the token, when read again by id."""
        user = self._users.get(user_key)
        made = user.vms.get(token) if user else None
        if user is None or made is None:
            return
        user.count -= len(made & vm_ids)
        made -= vm_ids
        if not made:
            del user.vms[token]
