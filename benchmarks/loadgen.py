"""Load generation: wrk (C, its own process) replaying pre-signed requests, and a small
asyncio client for the launch/terminate cycle, which needs each reply to build the next
request. Every loop is bounded by a request count and by time."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from benchmarks.signing import HttpRequest

WRK = "wrk"


@dataclass
class Measurement:
    scenario: str
    target: str
    size: int | None
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    notes: dict[str, object] = field(default_factory=dict)

    def row(self) -> dict[str, object]:
        return asdict(self)


def _lua_string(text: str) -> str:
    level = "=" * 3
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def wrk_script(requests: list[HttpRequest], limit: int) -> str:
    """A wrk script cycling through `requests`, stopping after `limit` responses."""
    entries = []
    for r in requests:
        headers = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in r.headers)
        body = _lua_string(r.body.decode())
        entries.append(
            f"  {{{_lua_string(r.method)}, {_lua_string(r.path)}, {{{headers}}}, {body}}}"
        )
    table = ",\n".join(entries)
    return f"""
local reqs = {{
{table}
}}
local n, i, responses, limit = #reqs, 0, 0, {limit}
function request()
  i = i + 1
  if i > n then i = 1 end
  local r = reqs[i]
  return wrk.format(r[1], r[2], r[3], r[4])
end
function response(status, headers, body)
  responses = responses + 1
  if responses >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCH_JSON {{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def run_wrk(
    scenario: str,
    target: str,
    size: int | None,
    requests: list[HttpRequest],
    *,
    connections: int,
    seconds: float,
    limit: int,
    timeout: float = 60.0,
) -> Measurement:
    """Replay `requests` with wrk (one thread, `connections` keep-alive connections)."""
    split = urlsplit(requests[0].url)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(requests, limit))
    try:
        argv = [
            WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={round(timeout)}s", "-s", script.name, f"{split.scheme}://{split.netloc}/",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30)
    finally:
        Path(script.name).unlink()
    match = re.search(r"BENCH_JSON (\{.*\})", done.stdout)
    if match is None:
        raise RuntimeError(f"wrk failed for {scenario}: {done.stdout}\n{done.stderr}")
    out = json.loads(match.group(1))
    duration = out["duration_us"] / 1e6
    rps = out["requests"] / duration if duration else 0.0
    notes: dict[str, object] = {}
    if out["requests"] >= limit and out["mean_us"]:
        # wrk keeps running until -d after a thread stops: use Little's law instead.
        rps = connections / (out["mean_us"] / 1e6)
        notes["stopped_at_limit"] = True
    return Measurement(
        scenario=scenario,
        target=target,
        size=size,
        connections=connections,
        requests=out["requests"],
        seconds=round(duration, 3),
        rps=round(rps, 1),
        p50_ms=round(out["p50_us"] / 1000, 2),
        p99_ms=round(out["p99_us"] / 1000, 2),
        errors=out["errors"] + out["status_errors"],
        notes=notes,
    )


def send(client: httpx.Client, request: HttpRequest) -> httpx.Response:
    return client.request(
        request.method, request.url, headers=list(request.headers), content=request.body
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class CycleResult:
    cycles: int
    seconds: float
    errors: int
    latencies: dict[str, list[float]]


async def run_cycles(
    first: list[HttpRequest],
    then: Callable[[bytes], HttpRequest | None],
    *,
    connections: int,
    seconds: float,
) -> CycleResult:
    """Each worker sends the next pre-signed `first` request, then `then(reply)` (signed on
    the spot: signing is outside the timed part). At most len(first) cycles, `seconds` long."""
    latencies: dict[str, list[float]] = {"first": [], "then": [], "cycle": []}
    errors = 0
    queue = list(reversed(first))
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def timed(client: httpx.AsyncClient, request: HttpRequest, kind: str) -> httpx.Response:
        started = time.perf_counter()
        reply = await client.request(
            request.method, request.url, headers=list(request.headers), content=request.body
        )
        latencies[kind].append(time.perf_counter() - started)
        return reply

    async def worker(client: httpx.AsyncClient) -> int:
        nonlocal errors
        cycles = 0
        while queue and time.monotonic() < deadline:
            started = time.perf_counter()
            reply = await timed(client, queue.pop(), "first")
            follow = then(reply.content) if reply.status_code == 200 else None
            if follow is None:
                errors += 1
                continue
            if (await timed(client, follow, "then")).status_code != 200:
                errors += 1
                continue
            latencies["cycle"].append(time.perf_counter() - started)
            cycles += 1
        return cycles

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
        counts = await asyncio.gather(*(worker(client) for _ in range(connections)))
    return CycleResult(sum(counts), time.perf_counter() - started, errors, latencies)


def cycle_measurement(
    scenario: str, target: str, size: int | None, connections: int, result: CycleResult
) -> Measurement:
    both = [
        a + b for a, b in zip(result.latencies["first"], result.latencies["then"], strict=False)
    ]
    return Measurement(
        scenario=scenario,
        target=target,
        size=size,
        connections=connections,
        requests=result.cycles,
        seconds=round(result.seconds, 3),
        rps=round(result.cycles / result.seconds, 1) if result.seconds else 0.0,
        p50_ms=round(percentile(both, 50) * 1000, 2),
        p99_ms=round(percentile(both, 99) * 1000, 2),
        errors=result.errors,
        notes={
            f"{kind}_{q}_ms": round(percentile(values, q) * 1000, 2)
            for kind, values in result.latencies.items()
            if kind != "cycle"
            for q in (50, 99)
        },
    )
