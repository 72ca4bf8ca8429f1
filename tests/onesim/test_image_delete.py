"""`one.image.delete` of a LOCKED image, and of the image a hot save-as is writing.

On oned both are races with its drivers (an image is LOCKED for ~15 ms with the dummy
datastore driver, a hot save-as for ~25 ms per driver answer), so they are tested here,
with drivers held back by `Lifecycle`, rather than in tests/differential. The replies are
the ones the real oned 6.10.5 gave (checked by hand, see each test)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle
from tests.onesim.conftest import One, seed, start_sim
from tests.onesim.test_lifecycle import state, wait_for

LOCKED = (
    "[one.image.delete] Image locked, use --force flag to remove the image. "
    "Force delete may leave some files on Datastore"
)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[EmbeddedOpenNebula]:
    """Hot save-as images wait 30 s for the mkfs answer; deletes take 0.3 s."""
    sim = start_sim(tmp_path / "one", Lifecycle(saveas=30, delete=0.3))
    seed(One(sim.url, sim.oneadmin_session))
    yield sim
    sim.stop()


def _user(sim: EmbeddedOpenNebula) -> tuple[One, int]:
    admin = One(sim.url, sim.oneadmin_session)
    uid = admin("one.user.allocate", "alice", "secret", "core", [1])
    return One(sim.url, "alice:secret"), uid


def _gone(one: One, iid: int) -> bool:
    return one.raw("one.image.info", iid)[0] is False


def _disk0(one: One, vm: int) -> str:
    doc = one("one.vm.info", vm)
    return doc[doc.index("<DISK>") : doc.index("</DISK>")]


def test_locked_image_needs_force_and_admin(slow: EmbeddedOpenNebula) -> None:
    """oned 6.10.5 `ImageDelete::request_execute` (src/rm/RequestManagerDelete.cc): a
    LOCKED image (`Image::is_locked`) without force is INTERNAL 'Image locked, ...' with
    the image's id (`att.resp_id = oid`), before any authorization; with force the
    request needs ADMIN (`att.auth_op = AuthRequest::ADMIN`), which its owner lacks, after
    FORCE_DELETE is written. `ImageManager::delete_image` then drops an image the driver
    never gave a SOURCE at once (`ipool->drop`, no DELETE state).

    Live oned: [False, 'Image locked, ...', 8192, <id>, -1], then [False, '[one.image.delete]
    User [509] : Not authorized to perform ADMIN IMAGE [774].', 512, -1, -1]."""
    admin = One(slow.url, slow.oneadmin_session)
    alice, uid = _user(slow)
    # the seeded image is READY; from now on the driver does not answer a copy for 30 s
    slow.cloud.lifecycle = replace(slow.cloud.lifecycle, image=30)
    iid = alice("one.image.allocate", 'NAME = "locked"\nPATH = "/var/tmp/x.img"', 1)
    assert alice.error("one.image.delete", iid, False) == [False, LOCKED, 0x2000, iid, -1]
    assert alice.error("one.image.delete", iid, True) == [
        False,
        f"[one.image.delete] User [{uid}] : Not authorized to perform ADMIN IMAGE [{iid}].",
        0x200,
        -1,
        -1,
    ]
    doc = alice("one.image.info", iid)
    assert "<STATE>4</STATE>" in doc and "<SOURCE><![CDATA[]]></SOURCE>" in doc
    assert "<FORCE_DELETE><![CDATA[YES]]></FORCE_DELETE>" in doc
    # a non-owner's failed force also writes FORCE_DELETE, and the lock comes first
    assert admin.error("one.image.delete", iid, False)[1] == LOCKED
    assert admin("one.image.delete", iid, True) == iid
    assert _gone(admin, iid)


def test_not_owner_force_writes_force_delete(slow: EmbeddedOpenNebula) -> None:
    """`ImageDelete::request_execute` writes FORCE_DELETE before `delete_object`
    authorizes: on oned a user without MANAGE gets 'Not authorized to perform MANAGE IMAGE'
    and the image keeps FORCE_DELETE = "YES" (also in tests/differential images)."""
    admin = One(slow.url, slow.oneadmin_session)
    alice, uid = _user(slow)
    err = alice.error("one.image.delete", 0, True)
    assert err[1] == (
        f"[one.image.delete] User [{uid}] : Not authorized to perform MANAGE IMAGE [0]."
    )
    assert "<FORCE_DELETE><![CDATA[YES]]></FORCE_DELETE>" in admin("one.image.info", 0)


def _saving_vm(sim: EmbeddedOpenNebula) -> tuple[One, One, int, int]:
    admin = One(sim.url, sim.oneadmin_session)
    alice, _ = _user(sim)
    vm = alice("one.template.instantiate", 0, "", False, "", False)
    wait_for(lambda: state(alice, vm) == (3, 3))
    saved = alice("one.vm.disksaveas", vm, 0, "saved", "", -1)
    assert state(alice, vm) == (3, 26)
    return admin, alice, vm, saved


def test_deleting_a_hot_saveas_image_before_mkfs(slow: EmbeddedOpenNebula) -> None:
    """`ImageManager::delete_image` (src/image/ImageManagerActions.cc), LOCKED case: an
    image marked SAVE_AS_HOT gives its SAVED_VM_ID, and after the delete that VM gets
    `clear_saveas_state` (HOTPLUG_SAVEAS -> RUNNING, src/vm/VirtualMachine.cc) and
    `clear_saveas_disk` (HOTPLUG_SAVE_AS, _SOURCE, _SNAPSHOT_ID and _ACTIVE removed).
    Before the mkfs answer there is no SOURCE: the image is dropped at once. Only
    oneadmin (force + ADMIN) can do it; the owner gets 'Image locked'.

    Live oned (8 of 8 tries): owner [False, 'Image locked, ...', 8192, <id>, -1];
    oneadmin force [True, <id>, 0]; one.image.info at once 'Error getting image [<id>].';
    the VM (3, 3) with no HOTPLUG_SAVE_AS* on its disk."""
    admin, alice, vm, saved = _saving_vm(slow)
    assert alice.error("one.image.delete", saved, False) == [False, LOCKED, 0x2000, saved, -1]
    assert alice.error("one.image.delete", saved, True)[2] == 0x200
    assert state(alice, vm) == (3, 26)
    assert admin("one.image.delete", saved, True) == saved
    assert _gone(admin, saved)
    assert state(alice, vm) == (3, 3)
    assert "HOTPLUG_SAVE_AS" not in _disk0(alice, vm)
    again = alice("one.vm.disksaveas", vm, 0, "again", "", -1)  # the VM can save again
    assert state(alice, vm) == (3, 26) and again != saved


def test_deleting_a_hot_saveas_image_while_copying(tmp_path: Path) -> None:
    """After the mkfs answer (`ImageManager::_mkfs`: SOURCE set, the disk gets
    HOTPLUG_SAVE_AS and _SOURCE, the TM copy starts) the image has a SOURCE, so the delete
    sends RM and shows DELETE until the driver answers; the VM is let go at once as above,
    and the copy's answer later changes nothing (oned logs 'Wrong state in TrM answer').

    Live oned: oneadmin force [True, <id>, 0]; STATE 7, then gone; the VM (3, 3), its disk
    without HOTPLUG_SAVE_AS*, and still so 0.5 s later."""
    sim = start_sim(tmp_path / "one", Lifecycle(saveas=0.05, saveas_copy=0.5, delete=0.3))
    try:
        seed(One(sim.url, sim.oneadmin_session))
        admin, alice, vm, saved = _saving_vm(sim)
        wait_for(lambda: "<HOTPLUG_SAVE_AS_SOURCE>" in _disk0(alice, vm))
        assert "<SOURCE><![CDATA[dummy_path]]></SOURCE>" in admin("one.image.info", saved)
        assert alice.error("one.image.delete", saved, False)[1] == LOCKED
        assert admin("one.image.delete", saved, True) == saved
        assert "<STATE>7</STATE>" in admin("one.image.info", saved)
        assert state(alice, vm) == (3, 3)
        assert "HOTPLUG_SAVE_AS" not in _disk0(alice, vm)
        wait_for(lambda: _gone(admin, saved))
        time.sleep(0.6)  # past the copy's answer
        assert state(alice, vm) == (3, 3)
        assert "HOTPLUG_SAVE_AS" not in _disk0(alice, vm)
    finally:
        sim.stop()
