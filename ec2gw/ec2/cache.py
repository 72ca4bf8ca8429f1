"""A small time-bounded cache for facts that change rarely (zones, a user's clusters, keys).

Bounded in size and age, so a change in OpenNebula shows within `seconds`.

Single flight: when an entry is missing or expired, concurrent `get`s of that key share one
`load` instead of each asking OpenNebula (32 clients with one access key would otherwise
make 32 identical calls every time the entry expires, and each would wait for its own).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class TTLCache(Generic[T]):
    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._flights: dict[Hashable, asyncio.Task[T]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, else the result of `load()`, shared with concurrent callers.

        A failed load reaches every waiter as the same exception and is not cached.
        Cancelling one waiter does not cancel the load the others wait for.
        """
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        flight = self._flights.get(key)
        # A flight of another event loop (module-level caches outlive a test's loop) is
        # not awaitable here: start a new one.
        if flight is None or flight.get_loop() is not asyncio.get_running_loop():
            flight = asyncio.ensure_future(self._load(key, load, now))
            self._flights[key] = flight
        # shield: cancelling this waiter leaves the load to the others (and marks a failed
        # load's error as seen when every waiter is gone).
        return await asyncio.shield(flight)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]], started: float) -> T:
        current = asyncio.current_task()
        try:
            value = await load()
        finally:
            # Not ours any more if `discard`/`clear` came while loading: the value may be
            # older than the change that called them, so it is returned but not kept.
            ours = self._flights.get(key) is current
            if ours:
                del self._flights[key]
        if ours:
            # Valid from when the load began: OpenNebula's answer is at least that recent.
            self._entries[key] = (started + self.seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def discard(self, key: Hashable) -> None:
        """Forget `key`, and let no load already under way fill it in."""
        self._entries.pop(key, None)
        self._flights.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._flights.clear()
