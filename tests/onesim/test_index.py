"""The running totals of the VM pool (`usage.VmIndex`) always equal a recount from scratch."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle
from ec2gw.onesim.cloud import Cloud as SimCloud
from ec2gw.onesim.store import MEMBER_FIELDS, Store
from ec2gw.onesim.usage import VmIndex, recount
from tests.onesim.conftest import SHARE, One, seed, start_sim

VM = 'NAME = "{name}"\nCPU = "{cpu}"\nMEMORY = "{memory}"\nDISK = [ IMAGE_ID = 0 ]'
ACTIONS = (
    "terminate",
    "terminate-hard",
    "poweroff",
    "suspend",
    "stop",
    "undeploy",
    "resume",
    "hold",
    "release",
)


def totals(index: VmIndex) -> dict[str, object]:
    """The index's totals, without the empty entries a recount would not create."""
    return {
        "hosts": {hid: (h.cpu, h.memory, sorted(h.vms)) for hid, h in index.hosts.items() if h.vms},
        "users": {
            uid: (dict(u.metrics), dict(+u.networks), dict(+u.images))
            for uid, u in index.users.items()
            if u.metrics["VMS"]
        },
    }


def check(cloud: SimCloud) -> None:
    with cloud.lock:
        pool = cloud.pools["vm"]
        cloud.index.sync(pool)
        assert totals(cloud.index) == totals(recount(pool))
        queued = {vid for due, vid in cloud.index.due if pool.get(vid, {}).get("due") == due}
        assert queued == {vid for vid, vm in pool.items() if vm.get("due") is not None}
        failed = {vid for vid, vm in pool.items() if vm.get("sched_failed")}
        assert failed <= cloud.unplaced


def members(cloud: SimCloud) -> dict[str, dict[int, list[int]]]:
    """The VM lists kept as `member` rows (image VMS, UPDATED_VMS)."""
    return {
        kind: {oid: list(obj.get(field, [])) for oid, obj in cloud.pools[kind].items()}
        for kind, field in MEMBER_FIELDS.items()
    }


@pytest.mark.parametrize("seed_value", [1, 2, 3])
@pytest.mark.parametrize("delays", [False, True])
def test_totals_match_a_recount(tmp_path: Path, seed_value: int, delays: bool) -> None:
    lifecycle = Lifecycle(prolog=0.01, boot=0.01, shutdown=0.01, epilog=0.01) if delays else None
    rng = random.Random(seed_value)
    sim = start_sim(tmp_path, lifecycle)
    try:
        admin = One(sim.url, sim.oneadmin_session)
        seed(admin)
        admin("one.host.allocate", "dummy-host-1", "dummy", "dummy", -1)
        vnet = admin(
            "one.vn.allocate",
            'NAME = "big"\nVN_MAD = "dummy"\nBRIDGE = "br1"\n'
            'AR = [ TYPE = "IP4", IP = "10.1.0.1", SIZE = "500" ]',
            -1,
        )
        admin("one.vn.chmod", vnet, *SHARE)
        uids = []
        for name in ("alice", "bob"):
            uid = admin("one.user.allocate", name, "pw", "core", [1])
            admin("one.user.quota", uid, 'VM = [ VMS = "40", CPU = "12", MEMORY = "40000" ]')
            uids.append(uid)
        sessions = [admin, One(sim.url, "alice:pw"), One(sim.url, "bob:pw")]
        vms: list[int] = []
        for step in range(120):
            one = rng.choice(sessions)
            roll = rng.random()
            if roll < 0.35 or not vms:
                text = VM.format(
                    name=f"v{step}",
                    cpu=rng.choice([0.01, 0.1, 0.3, 1]),
                    memory=64 * rng.randint(1, 8),
                )
                if rng.random() < 0.5:
                    text += f"\nNIC = [ NETWORK_ID = {rng.choice([0, vnet])} ]"
                reply = one.raw("one.vm.allocate", text, rng.random() < 0.1)
                if reply[0]:
                    vms.append(reply[1])
            elif roll < 0.75:
                admin.raw("one.vm.action", rng.choice(ACTIONS), rng.choice(vms))
            elif roll < 0.8:
                admin.raw("one.vm.resize", rng.choice(vms), 'CPU = "0.5"\nMEMORY = "256"', False)
            elif roll < 0.85:
                admin.raw("one.vm.chown", rng.choice(vms), rng.choice([0, *uids]), -1)
            elif roll < 0.88:
                admin.raw("one.vm.recover", rng.choice(vms), rng.choice([3, 4, 5]))
            elif roll < 0.9:
                admin.raw("one.vm.attachnic", rng.choice(vms), f"NIC = [ NETWORK_ID = {vnet} ]")
            elif roll < 0.93:
                admin.raw("one.host.status", rng.choice([0, 1]), rng.choice([0, 1]))
            elif roll < 0.95:
                stopped = sim._cloud
                sim.stop()  # the lifecycle may move VMs until then: compare what it left
                before = members(stopped)
                sim = start_sim(tmp_path, lifecycle)
                assert members(sim._cloud) == before
                admin.proxy = One(sim.url, "").proxy
                for s in sessions:
                    s.proxy = admin.proxy
            check(sim._cloud)
    finally:
        sim.stop()


def test_restart_rebuilds_the_totals(tmp_path: Path) -> None:
    sim = start_sim(tmp_path)
    admin = One(sim.url, sim.oneadmin_session)
    seed(admin)
    for i in range(5):
        admin("one.vm.allocate", VM.format(name=f"r{i}", cpu=0.5, memory=128))
    before = totals(sim._cloud.index)
    sim.stop()
    sim = start_sim(tmp_path)
    try:
        cloud = sim._cloud
        cloud.index.sync(cloud.pools["vm"])
        assert totals(cloud.index) == before
        assert before["hosts"] == {0: (250, 640 * 1024, [0, 1, 2, 3, 4])}
    finally:
        sim.stop()


def test_unplaced_vm_is_woken_after_restart(tmp_path: Path) -> None:
    sim: EmbeddedOpenNebula = start_sim(tmp_path)
    admin = One(sim.url, sim.oneadmin_session)
    seed(admin)
    big = admin("one.vm.allocate", VM.format(name="big", cpu=6, memory=128))
    waiting = admin("one.vm.allocate", VM.format(name="w", cpu=6, memory=128))
    assert waiting in sim._cloud.unplaced
    sim.stop()
    sim = start_sim(tmp_path)
    try:
        admin = One(sim.url, sim.oneadmin_session)
        assert waiting in sim._cloud.unplaced
        admin("one.vm.action", "terminate-hard", big)
        assert "<STATE>3</STATE>" in admin("one.vm.info", waiting)
        assert waiting not in sim._cloud.unplaced
    finally:
        sim.stop()


def test_member_lists_of_an_older_database_move_to_rows(tmp_path: Path) -> None:
    """A database whose image rows still hold their VMS list loads it, and keeps it after."""
    sim = start_sim(tmp_path)
    admin = One(sim.url, sim.oneadmin_session)
    seed(admin)
    vms = [admin("one.vm.allocate", VM.format(name=f"m{i}", cpu=0.1, memory=64)) for i in range(3)]
    sim.stop()
    store = Store(tmp_path / "one.db")
    store.db.execute("DELETE FROM member")
    store.db.execute(
        "UPDATE pool SET body = json_set(body, '$.vms', json(?)) WHERE kind = 'image' AND oid = 0",
        (str(vms),),
    )
    store.close()
    for _ in range(2):
        sim = start_sim(tmp_path)
        try:
            assert sim._cloud.pools["image"][0]["vms"] == vms
        finally:
            sim.stop()
