"""Per-access-key request throttling, so that one client cannot starve the others.

A token bucket per access key (bounded number of keys, least recently used dropped).
Throttled requests get `RequestLimitExceeded` with HTTP 503, the one answer every EC2
client retries with back-off (`shared/reference/ec2-clients.md` §2). Each gateway process
keeps its own buckets: with N replicas a key may get up to N times the rate.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class Throttle:
    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take one token from `key`'s bucket if there is one."""
        if not self.enabled:
            return True
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
