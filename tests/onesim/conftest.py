"""Fixtures: a fresh embedded OpenNebula per test, and a small cloud seeded over XML-RPC."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle

NETWORK = (
    'NAME = "private"\nVN_MAD = "dummy"\nBRIDGE = "br0"\n'
    'NETWORK_ADDRESS = "10.0.0.0"\nNETWORK_MASK = "255.255.255.0"\n'
    'GATEWAY = "10.0.0.1"\nDNS = "10.0.0.1"\n'
    'AR = [ TYPE = "IP4", IP = "10.0.0.10", SIZE = "16" ]'
)
TEMPLATE = (
    'NAME = "tiny"\nCPU = "0.1"\nVCPU = "1"\nMEMORY = "64"\nDESCRIPTION = "fixture template"\n'
    "DISK = [ IMAGE_ID = 0 ]\nNIC = [ NETWORK_ID = 0 ]\n"
    'CONTEXT = [ NETWORK = "YES", SSH_PUBLIC_KEY = "$USER[SSH_PUBLIC_KEY]" ]\n'
    'GRAPHICS = [ LISTEN = "127.0.0.1", TYPE = "VNC" ]\nOS = [ ARCH = "x86_64" ]'
)
SHARE = (1, 1, 0, 1, 0, 0, 1, 0, 0)  # um- u-- u--


class One:
    """Calls `one.<method>` with a session and unpacks oned's reply array."""

    def __init__(self, url: str, session: str) -> None:
        self.proxy = xmlrpc.client.ServerProxy(url, allow_none=False)
        self.session = session

    def raw(self, method: str, *args: object) -> list:
        return getattr(self.proxy, method)(self.session, *args)

    def __call__(self, method: str, *args: object):
        reply = self.raw(method, *args)
        assert reply[0] is True, reply
        return reply[1]

    def error(self, method: str, *args: object) -> list:
        reply = self.raw(method, *args)
        assert reply[0] is False, reply
        return reply


@dataclass
class Cloud:
    sim: EmbeddedOpenNebula
    admin: One

    def session(self, session: str) -> One:
        return One(self.sim.url, session)

    def user(self, name: str, password: str = "secret", group: int = 1) -> One:
        self.admin("one.user.allocate", name, password, "core", [group])
        return self.session(f"{name}:{password}")


def start_sim(data_dir: Path, lifecycle: Lifecycle | None = None) -> EmbeddedOpenNebula:
    sim = EmbeddedOpenNebula(data_dir, lifecycle=lifecycle or Lifecycle())
    sim.start()
    return sim


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[EmbeddedOpenNebula]:
    sim = start_sim(tmp_path / "one")
    yield sim
    sim.stop()


def seed(admin: One) -> None:
    """A host, an OS image, a network and a template, as an operator would set them up."""
    admin("one.host.allocate", "dummy-host-0", "dummy", "dummy", -1)
    image = admin("one.image.allocate", 'NAME = "tiny-os"\nPATH = "/var/tmp/tiny.img"', 1)
    admin("one.image.chmod", image, *SHARE)
    vnet = admin("one.vn.allocate", NETWORK, -1)
    admin("one.vn.chmod", vnet, *SHARE)
    template = admin("one.template.allocate", TEMPLATE)
    admin("one.template.chmod", template, *SHARE)


@pytest.fixture
def cloud(sim: EmbeddedOpenNebula) -> Cloud:
    admin = One(sim.url, sim.oneadmin_session)
    seed(admin)
    return Cloud(sim, admin)
