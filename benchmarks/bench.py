"""`python -m benchmarks.bench [--quick] [--sizes 100,1000,10000]`: ec2gw side by side with
moto_server, the raw OpenNebula call and a bare ASGI app. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks import paired, report, servers
from benchmarks.loadgen import Measurement, cycle_measurement, run_cycles, run_wrk, send
from benchmarks.seed import INSTANCE_ID, Peer, ec2gw_peer, load, moto_amis_file, moto_peer
from benchmarks.signing import HttpRequest, Target, xmlrpc_request
from ec2gw.ec2 import ids
from ec2gw.one.sessions import ServerCipherSessions

HERE = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or HERE / "results")
READS = (
    "DescribeRegions",
    "DescribeImages",
    "DescribeInstances all",
    "DescribeInstances one id",
    "DescribeInstances tag filter",
    "DescribeInstances page of 100",
)
POOL = 64  # pre-signed copies of a read request, replayed round robin
BARE = "bare ASGI (fixed body)"
RAW_CALLS = {  # the XML-RPC call behind a DescribeInstances, and its arguments
    "DescribeInstances all": ("one.vmpool.infoextended", lambda one_id: (-3, -1, -1, -1)),
    "DescribeInstances one id": ("one.vmpool.infoset", lambda one_id: (str(one_id), True)),
}
ONE_CONNECTION = report.ONE_CONNECTION  # DescribeRegions, one request at a time (c=1)
ONE_CONNECTION_SECONDS = 3.0
PAIR_MIN_SECONDS = 2  # the shortest side of a paired round (wrk counts whole seconds)
WARM_UP_SECONDS = 1  # wrk, same shape, before each side of a paired round; not kept


@dataclass
class Options:
    sizes: list[int]
    connections: int
    seconds: float
    max_seconds: float
    max_requests: int
    mutations: int
    workers: int
    profile: bool
    output: Path
    keep: bool
    load_budget: float
    pair_rounds: int = 5
    pair_requests: int = 30


def read_params(scenario: str, peer: Peer) -> tuple[str, dict[str, str]]:
    if scenario in ("DescribeRegions", "DescribeImages"):
        return scenario, {}
    params = {
        "DescribeInstances all": {},
        "DescribeInstances one id": {"InstanceId.1": peer.first_batch[0]},
        "DescribeInstances tag filter": {"Filter.1.Name": "tag:batch", "Filter.1.Value.1": "b0"},
        "DescribeInstances page of 100": {"MaxResults": "100"},
    }[scenario]
    return "DescribeInstances", params


def probe(request: HttpRequest, tries: int = 3) -> float:
    """Seconds one request takes alone (best of `tries`, one try if slow); must succeed."""
    best = float("inf")
    with httpx.Client(timeout=600) as client:
        for _ in range(tries):
            started = time.perf_counter()
            reply = send(client, request)
            best = min(best, time.perf_counter() - started)
            if reply.status_code != 200:
                raise RuntimeError(f"{request.url}: {reply.status_code} {reply.text[:300]}")
            if best > 1.0:
                break
    return best


@dataclass(frozen=True)
class Shape:
    connections: int
    seconds: float
    timeout: float


def shape(single: float, opts: Options) -> Shape:
    """How to load a request that takes `single` seconds alone: `opts.connections`
    connections for quick requests, fewer (at least 4) for slow ones; long enough for the
    slowest peer to answer a few times; the wrk timeout above the queueing delay."""
    connections = min(opts.connections, max(4, int(opts.seconds / single)))
    if 2 * single * connections > opts.max_seconds:
        connections = max(1, int(opts.max_seconds / (2 * single)))
    seconds = min(max(opts.seconds, 3 * single * connections), opts.max_seconds)
    seconds = max(seconds, min(2.5 * single, 180.0))
    timeout = min(max(60.0, 3 * single * connections), 300.0)
    return Shape(connections, seconds, timeout)


def probe_only(scenario: str, target: str, size: int, single: float) -> Measurement:
    """A request too slow to load (over max_seconds/2 alone): its one timed answer."""
    ms = round(single * 1000, 2)
    return Measurement(
        scenario, target, size, 1, 1, round(single, 3), round(1 / single, 3), ms, ms, 0,
        notes={"probe_only": True},
    )  # fmt: skip


def _machine_busy() -> float:
    """CPU seconds all cores have been busy since boot (/proc/stat, first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / servers.CLOCK_TICKS


def _children_cpu() -> float:
    """CPU time of this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle(watch: dict[str, servers.Server], timeout: float = 5.0) -> None:
    """Until the watched servers are idle (under a fiftieth of a core over 0.1 s), so that
    requests still in flight when wrk stopped are not counted in the next measurement."""
    deadline = time.monotonic() + timeout
    before = sum(server.cpu_seconds() for server in watch.values())
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = sum(server.cpu_seconds() for server in watch.values())
        if now - before < 0.02:
            return
        before = now


@dataclass
class Side:
    """One side of a paired comparison: what is replayed, and whose CPU is counted."""

    scenario: str
    target: str
    size: int | None
    pool: list[HttpRequest]
    watch: dict[str, servers.Server]


_METRIC = re.compile(
    r'^(ec2gw_opennebula_call_seconds_(?:count|sum))\{method="([^"]+)",ok="(\w+)"\} (\S+)$'
)


def one_calls(gateway: servers.Server) -> dict[tuple[str, str], float]:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if m := _METRIC.match(line):
            kind = "count" if m.group(1).endswith("count") else "sum"
            out[(kind, m.group(2))] = out.get((kind, m.group(2)), 0.0) + float(m.group(4))
    return out


def one_call_notes(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], requests: int
) -> dict[str, object]:
    """OpenNebula calls the gateway made per EC2 request, and its time waiting on them."""
    if not requests:
        return {}
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    calls = {m: round(v / requests, 2) for (kind, m), v in delta.items() if kind == "count" and v}
    wait = sum(v for (kind, _), v in delta.items() if kind == "sum")
    return {"one_calls_per_request": calls, "one_ms_per_request": round(wait / requests * 1000, 2)}


class Bench:
    def __init__(self, opts: Options, work: Path) -> None:
        self.opts = opts
        self.work = work
        self.logs = work / "logs"
        self.results: list[Measurement] = []
        self.paired: list[dict[str, Any]] = []
        self.profiles: dict[str, Any] = {}
        self.loading: dict[str, dict[str, float]] = {}
        self.started: list[servers.Server] = []
        self.t0 = time.time()
        self.load_deadline = 0.0
        self.meta: dict[str, Any] = {}

    def start(self) -> None:
        self.bare = self._keep(servers.start_bare(self.logs))
        self.sim = self._keep(servers.start_sim(self.work / "opennebula", self.logs))
        self.gateway = self._keep(servers.start_gateway(self.sim, self.logs))
        self.moto = self._keep(
            servers.start_moto(self.logs, moto_amis_file(self.work / "amis.json"))
        )
        self.ec2gw_side = {"gateway": self.gateway, "opennebula": self.sim}
        self.ec2gw = ec2gw_peer(self.gateway, self.sim, max(self.opts.sizes) + 1000)
        self.ref = moto_peer(self.moto)
        sessions = ServerCipherSessions(
            self.sim.extra["server_user"], self.sim.extra["server_secret"]
        )
        self.bench_session = sessions.for_user("bench")

    def _keep(self, server: servers.Server) -> servers.Server:
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def record(self, m: Measurement) -> Measurement:
        self.results.append(m)
        self.show(m)
        return m

    def show(self, m: Measurement, tag: str = "") -> None:
        self.log(
            f"  {tag}{m.scenario:<34} {m.target:<14} N={m.size!s:<6} c={m.connections:<3} "
            f"{m.rps:>9.1f}/s p50 {m.p50_ms:>8.2f} ms p99 {m.p99_ms:>8.2f} ms "
            f"n={m.requests} err={m.errors}"
        )

    def single(self, scenario: str, target: str, size: int | None) -> Measurement | None:
        """The (single, loaded) measurement of a scenario recorded in this run."""
        return next(
            (
                m
                for m in self.results
                if (m.scenario, m.target, m.size) == (scenario, target, size)
                and not m.notes.get("probe_only")
            ),
            None,
        )

    # --- scenarios --------------------------------------------------------------------

    def bare_request(self) -> HttpRequest:
        return Target("bare", self.bare.url, "x", "x", "x").sign("DescribeRegions")

    def bare_ceiling(self) -> None:
        request = self.bare_request()
        shaped = shape(probe(request), self.opts)
        self.wrk(BARE, "bare-asgi", None, [request], shaped, {"bare": self.bare})

    def wrk(self, *args: Any, **kwargs: Any) -> Measurement:
        """`measure`, recorded in the results."""
        return self.record(self.measure(*args, **kwargs))

    def measure(
        self, scenario: str, target: str, size: int | None, pool: list[HttpRequest],
        shaped: Shape, watch: dict[str, servers.Server], gateway: servers.Server | None = None,
    ) -> Measurement:  # fmt: skip
        """One wrk run; CPU used by each watched server (and wrk) per request in the notes."""
        before = one_calls(gateway) if gateway else {}
        cpu = {name: server.cpu_seconds() for name, server in watch.items()}
        wrk_cpu, busy, started = _children_cpu(), _machine_busy(), time.monotonic()
        m = run_wrk(
            scenario, target, size, pool, connections=shaped.connections,
            seconds=shaped.seconds, limit=self.opts.max_requests, timeout=shaped.timeout,
        )  # fmt: skip
        if m.requests:
            used = {name: server.cpu_seconds() - cpu[name] for name, server in watch.items()}
            used["wrk"] = _children_cpu() - wrk_cpu
            m.notes["cpu_ms_per_request"] = {
                name: round(seconds * 1000 / m.requests, 3) for name, seconds in used.items()
            }
            # Other work on the machine meanwhile (cores busy outside this benchmark).
            others = _machine_busy() - busy - sum(used.values())
            m.notes["other_cores_busy"] = round(others / (time.monotonic() - started), 2)
        if gateway:
            m.notes.update(one_call_notes(before, one_calls(gateway), m.requests))
        return m

    def reads(self, size: int) -> dict[str, tuple[int, float]]:
        shapes: dict[str, Shape] = {}
        for scenario in READS:
            pools = {}
            for peer in (self.ec2gw, self.ref):
                action, params = read_params(scenario, peer)
                pools[peer.name] = peer.main.pool(action, params, POOL)
            singles = {name: probe(pool[0]) for name, pool in pools.items()}
            fast = [t for name, t in singles.items() if t <= self.opts.max_seconds / 2]
            shaped = shapes[scenario] = shape(max(fast or singles.values()), self.opts)
            for name, watch in (("ec2gw", self.ec2gw_side), ("moto", {"moto": self.moto})):
                if singles[name] > self.opts.max_seconds / 2:
                    self.record(probe_only(scenario, name, size, singles[name]))
                    continue
                gateway = self.gateway if name == "ec2gw" else None
                self.wrk(scenario, name, size, pools[name], shaped, watch, gateway)
        return shapes

    def raw_call(self, scenario: str) -> tuple[str, HttpRequest]:
        """The XML-RPC call behind a DescribeInstances scenario, straight to OpenNebula: the
        name of its measurement, and the request."""
        method, args = RAW_CALLS[scenario]
        one_id = ids.INSTANCE.decode(self.ec2gw.first_batch[0])
        request = xmlrpc_request(self.sim.url + "/RPC2", method, self.bench_session, *args(one_id))
        return f"{scenario} [raw {method}]", request

    def raw_opennebula(self, size: int, shapes: dict[str, Shape]) -> None:
        """The XML-RPC calls behind DescribeInstances, sent straight to OpenNebula."""
        for scenario in RAW_CALLS:
            name, request = self.raw_call(scenario)
            probe(request, tries=1)
            self.wrk(
                name, "opennebula", size, [request], shapes[scenario], {"opennebula": self.sim}
            )

    def pairs(self, size: int, shapes: dict[str, Shape]) -> None:
        """The two targets that compare separate runs, in paired, alternating rounds
        (benchmarks.paired): DescribeInstances all against the raw XML-RPC call (p50), and
        DescribeRegions against the bare ASGI app (throughput)."""
        if self.opts.pair_rounds < 1:
            return
        listing, regions = "DescribeInstances all", "DescribeRegions"
        raw_name, raw = self.raw_call(listing)
        versus = {
            listing: Side(raw_name, "opennebula", size, [raw], {"opennebula": self.sim}),
            regions: Side(BARE, "bare-asgi", None, [self.bare_request()], {"bare": self.bare}),
        }
        for scenario, metric in ((listing, "p50_ms"), (regions, "rps")):
            pool = self.ec2gw.main.pool(*read_params(scenario, self.ec2gw), POOL)
            gateway = Side(scenario, "ec2gw", size, pool, self.ec2gw_side)
            found = self.pair(gateway, versus[scenario], metric, shapes[scenario])
            if found is not None:
                self.paired.append(found)

    def pair(self, a: Side, b: Side, metric: str, shaped: Shape) -> dict[str, Any] | None:
        """K rounds of a short run of each side, A B then B A, in the shape (connections) of
        their single measurements, each after a warm-up; long enough for the slower side to
        answer about `pair_requests` times (judged by the single measurements)."""
        singles = [self.single(side.scenario, side.target, side.size) for side in (a, b)]
        if None in singles:
            self.log(f"  no paired rounds for {a.scenario} / {b.scenario}: not loaded alone")
            return None
        slowest = min(m.rps for m in singles if m)
        seconds = math.ceil(self.opts.pair_requests / slowest) if slowest else self.opts.seconds
        seconds = min(max(PAIR_MIN_SECONDS, seconds), math.ceil(self.opts.max_seconds))
        run, warm = replace(shaped, seconds=seconds), replace(shaped, seconds=WARM_UP_SECONDS)
        both = {**a.watch, **b.watch}
        rounds = []
        for number, order in enumerate(paired.orders(self.opts.pair_rounds), 1):
            rows = {}
            for key in order:
                side = a if key == paired.A else b
                for shaped_as in (warm, run):
                    m = self.measure(
                        side.scenario, side.target, side.size, side.pool, shaped_as, side.watch
                    )
                    settle(both)
                self.show(m, f"pair {number}{key} ")
                rows[key] = m.row()
            rounds.append(paired.round_result(order, rows[paired.A], rows[paired.B], metric))
        found = paired.entry(rounds, metric=metric, seconds=seconds)
        self.log(
            f"  paired {a.scenario} / {b.scenario}: {metric} x{found['median']} "
            f"({found['min']}-{found['max']} over {len(rounds)} rounds of {seconds} s a side)"
        )
        return found

    def create_tags(self, size: int) -> None:
        count = self.opts.mutations * 4
        for peer in (self.ec2gw, self.ref):
            pool = [
                peer.main.sign(
                    "CreateTags",
                    {
                        "ResourceId.1": peer.first_batch[i % len(peer.first_batch)],
                        "Tag.1.Key": "touched",
                        "Tag.1.Value": str(i),
                    },
                )
                for i in range(count)
            ]
            probe(pool[-1], tries=1)
            shaped = Shape(min(self.opts.connections, 16), self.opts.seconds, 60.0)
            watch = self.ec2gw_side if peer is self.ec2gw else {"moto": self.moto}
            gateway = self.gateway if peer is self.ec2gw else None
            self.wrk("CreateTags", peer.name, size, pool, shaped, watch, gateway)

    def launch_cycles(self, size: int) -> None:
        import asyncio

        connections = 4
        for peer in (self.ec2gw, self.ref):
            target = peer.mutate
            params = {
                "ImageId": peer.image_id,
                "InstanceType": peer.instance_type,
                "MinCount": "1",
                "MaxCount": "1",
            }
            first = [
                target.sign("RunInstances", {**params, "ClientToken": uuid.uuid4().hex})
                for _ in range(self.opts.mutations)
            ]

            def terminate(body: bytes, target: Target = target) -> HttpRequest | None:
                found = INSTANCE_ID.search(body)
                if found is None:
                    return None
                return target.sign("TerminateInstances", {"InstanceId.1": found.group(1).decode()})

            watch = self.ec2gw_side if peer is self.ec2gw else {"moto": self.moto}
            cpu = {name: server.cpu_seconds() for name, server in watch.items()}
            result = asyncio.run(
                run_cycles(first, terminate, connections=connections, seconds=self.opts.max_seconds)
            )
            m = cycle_measurement(
                "RunInstances+TerminateInstances (1)", peer.name, size, connections, result
            )
            if m.requests:
                m.notes["cpu_ms_per_request"] = {
                    name: round((server.cpu_seconds() - cpu[name]) * 1000 / m.requests, 3)
                    for name, server in watch.items()
                }
            self.record(m)

    def workers(self, size: int, shapes: dict[str, Shape]) -> None:
        """The same reads against a gateway running `--workers N` (same OpenNebula); then
        DescribeRegions on one connection, on both gateways: the latency of one request at a
        time, which the loaded runs hide (issue 20: with Nagle's algorithm on, each answer of
        N workers waited 40 ms for a delayed ACK, yet loaded at c=32 their p50 was half one
        worker's)."""
        many = self._keep(servers.start_gateway(self.sim, self.logs, workers=self.opts.workers))
        peer = self.ec2gw
        name = f"ec2gw-w{self.opts.workers}"
        target = Target(
            "ec2gw", many.url, peer.main.region, peer.main.access_key, peer.main.secret_key
        )
        watch = {"gateway": many, "opennebula": self.sim}
        for scenario in ("DescribeRegions", "DescribeInstances one id", "DescribeInstances all"):
            action, params = read_params(scenario, peer)
            pool = target.pool(action, params, POOL)
            probe(pool[0])
            self.wrk(scenario, name, size, pool, shapes[scenario], watch)
        alone = Shape(1, ONE_CONNECTION_SECONDS, 60.0)
        sides = ((peer.name, peer.main, self.ec2gw_side), (name, target, watch))
        for label, signer, watched in sides:
            pool = signer.pool("DescribeRegions", {}, POOL)
            probe(pool[0])
            self.wrk(ONE_CONNECTION, label, size, pool, alone, watched)
        many.stop()

    def profile(self, size: int, scenarios: tuple[str, ...]) -> None:
        """The gateway's hot spots under load, sampled by pyinstrument in a separate,
        profiled gateway process (the profiler slows it; its figures are not in the table)."""
        directory = RESULTS / "profiles"
        profiled = self._keep(servers.start_gateway(self.sim, self.logs, profile_dir=directory))
        peer = self.ec2gw
        target = Target(
            "ec2gw", profiled.url, peer.main.region, peer.main.access_key, peer.main.secret_key
        )
        try:
            for scenario in scenarios:
                action, params = read_params(scenario, peer)
                pool = target.pool(action, params, POOL)
                shaped = shape(probe(pool[0]), self.opts)
                name = re.sub(r"[^a-z0-9]+", "-", f"{scenario} {size}".lower()).strip("-")
                httpx.post(profiled.url + "/_bench/profile/start", timeout=10)
                m = run_wrk(
                    scenario, "ec2gw-profiled", size, pool,
                    connections=shaped.connections, seconds=shaped.seconds,
                    limit=self.opts.max_requests, timeout=shaped.timeout,
                )  # fmt: skip
                spots = httpx.post(
                    profiled.url + f"/_bench/profile/stop?name={name}", timeout=120
                ).json()
                spots["requests"] = m.requests
                self.profiles[name] = spots
                self.log(
                    f"  profiled {scenario} N={size}: {m.requests} requests -> profiles/{name}.txt"
                )
        finally:
            profiled.stop()

    # --- the run ----------------------------------------------------------------------

    def load_both(self, size: int) -> int:
        """Load both peers to `size` in steps of 1,000, in step with each other, within the
        loading budget; returns the count both reached."""
        self.log(f"loading {size} instances into ec2gw and moto")
        took = {p.name: 0.0 for p in (self.ec2gw, self.ref)}
        while self.ec2gw.loaded < size:
            if time.monotonic() > self.load_deadline:
                self.log(f"  loading budget spent at {self.ec2gw.loaded} instances")
                break
            step = min(size, self.ec2gw.loaded + 1000)
            with ThreadPoolExecutor(2) as pool:
                futures = {p.name: pool.submit(load, p, step) for p in (self.ec2gw, self.ref)}
                for name, future in futures.items():
                    took[name] += future.result()
        reached = self.ec2gw.loaded
        self.loading[str(reached)] = {name: round(t, 1) for name, t in took.items()}
        self.log(f"  {reached} loaded in {self.loading[str(reached)]} s")
        return reached

    def save(self, final: bool = False) -> dict[str, Any]:
        results = report.build(
            [m.row() for m in self.results],
            profiles=self.profiles,
            loading=self.loading,
            paired=self.paired,
            meta={**self.meta, "complete": final, "wall_seconds": round(time.time() - self.t0)},
        )
        self.opts.output.parent.mkdir(parents=True, exist_ok=True)
        self.opts.output.write_text(json.dumps(results, indent=1) + "\n")
        return results

    def run(self) -> None:
        self.start()
        self.load_deadline = time.monotonic() + self.opts.load_budget
        self.log("bare ASGI ceiling")
        self.bare_ceiling()
        sizes = sorted(self.opts.sizes)
        reference = 1000 if 1000 in sizes else sizes[0]
        for wanted in sizes:
            size = self.load_both(wanted)
            shapes = self.reads(size)
            self.raw_opennebula(size, shapes)
            if size == reference:
                self.pairs(size, shapes)
            self.create_tags(size)
            self.launch_cycles(size)
            if size == reference and self.opts.workers > 1:
                self.workers(size, shapes)
            if self.opts.profile and size == reference:
                scenarios = ("DescribeRegions", "DescribeInstances all", "DescribeInstances one id")
                self.profile(size, scenarios)
            if self.opts.profile and wanted == sizes[-1] and size != reference:
                self.profile(size, ("DescribeInstances one id", "DescribeInstances all"))
            self.save()
            if size < wanted:
                break


def machine() -> dict[str, object]:
    def version(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    from importlib.metadata import version as pkg

    return {
        "cpus": os.cpu_count(),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),  # fmt: skip
        "python": platform.python_version(),
        "wrk": version(["wrk", "--version"]),
        "packages": {
            p: pkg(p) for p in ("ec2gw", "moto", "uvicorn", "fastapi", "botocore", "httpx")
        },
    }


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000", help="instance counts, e.g. 100,1000")
    parser.add_argument("--quick", action="store_true", help="sizes 100 only, short runs")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measurement")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap for slow requests")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per measurement")
    parser.add_argument("--mutations", type=int, default=200, help="launch/terminate cycles")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument runs")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--load-budget", type=float, default=1800.0,
        help="seconds of loading instances, in all; a size not reached in time is measured "
        "at the count reached and the larger sizes are skipped",
    )  # fmt: skip
    parser.add_argument(
        "--pair-rounds", type=int, default=5,
        help="rounds of the paired, alternating comparisons at the reference N (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--pair-requests", type=int, default=30,
        help="answers aimed at per side of a paired round (sets its length, at least 2 s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        sizes, args.seconds, args.max_seconds, args.mutations = [100], 2.0, 10.0, 40
    if any(s < 100 for s in sizes):
        parser.error("every size must be at least 100 (lookups use the first batch of 100)")
    return Options(
        sizes, args.connections, args.seconds, args.max_seconds, args.max_requests,
        args.mutations, args.workers, not args.no_profile, args.output, args.keep,
        args.load_budget, args.pair_rounds, args.pair_requests,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (bash benchmarks/run installs it)")
    work = Path(tempfile.mkdtemp(prefix="ec2gw-bench-"))
    bench = Bench(opts, work)
    bench.meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "measured_source": {
            "commit": os.environ.get("BENCH_SOURCE_COMMIT", "working tree"),
            "note": os.environ.get("BENCH_SOURCE_NOTE", ""),
        },
        "options": {
            "sizes": opts.sizes,
            "connections": opts.connections,
            "seconds": opts.seconds,
            "max_seconds": opts.max_seconds,
            "max_requests": opts.max_requests,
            "mutations": opts.mutations,
            "workers": opts.workers,
            "load_budget": opts.load_budget,
            "pair_rounds": opts.pair_rounds,
            "pair_requests": opts.pair_requests,
        },  # fmt: skip
        "machine": machine(),
    }
    try:
        bench.run()
    finally:
        bench.stop()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory and logs: {work}")
    results = bench.save(final=True)
    print(report.render(results))
    print(f"\nwritten to {opts.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
