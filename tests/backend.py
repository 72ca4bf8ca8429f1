"""The OpenNebula behind the end-to-end and client suites: embedded, or a real oned.

By default the suites run on the embedded OpenNebula, started in this process. With
`EC2GW_TEST_OPENNEBULA` set to a real oned's XML-RPC endpoint they run on it instead:

    EC2GW_TEST_OPENNEBULA=http://127.0.0.1:2633/RPC2
    EC2GW_TEST_ONEADMIN_AUTH=oneadmin:<password>      # a core user of the oneadmin group
    EC2GW_TEST_SERVER_AUTH=serveradmin:<secret>       # a server_cipher user

The set-up is an operator's, through XML-RPC as oneadmin (`embedded.seed`): dummy hosts,
three public OS images, the private and public networks, the instance types, a user with
an EC2 key. A real oned outlives the test run, so the cloud is seeded once and later runs
reuse it, with users of their own (`user_name` adds a suffix unique to the run).
Tests that need the embedded OpenNebula itself (fault injection, `ec2gw serve`) carry the
`embedded_only` marker and are deselected on a real oned (`tests/conftest.py`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ec2gw import embedded
from ec2gw.actions.regions import region_name
from ec2gw.auth.keys import AccessKey, KeyCipher, KeyStore
from ec2gw.config import Settings
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.one.sessions import ServerCipherSessions
from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle

ENDPOINT_VARIABLE = "EC2GW_TEST_OPENNEBULA"
ONEADMIN_VARIABLE = "EC2GW_TEST_ONEADMIN_AUTH"
SERVER_VARIABLE = "EC2GW_TEST_SERVER_AUTH"
IMAGE_USABLE = (1, 2)  # READY, USED


def real_oned_endpoint() -> str | None:
    """The real oned the suites run against, or None for the embedded OpenNebula."""
    return os.environ.get(ENDPOINT_VARIABLE) or None


@dataclass
class Backend:
    settings: Settings  # pointed at this OpenNebula
    oneadmin_session: str
    region: str
    key: AccessKey  # the demo user's
    run_id: str
    sim: EmbeddedOpenNebula | None = None  # None on a real oned

    @property
    def real(self) -> bool:
        return self.sim is None

    def one(self, method: str, *args: object) -> Any:
        """Call OpenNebula as oneadmin; the call must succeed."""
        proxy = xmlrpc.client.ServerProxy(self.settings.opennebula.endpoint)
        reply = getattr(proxy, method)(self.oneadmin_session, *args)
        assert reply[0] is True, reply
        return reply[1]

    async def with_keystore(self, work: Callable[[KeyStore], Awaitable[Any]]) -> Any:
        one = OneClient(self.settings.opennebula.endpoint)
        try:
            return await work(_keystore(one, self.settings))
        finally:
            await one.close()

    def user_name(self, name: str) -> str:
        return f"{name}-{self.run_id}" if self.real else name

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()
        else:
            self._terminate_leftovers()

    def _terminate_leftovers(self) -> None:
        """The VMs this run's users left (a failed test's): on a shared oned they would fill
        the hosts for every later run."""
        proxy = xmlrpc.client.ServerProxy(self.settings.opennebula.endpoint)
        pool = documents.parse(self.one("one.vmpool.info", -2, -1, -1, -1))
        for vm in pool.iterfind("VM"):
            if not documents.text(vm, "UNAME").endswith(f"-{self.run_id}"):
                continue
            for _ in range(10):  # oned refuses a VM in PROLOG, BOOT, a hotplug...
                action = proxy.one.vm.action
                if action(self.oneadmin_session, "terminate-hard", documents.integer(vm, "ID"))[0]:
                    break
                time.sleep(0.5)


def _keystore(one: OneClient, settings: Settings) -> KeyStore:
    opennebula = settings.opennebula
    sessions = ServerCipherSessions(opennebula.server_user, opennebula.server_secret)
    return KeyStore(
        one, sessions, KeyCipher(settings.auth.key_encryption_key or opennebula.server_secret)
    )


def start_backend(settings: Settings, data_dir: Path) -> Backend:
    """Point `settings` at the OpenNebula of this run, seeded and ready."""
    endpoint = real_oned_endpoint()
    if endpoint is None:
        cloud = embedded.start(settings, data_dir, Lifecycle())
        key = asyncio.run(embedded.seed(cloud))
        assert key is not None
        return Backend(
            settings=settings,
            oneadmin_session=cloud.sim.oneadmin_session,
            region=_region_of_files(cloud),
            key=key,
            run_id="",
            sim=cloud.sim,
        )
    return asyncio.run(_start_real(settings, data_dir, endpoint))


def _region_of_files(cloud: embedded.EmbeddedCloud) -> str:
    return cloud.config_file.read_text().split("region = ")[1].split()[0]


async def _start_real(settings: Settings, data_dir: Path, endpoint: str) -> Backend:
    admin = _required(ONEADMIN_VARIABLE)
    server_user, _, server_secret = _required(SERVER_VARIABLE).partition(":")
    settings.opennebula.endpoint = endpoint
    settings.opennebula.server_user = server_user
    settings.opennebula.server_secret = server_secret
    settings.gateway.public_network = embedded.PUBLIC_NETWORK_NAME
    run_id = secrets.token_hex(3)
    one = OneClient(endpoint)
    try:
        images = await one.call_document(admin, "one.imagepool.info", -2, -1, -1, -1)
        seeded = any(documents.text(i, "NAME") in embedded.IMAGES for i in images)
        if not seeded:
            cloud = embedded.EmbeddedCloud(
                sim=SimpleNamespace(oneadmin_session=admin),  # seed needs only the session
                settings=settings,
                credentials_file=data_dir / "credentials",
                config_file=data_dir / "config",
                demo_key=None,
            )
            key = await embedded.seed(cloud)
            assert key is not None
        else:
            name = f"{embedded.DEMO_USER}-{run_id}"
            await one.call(admin, "one.user.allocate", name, secrets.token_urlsafe(24), "core", [1])
            key = await _keystore(one, settings).create(name)
        await _images_ready(one, admin)
        zone_id = settings.gateway.zone_id
        zone = await one.call_document(admin, "one.zone.info", zone_id)
        region = region_name(settings, zone_id, documents.text(zone, "NAME"))
    finally:
        await one.close()
    return Backend(
        settings=settings, oneadmin_session=admin, region=region, key=key, run_id=run_id
    )


async def _images_ready(one: OneClient, admin: str, timeout: float = 120.0) -> None:
    """oned's datastore driver copies a new image asynchronously: wait until it is usable."""
    deadline = time.monotonic() + timeout
    while True:
        pool = await one.call_document(admin, "one.imagepool.info", -2, -1, -1, -1)
        waiting = [
            documents.text(i, "NAME")
            for i in pool
            if documents.text(i, "NAME") in embedded.IMAGES
            and documents.integer(i, "STATE") not in IMAGE_USABLE
        ]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"images not READY or USED: {waiting}"
        await asyncio.sleep(0.5)


def _required(variable: str) -> str:
    value = os.environ.get(variable, "")
    assert ":" in value, f"{variable} must be set to user:secret with {ENDPOINT_VARIABLE}"
    return value
