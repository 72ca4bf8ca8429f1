"""Key lookups against the embedded OpenNebula: cached, shared by concurrent requests,
and still bounded in age (a deleted key or a disabled user stops working)."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from ec2gw.auth.keys import AccessKey, KeyCipher, KeyStore
from ec2gw.one.client import OneClient
from ec2gw.one.sessions import ServerCipherSessions
from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle
from ec2gw.protocol.errors import EC2Error

CLIENTS = 32


class CountingClient(OneClient):
    """A real client that counts `one.user.info` calls; each may wait at `gate` or fail."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.user_infos = 0
        self.gate: asyncio.Event | None = None
        self.failures: list[Exception] = []

    async def call(self, session: str, method: str, *args: object) -> object:
        if method == "one.user.info":
            self.user_infos += 1
            if self.gate is not None:
                await self.gate.wait()
            if self.failures:
                raise self.failures.pop(0)
        return await super().call(session, method, *args)


def oneadmin(sim: EmbeddedOpenNebula, method: str, *args: object) -> None:
    with xmlrpc.client.ServerProxy(sim.url) as proxy:
        assert getattr(proxy, method)(sim.oneadmin_session, *args)[0]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[EmbeddedOpenNebula]:
    sim = EmbeddedOpenNebula(tmp_path / "one", lifecycle=Lifecycle())
    sim.start()
    admin = xmlrpc.client.ServerProxy(sim.url)
    assert admin.__getattr__("one.user.allocate")(sim.oneadmin_session, "alice", "pw", "core", [1])[
        0
    ]
    yield sim
    sim.stop()


async def store(sim: EmbeddedOpenNebula, cache_seconds: float) -> tuple[KeyStore, AccessKey]:
    """A key store counting its calls, and a new key of alice's (cache empty)."""
    one = CountingClient(sim.url)
    sessions = ServerCipherSessions(sim.server_user, sim.server_secret)
    keys = KeyStore(one, sessions, KeyCipher("kek"), cache_seconds=cache_seconds)
    key = await keys.create("alice")
    one.user_infos = 0
    return keys, key


async def together(keys: KeyStore, key_id: str, n: int = CLIENTS) -> list[AccessKey | None]:
    """`n` concurrent lookups, the OpenNebula answer held until all of them have asked."""
    one: CountingClient = keys._one  # type: ignore[assignment]
    one.gate = asyncio.Event()
    tasks = [asyncio.ensure_future(keys.lookup(key_id)) for _ in range(n)]
    await asyncio.sleep(0.01)
    one.gate.set()
    try:
        return await asyncio.gather(*tasks)
    finally:
        one.gate = None


async def test_concurrent_lookups_make_one_call_and_expire(sim):
    keys, key = await store(sim, cache_seconds=0.3)
    try:
        found = await together(keys, key.access_key_id)
        assert {f.secret for f in found} == {key.secret}
        assert keys._one.user_infos == 1
        await keys.lookup(key.access_key_id)
        assert keys._one.user_infos == 1  # cached
        await asyncio.sleep(0.35)
        await together(keys, key.access_key_id)
        assert keys._one.user_infos == 2  # expired: one new call for all
    finally:
        await keys._one.close()


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_cached(sim):
    keys, key = await store(sim, cache_seconds=60)
    failure = EC2Error("Unavailable", "OpenNebula is not answering", 503)
    keys._one.failures.append(failure)
    keys._one.gate = asyncio.Event()
    try:
        tasks = [asyncio.ensure_future(keys.lookup(key.access_key_id)) for _ in range(8)]
        await asyncio.sleep(0.01)
        keys._one.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(r is failure for r in results)
        assert keys._one.user_infos == 1
        keys._one.gate = None
        found = await keys.lookup(key.access_key_id)
        assert found is not None and found.secret == key.secret
        assert keys._one.user_infos == 2
    finally:
        await keys._one.close()


async def test_a_cancelled_waiter_leaves_the_lookup_to_the_others(sim):
    keys, key = await store(sim, cache_seconds=60)
    keys._one.gate = asyncio.Event()
    try:
        tasks = [asyncio.ensure_future(keys.lookup(key.access_key_id)) for _ in range(3)]
        await asyncio.sleep(0.01)
        tasks[0].cancel()
        await asyncio.sleep(0)
        keys._one.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        assert [t.secret for t in await asyncio.gather(*tasks[1:])] == [key.secret] * 2
        assert keys._one.user_infos == 1
    finally:
        await keys._one.close()


async def test_deleted_key_and_disabled_user_stop_working_within_the_cache_time(sim):
    keys, key = await store(sim, cache_seconds=0.3)
    try:
        assert await keys.lookup(key.access_key_id) is not None
        await asyncio.to_thread(oneadmin, sim, "one.user.enable", key.uid, False)
        await asyncio.sleep(0.35)
        assert await together(keys, key.access_key_id, 4) == [None] * 4
        await asyncio.to_thread(oneadmin, sim, "one.user.enable", key.uid, True)
        await asyncio.sleep(0.35)
        assert await keys.lookup(key.access_key_id) is not None
        assert await keys.delete(key.access_key_id)
        assert await keys.lookup(key.access_key_id) is None  # through the store: at once
    finally:
        await keys._one.close()
