"""The processes under test, each on its own loopback port: the embedded OpenNebula
(`ec2gw sim`), the gateway (uvicorn with the factory in `benchmarks.gateway_app`),
`moto_server` and a bare ASGI app. Every one is started here and stopped by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PYTHON = sys.executable
BIN = Path(PYTHON).parent
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The tree the servers import ec2gw from: benchmarks/run points this at a snapshot of the
# committed code, so that edits made in the working tree during a run are not measured.
SOURCE = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1:port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, path: str = "/", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                httpx.get(self.url + path, timeout=2.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start within {timeout}s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The process and its descendants (uvicorn's worker processes)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    todo += [int(child) for child in task.read_text().split()]
                except OSError:
                    continue
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its descendants."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / CLOCK_TICKS

    def stop(self) -> None:
        """SIGTERM (uvicorn runs its shutdown), then SIGKILL after 15 s; own pid only."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _spawn(name: str, argv: list[str], env: dict[str, str], logs: Path, port: int) -> Server:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=SOURCE,  # `python -m` imports ec2gw and benchmarks from here
        )
    return Server(name, port, process, log_path)


def start_sim(data_dir: Path, logs: Path) -> Server:
    """`ec2gw sim` with instant lifecycle steps (VMs are RUNNING as soon as placed)."""
    port = free_port()
    env = {
        f"EC2GW_EMBEDDED_{step}_DELAY": "0"
        for step in ("SCHEDULE", "PROLOG", "BOOT", "SHUTDOWN", "EPILOG")
    }
    argv = [PYTHON, "-m", "ec2gw.cli", "sim", "--data-dir", str(data_dir), "--port", str(port)]
    server = _spawn("opennebula", argv, env, logs, port)
    server.wait_ready("/RPC2")
    deadline = time.monotonic() + 30
    while not (data_dir / "serveradmin_auth").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # written right after the socket opens
    user, _, secret = (data_dir / "serveradmin_auth").read_text().strip().partition(":")
    server.extra = {
        "oneadmin": (data_dir / "one_auth").read_text().strip(),
        "server_user": user,
        "server_secret": secret,
    }
    return server


def start_gateway(
    sim: Server, logs: Path, *, workers: int = 1, profile_dir: Path | None = None
) -> Server:
    """The gateway as `uvicorn benchmarks.gateway_app:create --factory`; with N workers
    started as `ec2gw serve --workers N` starts them (`ec2gw.workers`: a socket each)."""
    port = free_port()
    env = {
        "EC2GW_OPENNEBULA_ENDPOINT": sim.url + "/RPC2",
        "EC2GW_OPENNEBULA_SERVER_USER": sim.extra["server_user"],
        "EC2GW_OPENNEBULA_SERVER_SECRET": sim.extra["server_secret"],
        # Per-key throttling (50/s by default) would measure the throttle, not the gateway.
        "EC2GW_GATEWAY_RATE_LIMIT": "0",
    }
    name = f"ec2gw-w{workers}"
    if profile_dir is not None:
        env["BENCH_PROFILE_DIR"] = str(profile_dir)
        name += "-profiled"
    argv = [
        PYTHON, "-m", "uvicorn", "benchmarks.gateway_app:create", "--factory",
        "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    if workers > 1:
        argv = [
            PYTHON, "-c", "import sys; from ec2gw import workers; workers.serve("
            "'benchmarks.gateway_app:create', int(sys.argv[1]), host=sys.argv[2], "
            "port=int(sys.argv[3]), log_level='warning', access_log=False)",
            str(workers), HOST, str(port),
        ]  # fmt: skip
    server = _spawn(name, argv, env, logs, port)
    server.wait_ready("/healthz")
    _wait_listening(port, workers)  # every worker, not the first only, takes connections
    return server


def _wait_listening(port: int, sockets: int, timeout: float = 60.0) -> None:
    """Until `sockets` sockets listen on `port` (/proc/net/tcp, state 0A; Linux)."""
    table = Path("/proc/net/tcp")
    if sockets < 2 or not table.exists():
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [row.split() for row in table.read_text().splitlines()[1:]]
        if sum(r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows) >= sockets:
            return
        time.sleep(0.1)
    raise RuntimeError(f"fewer than {sockets} sockets listen on port {port}")


def start_moto(logs: Path, amis_file: Path) -> Server:
    """`moto_server` with one AMI (like the one image loaded into ec2gw)."""
    port = free_port()
    argv = [str(BIN / "moto_server"), "-H", HOST, "-p", str(port)]
    server = _spawn("moto", argv, {"MOTO_AMIS_PATH": str(amis_file)}, logs, port)
    server.wait_ready("/moto-api/")
    return server


def start_bare(logs: Path) -> Server:
    """The ceiling of the stack: uvicorn serving a fixed body from a bare ASGI callable."""
    port = free_port()
    argv = [
        PYTHON, "-m", "uvicorn", "benchmarks.bare:app", "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    server = _spawn("bare-asgi", argv, {}, logs, port)
    server.wait_ready("/")
    return server
