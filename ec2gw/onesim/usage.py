"""Running totals over the VM pool, so that placing or accounting one VM does not scan them all.

What a VM contributes (capacity on its host, usage of its owner's VM/NETWORK/IMAGE quotas)
and when its next lifecycle step is due are kept here, up to date with the pool. The cloud
tells the index which VMs changed (every change of a VM is `touch`ed, as it must be for
persistence); the index recomputes those VMs' contributions before anything is read, so the
totals always equal a recount of the whole pool (`recount` does that, for tests).

Sums of CPU and memory are kept exactly (`Fraction`), so adding and removing VMs in any
order leaves no rounding residue; readers get the correctly rounded float.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ec2gw.onesim import states as st

Obj = dict[str, Any]

QUOTA_METRICS = (
    "VMS",
    "CPU",
    "MEMORY",
    "SYSTEM_DISK_SIZE",
    "RUNNING_VMS",
    "RUNNING_CPU",
    "RUNNING_MEMORY",
)


def _value(template: list, name: str) -> str | None:
    """`Template.get` on the stored JSON form (names are already upper case)."""
    for n, v in template:
        if n == name and isinstance(v, str):
            return v
    return None


def _vectors(template: list, name: str) -> list[dict[str, str]]:
    return [v for n, v in template if n == name and isinstance(v, dict)]


def _number(text: str | None) -> float:
    return float(text or 0)


@dataclass(frozen=True)
class Share:
    """What one VM adds to the totals."""

    uid: int
    host: int | None  # the host whose capacity it holds
    host_cpu: Fraction  # CPU × 100
    host_mem: int  # MEMORY in KB
    counted: bool  # in its owner's VM quota (not DONE)
    running: bool  # in the RUNNING_* quota metrics
    quota: tuple[Fraction, ...]  # CPU, MEMORY, SYSTEM_DISK_SIZE
    networks: tuple[int, ...]  # NETWORK_ID of each NIC
    images: tuple[int, ...]  # IMAGE_ID of each DISK

    @classmethod
    def of(cls, vm: Obj) -> Share:
        tmpl = vm["template"]
        cpu = _number(_value(tmpl, "CPU"))
        memory = _number(_value(tmpl, "MEMORY"))
        disks = _vectors(tmpl, "DISK")
        disk = sum(Fraction(_number(d.get("SIZE", 0))) for d in disks)
        host = vm["history"][-1]["hid"] if st.holds_host(vm) else None
        return cls(
            uid=vm["uid"],
            host=host,
            host_cpu=Fraction(cpu * 100),
            host_mem=int(memory) * 1024,
            counted=vm["state"] != st.DONE,
            running=vm["state"] in (st.PENDING, st.ACTIVE, st.HOLD),
            quota=(Fraction(cpu), Fraction(memory), disk),
            networks=tuple(
                int(n["NETWORK_ID"])
                for n in _vectors(tmpl, "NIC")
                if n.get("NETWORK_ID", "").isdigit()
            ),
            images=tuple(int(d["IMAGE_ID"]) for d in disks if d.get("IMAGE_ID", "").isdigit()),
        )


@dataclass
class HostLoad:
    cpu: Fraction = Fraction(0)
    memory: int = 0
    vms: set[int] = field(default_factory=set)


@dataclass
class UserLoad:
    metrics: dict[str, Fraction] = field(
        default_factory=lambda: dict.fromkeys(QUOTA_METRICS, Fraction(0))
    )
    networks: Counter[int] = field(default_factory=Counter)
    images: Counter[int] = field(default_factory=Counter)


class VmIndex:
    """Per-host and per-user totals and a queue of due lifecycle steps, kept incrementally."""

    def __init__(self) -> None:
        self.shares: dict[int, Share] = {}
        self.hosts: dict[int, HostLoad] = {}
        self.users: dict[int, UserLoad] = {}
        self.changed: set[int] = set()
        # (due, vm id) of every VM with a due step; entries whose VM's due has since
        # changed are stale and skipped when they come up.
        self.due: list[tuple[float, int]] = []

    def mark(self, vm_id: int) -> None:
        """The VM was created, changed or removed."""
        self.changed.add(vm_id)

    def sync(self, pool: dict[int, Obj]) -> None:
        """Bring the totals up to date with the VMs changed since the last sync."""
        if not self.changed:
            return
        for vm_id in self.changed:
            old = self.shares.pop(vm_id, None)
            if old is not None:
                self._apply(vm_id, old, -1)
            vm = pool.get(vm_id)
            if vm is None:
                continue
            new = Share.of(vm)
            self.shares[vm_id] = new
            self._apply(vm_id, new, 1)
            if vm.get("due") is not None:
                heapq.heappush(self.due, (vm["due"], vm_id))
        self.changed.clear()

    def _apply(self, vm_id: int, share: Share, sign: int) -> None:
        if share.host is not None:
            host = self.hosts.setdefault(share.host, HostLoad())
            host.cpu += sign * share.host_cpu
            host.memory += sign * share.host_mem
            if sign > 0:
                host.vms.add(vm_id)
            else:
                host.vms.discard(vm_id)
        if not share.counted:
            return
        user = self.users.setdefault(share.uid, UserLoad())
        m = user.metrics
        cpu, memory, disk = share.quota
        m["VMS"] += sign
        m["CPU"] += sign * cpu
        m["MEMORY"] += sign * memory
        m["SYSTEM_DISK_SIZE"] += sign * disk
        if share.running:
            m["RUNNING_VMS"] += sign
            m["RUNNING_CPU"] += sign * cpu
            m["RUNNING_MEMORY"] += sign * memory
        for nid in share.networks:
            user.networks[nid] += sign
        for iid in share.images:
            user.images[iid] += sign
        if sign < 0:  # drop zero counts: they would otherwise be listed as used
            user.networks = +user.networks
            user.images = +user.images

    # --- reads (call `sync` first) ------------------------------------------------------

    def host(self, host_id: int) -> HostLoad:
        return self.hosts.get(host_id) or HostLoad()

    def user(self, uid: int) -> UserLoad:
        return self.users.get(uid) or UserLoad()

    def pop_due(self, pool: dict[int, Obj], t: float) -> list[int]:
        """The VMs whose step is due by `t`, in (due, id) order; their entries leave the queue."""
        out: list[int] = []
        while self.due and self.due[0][0] <= t:
            due, vm_id = heapq.heappop(self.due)
            vm = pool.get(vm_id)
            if vm is not None and vm.get("due") == due and (not out or out[-1] != vm_id):
                out.append(vm_id)
        return out

    def next_due(self, pool: dict[int, Obj]) -> float | None:
        while self.due:
            due, vm_id = self.due[0]
            vm = pool.get(vm_id)
            if vm is not None and vm.get("due") == due:
                return due
            heapq.heappop(self.due)
        return None


def recount(pool: dict[int, Obj]) -> VmIndex:
    """The index built from scratch over the whole pool (what `sync` must always equal)."""
    index = VmIndex()
    for vm_id in pool:
        index.mark(vm_id)
    index.sync(pool)
    return index
