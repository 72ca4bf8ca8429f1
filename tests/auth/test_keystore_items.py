"""Access keys one attribute each (`EC2_ACCESS_KEY_<key id>`), added with a merge update:
keys created at the same time keep each other, and deleting one leaves the others."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from ec2gw.auth.keys import KeyCipher, KeyStore
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.one.sessions import ServerCipherSessions
from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[EmbeddedOpenNebula]:
    sim = EmbeddedOpenNebula(tmp_path / "one", lifecycle=Lifecycle())
    sim.start()
    with xmlrpc.client.ServerProxy(sim.url) as admin:
        allocate = admin.__getattr__("one.user.allocate")
        assert allocate(sim.oneadmin_session, "carol", "pw", "core", [1])[0]
    yield sim
    sim.stop()


async def _concurrent_keys(sim: EmbeddedOpenNebula) -> None:
    one = OneClient(sim.url)
    sessions = ServerCipherSessions(sim.server_user, sim.server_secret)
    keys = KeyStore(one, sessions, KeyCipher("kek"), cache_seconds=0)
    try:
        created = await asyncio.gather(*(keys.create("carol") for _ in range(8)))
        listed = {k.access_key_id for k in await keys.list("carol")}
        assert listed == {k.access_key_id for k in created}
        for key in created:
            found = await keys.lookup(key.access_key_id)
            assert found is not None and found.secret == key.secret
        user = await one.call_document(sessions.admin, "one.user.info", created[0].uid)
        names = [c.tag for c in user.find("TEMPLATE") if c.tag.startswith("EC2_ACCESS_KEY")]
        assert sorted(names) == sorted(documents.ACCESS_KEYS.name(k.access_key_id) for k in created)

        assert await keys.delete(created[0].access_key_id)
        assert not await keys.delete(created[0].access_key_id)
        assert await keys.lookup(created[0].access_key_id) is None
        remaining = {k.access_key_id for k in await keys.list("carol")}
        assert remaining == {k.access_key_id for k in created[1:]}
    finally:
        await one.close()


def test_keys_created_together_all_work_and_one_is_deleted_alone(sim):
    asyncio.run(_concurrent_keys(sim))
