import asyncio
import gc

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


class GatedLoad:
    """A load that counts its calls and answers when `gate` opens (or raises `error`)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.error = error

    async def __call__(self) -> int:
        self.calls += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.calls


async def started(cache: TTLCache, load: GatedLoad, n: int) -> list[asyncio.Future]:
    tasks = [asyncio.ensure_future(cache.get("k", load)) for _ in range(n)]
    await asyncio.sleep(0)
    return tasks


def test_concurrent_misses_share_one_load():
    async def run():
        cache, load = TTLCache(60), GatedLoad()
        tasks = await started(cache, load, 50)
        load.gate.set()
        assert await asyncio.gather(*tasks) == [1] * 50
        assert load.calls == 1 and not cache._flights

    asyncio.run(run())


def test_a_failed_load_is_the_same_error_for_all_and_not_kept():
    async def run():
        failure = RuntimeError("down")
        cache, load = TTLCache(60), GatedLoad(failure)
        tasks = await started(cache, load, 5)
        load.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(r is failure for r in results) and load.calls == 1
        load.error = None
        assert await cache.get("k", load) == 2

    asyncio.run(run())


def test_cancelling_a_waiter_does_not_cancel_the_load():
    async def run():
        cache, load = TTLCache(60), GatedLoad()
        tasks = await started(cache, load, 3)
        tasks[0].cancel()
        await asyncio.sleep(0)
        load.gate.set()
        assert await asyncio.gather(*tasks[1:]) == [1, 1]
        assert tasks[0].cancelled() and load.calls == 1
        # Every waiter gone: the load still finishes, and its error is not reported as
        # "never retrieved".
        reported = []
        asyncio.get_running_loop().set_exception_handler(lambda _, c: reported.append(c))
        failing = GatedLoad(RuntimeError("down"))
        lonely = asyncio.ensure_future(cache.get("other", failing))
        await asyncio.sleep(0)
        lonely.cancel()
        failing.gate.set()
        await asyncio.sleep(0.01)
        del lonely
        gc.collect()
        assert failing.calls == 1 and not cache._flights and not reported

    asyncio.run(run())


def test_a_load_under_way_when_discarded_is_not_kept():
    async def run():
        cache, load = TTLCache(60), GatedLoad()
        tasks = await started(cache, load, 2)
        cache.discard("k")  # e.g. the key was deleted while it was being looked up
        load.gate.set()
        assert await asyncio.gather(*tasks) == [1, 1]
        assert await cache.get("k", load) == 2
        assert await cache.get("k", load) == 2

    asyncio.run(run())


def test_a_flight_of_a_closed_event_loop_is_not_awaited():
    """Module-level caches outlive event loops (each test runs its own)."""
    cache = TTLCache(60)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(started(cache, GatedLoad(), 1))
    loop.close()  # with the load still pending
    assert cache._flights
    assert asyncio.run(cache.get("k", lambda: asyncio.sleep(0, result=7))) == 7
