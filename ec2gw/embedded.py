"""`ec2gw serve` without an OpenNebula: start the embedded one and seed a usable cloud.

The seeding goes through XML-RPC as oneadmin, exactly as an operator would set up a
test cloud on a real oned with dummy drivers (reference §5): hosts, a public OS image,
a network, instance-type templates, and a demo user with EC2 credentials.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx

from ec2gw.actions.regions import region_name
from ec2gw.auth.keys import AccessKey, KeyCipher, KeyStore
from ec2gw.config import Settings
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.one.sessions import ServerCipherSessions
from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle

DEMO_USER = "demo"
PROFILE = "ec2gw"

# Instance types offered on first start: name → (VCPU, MEMORY MB, CPU share).
INSTANCE_TYPES = {
    "t3.nano": (1, 512, 0.25),
    "t3.micro": (1, 1024, 0.5),
    "t3.small": (2, 2048, 1.0),
    "t3.medium": (2, 4096, 1.0),
    "m5.large": (2, 8192, 2.0),
    "m5.xlarge": (4, 16384, 4.0),
}

IMAGES = {
    "ubuntu-24.04": ("Ubuntu 24.04 LTS (Noble Numbat)", 2252),
    "debian-12": ("Debian 12 (Bookworm) generic cloud image", 2048),
    "alpine-3.20": ("Alpine Linux 3.20 virt", 160),
}

HOSTS = ("host-01", "host-02")

NETWORK = (
    'NAME = "private"\nVN_MAD = "dummy"\nBRIDGE = "br0"\n'
    'NETWORK_ADDRESS = "10.0.0.0"\nNETWORK_MASK = "255.255.255.0"\n'
    'GATEWAY = "10.0.0.1"\nDNS = "10.0.0.1"\n'
    'AR = [ TYPE = "IP4", IP = "10.0.0.10", SIZE = "240" ]'
)

# Elastic IPs come from this network (`[gateway] public_network`); TEST-NET-2 addresses.
PUBLIC_NETWORK_NAME = "public"
PUBLIC_NETWORK = (
    f'NAME = "{PUBLIC_NETWORK_NAME}"\nVN_MAD = "dummy"\nBRIDGE = "br1"\n'
    'NETWORK_ADDRESS = "198.51.100.0"\nNETWORK_MASK = "255.255.255.0"\n'
    'GATEWAY = "198.51.100.1"\n'
    'AR = [ TYPE = "IP4", IP = "198.51.100.10", SIZE = "200" ]'
)


LOCK_FILE = "owner.lock"


class DataDirBusy(Exception):
    """Another process owns the data directory (see `DataDirLock`)."""


class DataDirLock:
    """The owner of a data directory: an exclusive `fcntl.flock` on `DIR/owner.lock`, held
    for the life of `ec2gw serve` / `ec2gw sim` (or of an `ec2gw keys` that starts the
    embedded OpenNebula itself), so that two processes never run an OpenNebula on the same
    database. The file says who holds it (PID, port, command), for the refusal; the lock
    goes with the process, however it ends, so a stale file is never in the way."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, command: str, port: int | None = None) -> DataDirLock:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            raise DataDirBusy(_busy_message(data_dir, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        lock = cls(data_dir, fd)
        lock.announce(command, port)
        return lock

    def announce(self, command: str, port: int | None) -> None:
        """Record who holds the lock: `PID PORT COMMAND` (PORT `-` if none yet)."""
        assert self._fd is not None
        text = f"{os.getpid()} {port if port is not None else '-'} {command}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _busy_message(data_dir: Path, holder: list[str]) -> str:
    pid = holder[0] if holder else "?"
    port = holder[1] if len(holder) > 1 else "-"
    command = " ".join(holder[2:]) or "another ec2gw"
    where = f" on port {port}" if port != "-" else ""
    return (
        f"{data_dir} is already served by PID {pid}{where} ({command}); stop it first, "
        "or use another --data-dir"
    )


@dataclass
class EmbeddedCloud:
    sim: EmbeddedOpenNebula
    settings: Settings  # pointed at the embedded OpenNebula
    credentials_file: Path
    config_file: Path
    demo_key: AccessKey | None  # only on the first start


def lifecycle_from(settings: Settings) -> Lifecycle:
    e = settings.embedded
    return Lifecycle(
        schedule=e.schedule_delay,
        prolog=e.prolog_delay,
        boot=e.boot_delay,
        shutdown=e.shutdown_delay,
        epilog=e.epilog_delay,
    )


