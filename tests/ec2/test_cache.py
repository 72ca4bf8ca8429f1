import asyncio

from ec2gw.ec2.cache import TTLCache


def test_loads_once_within_the_ttl_and_again_after():
    loads = []

    async def load():
        loads.append(1)
        return len(loads)

    async def run():
        cache = TTLCache(0.05)
        assert await cache.get("k", load) == 1
        assert await cache.get("k", load) == 1
        await asyncio.sleep(0.06)
        assert await cache.get("k", load) == 2

    asyncio.run(run())


def test_bounded():
    async def run():
        cache = TTLCache(60, max_entries=3)
        for i in range(10):
            await cache.get(i, lambda i=i: asyncio.sleep(0, result=i))
        assert len(cache._entries) == 3

    asyncio.run(run())
