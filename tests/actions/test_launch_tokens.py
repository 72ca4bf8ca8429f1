"""The ClientToken memory: reads only new VMs, forgets what is found gone, stays bounded."""

from __future__ import annotations

from lxml import etree

from ec2gw.actions.launch_tokens import TokenIndex


def _vm(vm_id: int, token: str = "") -> etree._Element:
    user = f"<EC2_CLIENT_TOKEN><![CDATA[{token}]]></EC2_CLIENT_TOKEN>" if token else ""
    return etree.fromstring(f"<VM><ID>{vm_id}</ID><USER_TEMPLATE>{user}</USER_TEMPLATE></VM>")


class Cloud:
    """The user's VMs, and the `newest` each read asked from."""

    def __init__(self) -> None:
        self.vms: list[etree._Element] = []
        self.asked: list[int] = []

    async def read(self, newest: int) -> list[etree._Element]:
        self.asked.append(newest)
        return [vm for vm in self.vms if int(vm.findtext("ID")) > newest]


USER = ("http://one/RPC2", 5)


async def test_reads_only_vms_newer_than_the_newest_seen():
    index, cloud = TokenIndex(), Cloud()
    cloud.vms = [_vm(1, "a"), _vm(2), _vm(3, "b"), _vm(4, "b")]
    assert await index.vm_ids(USER, "b", cloud.read) == [3, 4]
    cloud.vms.append(_vm(9, "c"))
    assert await index.vm_ids(USER, "c", cloud.read) == [9]
    assert await index.vm_ids(USER, "a", cloud.read) == [1]
    assert await index.vm_ids(USER, "unknown", cloud.read) == []
    assert cloud.asked == [-1, 4, 9, 9]


async def test_users_are_kept_apart_and_forgotten_vms_dropped():
    index, cloud, other = TokenIndex(), Cloud(), Cloud()
    cloud.vms, other.vms = [_vm(1, "t"), _vm(2, "t")], [_vm(3, "t")]
    assert await index.vm_ids(USER, "t", cloud.read) == [1, 2]
    assert await index.vm_ids(("http://one/RPC2", 6), "t", other.read) == [3]
    index.forget(USER, "t", {2})
    assert await index.vm_ids(USER, "t", cloud.read) == [1]
    index.forget(USER, "t", {1})
    index.forget(USER, "never-seen", {1})
    assert await index.vm_ids(USER, "t", cloud.read) == []


async def test_memory_is_bounded_in_users_and_vms():
    index = TokenIndex(max_users=2, max_vms=3)
    clouds = {uid: Cloud() for uid in (1, 2, 3)}
    for uid, cloud in clouds.items():
        cloud.vms = [_vm(uid, "t")]
        await index.vm_ids(("e", uid), "t", cloud.read)
    await index.vm_ids(("e", 1), "t", clouds[1].read)  # forgotten first: read in full again
    assert clouds[1].asked == [-1, -1]
    many = Cloud()
    many.vms = [_vm(i, f"t{i}") for i in range(1, 6)]
    await index.vm_ids(("e", 9), "t1", many.read)
    await index.vm_ids(("e", 9), "t1", many.read)  # 5 remembered > 3: rebuilt by a full read
    assert many.asked == [-1, -1]