def start(settings: Settings, data_dir: Path, lifecycle: Lifecycle | None = None) -> EmbeddedCloud:
    """Start the embedded OpenNebula in `data_dir` and point `settings` at it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sim = EmbeddedOpenNebula(data_dir, lifecycle=lifecycle or lifecycle_from(settings))
    sim.start()
    settings.opennebula.endpoint = sim.url
    settings.opennebula.server_user = sim.server_user
    settings.opennebula.server_secret = sim.server_secret
    if not settings.gateway.public_network:
        settings.gateway.public_network = PUBLIC_NETWORK_NAME
    return EmbeddedCloud(
        sim=sim,
        settings=settings,
        credentials_file=data_dir / "credentials",
        config_file=data_dir / "config",
        demo_key=None,
    )


async def seed(cloud: EmbeddedCloud) -> AccessKey | None:
    """Create the demo cloud once; a second start finds the marker and does nothing."""
    marker = cloud.credentials_file
    if marker.exists():
        return None
    settings = cloud.settings
    one = OneClient(settings.opennebula.endpoint)
    admin = cloud.sim.oneadmin_session
    try:
        for name in HOSTS:
            await one.call(admin, "one.host.allocate", name, "dummy", "dummy", 0)
        for name, (description, size) in IMAGES.items():
            image_id = await one.call(
                admin,
                "one.image.allocate",
                documents.template_text(
                    [
                        ("NAME", name),
                        ("PATH", f"/var/tmp/{name}.qcow2"),
                        ("TYPE", "OS"),
                        ("SIZE", size),
                        ("DESCRIPTION", description),
                        ("ARCH", "x86_64"),
                        ("DEV_PREFIX", "vd"),
                    ]
                ),
                1,
            )
            await _share(one, admin, "one.image.chmod", image_id)
        for network in (NETWORK, PUBLIC_NETWORK):
            vnet_id = await one.call(admin, "one.vn.allocate", network, 0)
            await without_default_group(one, admin, vnet_id)
            await _share(one, admin, "one.vn.chmod", vnet_id)
        for name, (vcpu, memory, cpu) in INSTANCE_TYPES.items():
            template_id = await one.call(
                admin,
                "one.template.allocate",
                documents.template_text(
                    [
                        ("NAME", name),
                        ("EC2_INSTANCE_TYPE", name),
                        ("CPU", cpu),
                        ("VCPU", vcpu),
                        ("MEMORY", memory),
                        ("DESCRIPTION", f"EC2 instance type {name}"),
                    ]
                ),
            )
            await _share(one, admin, "one.template.chmod", template_id)
        await one.call(
            admin, "one.user.allocate", DEMO_USER, secrets.token_urlsafe(24), "core", [1]
        )
        sessions = ServerCipherSessions(
            settings.opennebula.server_user, settings.opennebula.server_secret
        )
        cipher = KeyCipher(settings.auth.key_encryption_key or settings.opennebula.server_secret)
        key = await KeyStore(one, sessions, cipher).create(DEMO_USER)
        zone_id = settings.gateway.zone_id
        zone = await one.call_document(admin, "one.zone.info", zone_id)
        region = region_name(settings, zone_id, documents.text(zone, "NAME"))
    finally:
        await one.close()
    write_client_files(cloud, key, region)
    return key


async def without_default_group(one: OneClient, session: str, vnet_id: int) -> None:
    """Take group 0 out of the network's SECURITY_GROUPS, as an operator should.

    `one.vn.allocate` adds OpenNebula's group 0 (which lets all traffic in) to every
    network, and oned adds a network's groups to each NIC on it: left there, every
    instance on the network is open, whatever security groups it is launched with.
    """
    await one.call(session, "one.vn.update", vnet_id, 'SECURITY_GROUPS = ""', 1)


async def _share(one: OneClient, session: str, method: str, object_id: int) -> None:
    """Let every user USE the object (owner um-, group u--, other u--)."""
    await one.call(session, method, object_id, 1, 1, 0, 1, 0, 0, 1, 0, 0)


def endpoint_url(settings: Settings) -> str:
    """The URL a client on this machine uses to reach the gateway."""
    host = settings.gateway.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.gateway.port}"


def write_client_files(cloud: EmbeddedCloud, key: AccessKey, region: str) -> None:
    """AWS shared credentials and config files with an `ec2gw` profile."""
    cloud.config_file.write_text(
        f"[profile {PROFILE}]\nregion = {region}\nendpoint_url = {endpoint_url(cloud.settings)}\n"
    )
    cloud.credentials_file.write_text(
        f"[{PROFILE}]\naws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret}\n"
    )
    cloud.credentials_file.chmod(0o600)


class _Running:
    """The embedded OpenNebula of a running `ec2gw serve`: nothing to stop."""

    def stop(self) -> None:
        pass


class _Started:
    """An embedded OpenNebula started for one command, with the data directory's lock."""

    def __init__(self, sim: EmbeddedOpenNebula, lock: DataDirLock) -> None:
        self.sim, self.lock = sim, lock

    def stop(self) -> None:
        try:
            self.sim.stop()
        finally:
            self.lock.release()


def attach(settings: Settings, data_dir: Path) -> _Started | _Running:
    """Point `settings` at the embedded OpenNebula of `data_dir`, for `ec2gw keys`.

    Uses the one a running `ec2gw serve` announced in `DIR/endpoint`, else starts it here
    until `stop()`, owning the data directory meanwhile (`DataDirBusy` if another process
    owns it but has not announced its endpoint yet). Its server account is read from
    `DIR/serveradmin_auth`.
    """
    endpoint_file = data_dir / "endpoint"
    auth_file = data_dir / "serveradmin_auth"
    if endpoint_file.exists() and auth_file.exists():
        endpoint = endpoint_file.read_text().strip()
        try:
            httpx.post(endpoint, content=b"", timeout=2)
        except httpx.TransportError:
            pass  # a stale file: `serve` is gone
        else:
            user, _, secret = auth_file.read_text().strip().partition(":")
            settings.opennebula.endpoint = endpoint
            settings.opennebula.server_user = user
            settings.opennebula.server_secret = secret
            return _Running()
    lock = DataDirLock.acquire(data_dir, "ec2gw (embedded OpenNebula for a command)")
    try:
        sim = start(settings, data_dir).sim
    except BaseException:
        lock.release()
        raise
    lock.announce("ec2gw (embedded OpenNebula for a command)", sim.port)
    return _Started(sim, lock)
