"""Fault injection: slow or failing methods, and an unavailable server.

From Python (`sim.faults`)::

    sim.faults.delay("one.vm.info", 2.0)              # every one.vm.info takes 2 s more
    sim.faults.fail("one.vm.allocate", 8192, "boom", times=1)   # next call: INTERNAL error
    sim.faults.unavailable("503")                      # or "close" / "refuse"
    sim.faults.available()
    sim.faults.clear()

Over HTTP, for a simulator running in another process, `POST /_sim/faults` with a JSON
object (every key optional; the reply is `{"ok": true}`)::

    {"clear": true,
     "delay": {"method": "one.vm.info", "seconds": 2.0},
     "fail": {"method": "one.vm.allocate", "code": 8192, "message": "boom", "times": 1},
     "unavailable": {"mode": "503", "seconds": 5},
     "available": true}

`fail` replies with oned's failure array `[false, "[method] message", code, -1, -1]`
(`times` omitted or null = always). `unavailable` modes: `"503"` answers HTTP 503,
`"close"` closes each connection without a reply, `"refuse"` stops listening altogether
(connection refused) — give `seconds` to come back by itself, since the control endpoint
is then unreachable too. `method` may be `"*"` for every method.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Failure:
    code: int
    message: str
    times: int | None  # None = always


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delays: dict[str, float] = {}
        self._failures: dict[str, Failure] = {}
        self._mode: str | None = None
        self._until: float | None = None
        self.on_change: Callable[[], None] = lambda: None

    # --- configuration ------------------------------------------------------------------

    def delay(self, method: str, seconds: float) -> None:
        with self._lock:
            self._delays[method] = seconds

    def fail(self, method: str, code: int, message: str, times: int | None = None) -> None:
        with self._lock:
            self._failures[method] = Failure(code, message, times)

    def unavailable(self, mode: str = "503", seconds: float | None = None) -> None:
        if mode not in ("503", "close", "refuse"):
            raise ValueError(f"unknown unavailability mode {mode!r}")
        with self._lock:
            self._mode = mode
            self._until = None if seconds is None else time.monotonic() + seconds
        self.on_change()

    def available(self) -> None:
        with self._lock:
            self._mode = None
            self._until = None
        self.on_change()

    def clear(self) -> None:
        with self._lock:
            self._delays.clear()
            self._failures.clear()
            self._mode = None
            self._until = None
        self.on_change()

    def apply_json(self, body: dict) -> None:
        """The `POST /_sim/faults` body (see the module docstring)."""
        if body.get("clear"):
            self.clear()
        if "delay" in body:
            d = body["delay"]
            self.delay(d["method"], float(d["seconds"]))
        if "fail" in body:
            f = body["fail"]
            self.fail(f["method"], int(f["code"]), str(f.get("message", "")), f.get("times"))
        if "unavailable" in body:
            u = body["unavailable"]
            u = u if isinstance(u, dict) else {"mode": u}
            self.unavailable(str(u.get("mode", "503")), u.get("seconds"))
        if body.get("available"):
            self.available()

    # --- queries (used by the server) ---------------------------------------------------

    @property
    def mode(self) -> str | None:
        with self._lock:
            if self._until is not None and time.monotonic() >= self._until:
                self._mode = None
                self._until = None
            return self._mode

    def until(self) -> float | None:
        with self._lock:
            return self._until

    def delay_for(self, method: str) -> float:
        with self._lock:
            return self._delays.get(method, self._delays.get("*", 0.0))

    def failure_for(self, method: str) -> Failure | None:
        """The injected failure for this call, consuming one of its `times`."""
        with self._lock:
            key = method if method in self._failures else "*"
            failure = self._failures.get(key)
            if failure is None:
                return None
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[key]
            return failure
