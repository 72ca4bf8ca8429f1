"""`ec2gw serve` without an OpenNebula: start the embedded one and seed a usable cloud.

The seeding goes through XML-RPC as oneadmin, exactly as an operator would set up a
test cloud on a real oned with dummy drivers (reference §5): hosts, a public OS image,
a network, instance-type templates, and a demo user with EC2 credentials.
"""

from __future__ import annotations

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


def attach(settings: Settings, data_dir: Path) -> EmbeddedOpenNebula | _Running:
    """Point `settings` at the embedded OpenNebula of `data_dir`, for `ec2gw keys`.

    Uses the one a running `ec2gw serve` announced in `DIR/endpoint`, else starts it here
    until `stop()`. Its server account is read from `DIR/serveradmin_auth`.
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
    return start(settings, data_dir).sim
