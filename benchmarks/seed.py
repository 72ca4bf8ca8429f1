"""The same data in both peers: capacity in OpenNebula (as oneadmin, over XML-RPC), EC2
users and keys, then N tagged instances launched through each EC2 endpoint."""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.loadgen import send
from benchmarks.servers import Server
from benchmarks.signing import Target
from ec2gw.auth.keys import KeyCipher, KeyStore
from ec2gw.ec2 import ids
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.one.sessions import ServerCipherSessions

BATCH = 100  # RunInstances allows MaxCount <= 100 in ec2gw
INSTANCE_TYPE = "bench.nano"
HOST_VMS = 800  # a dummy host has 800 CPU shares; bench.nano takes 1 (CPU=0.01)
MOTO_AMI = "ami-0b0b0b0b0b0b0b0b0"
INSTANCE_ID = re.compile(rb"<instanceId>(i-[0-9a-f]+)</instanceId>")


@dataclass
class Peer:
    """One EC2 endpoint under test, with its accounts and what was loaded into it."""

    name: str
    main: Target  # owns the N instances
    mutate: Target  # a separate account for launch/terminate cycles
    image_id: str
    instance_type: str
    first_batch: list[str]  # instance ids launched first (lookups, CreateTags)
    loaded: int = 0


def _share(one: OneClient, admin: str, method: str, oid: int):  # noqa: ANN202
    return one.call(admin, method, oid, 1, 1, 0, 1, 0, 0, 1, 0, 0)


async def _prepare_opennebula(sim: Server, hosts: int) -> tuple[int, dict[str, tuple[str, str]]]:
    admin = sim.extra["oneadmin"]
    one = OneClient(sim.url + "/RPC2", timeout=120)
    try:
        for index in range(hosts):
            await one.call(
                admin, "one.host.allocate", f"bench-host-{index:02d}", "dummy", "dummy", 0
            )
        image = documents.template_text(
            [("NAME", "bench-os"), ("PATH", "/var/tmp/bench.qcow2"), ("TYPE", "OS"), ("SIZE", 64)]
        )
        image_id = int(await one.call(admin, "one.image.allocate", image, 1))
        await _share(one, admin, "one.image.chmod", image_id)
        template = documents.template_text(
            [
                ("NAME", INSTANCE_TYPE),
                ("EC2_INSTANCE_TYPE", INSTANCE_TYPE),
                ("CPU", 0.01),
                ("VCPU", 1),
                ("MEMORY", 16),
            ]
        )
        template_id = int(await one.call(admin, "one.template.allocate", template))
        await _share(one, admin, "one.template.chmod", template_id)
        sessions = ServerCipherSessions(sim.extra["server_user"], sim.extra["server_secret"])
        store = KeyStore(one, sessions, KeyCipher(sim.extra["server_secret"]), cache_seconds=0)
        keys: dict[str, tuple[str, str]] = {}
        for user in ("bench", "bench-mut"):
            await one.call(admin, "one.user.allocate", user, secrets.token_hex(16), "core", [1])
            key = await store.create(user)
            keys[user] = (key.access_key_id, key.secret)
        return image_id, keys
    finally:
        await one.close()


def ec2gw_peer(gateway: Server, sim: Server, max_instances: int) -> Peer:
    """Hosts for every instance plus headroom, one image, the bench.nano type, two users."""
    hosts = math.ceil(max_instances / HOST_VMS) + 1
    image_id, keys = asyncio.run(_prepare_opennebula(sim, hosts))
    region = "opennebula"  # zone 0 of the embedded OpenNebula
    main = Target("ec2gw", gateway.url, region, *keys["bench"])
    mutate = Target("ec2gw", gateway.url, region, *keys["bench-mut"])
    return Peer("ec2gw", main, mutate, ids.IMAGE.encode(image_id), INSTANCE_TYPE, [])


def moto_amis_file(path: Path) -> Path:
    """The one AMI moto_server offers (its default catalogue would list dozens)."""
    ami = {
        "ami_id": MOTO_AMI,
        "name": "bench-os",
        "description": "bench image",
        "state": "available",
        "public": True,
        "owner_id": "000000000000",
        "image_location": "bench/bench-os",
        "root_device_type": "ebs",
        "root_device_name": "/dev/sda1",
        "image_type": "machine",
        "architecture": "x86_64",
        "virtualization_type": "hvm",
        "hypervisor": "xen",
        "sriov": "simple",
    }
    path.write_text(json.dumps([ami]))
    return path


def moto_peer(moto: Server) -> Peer:
    main = Target("moto", moto.url, "us-east-1", "AKIABENCHMAIN0000000", "bench-secret")
    mutate = Target("moto", moto.url, "us-west-2", "AKIABENCHMUT00000000", "bench-secret")
    return Peer("moto", main, mutate, MOTO_AMI, "t3.nano", [])


def run_params(peer: Peer, batch: int, count: int = BATCH) -> dict[str, str]:
    tags = {"batch": f"b{batch}", "Name": f"bench-{batch}", "env": "bench"}
    params = {
        "ImageId": peer.image_id,
        "InstanceType": peer.instance_type,
        "MinCount": str(count),
        "MaxCount": str(count),
        "TagSpecification.1.ResourceType": "instance",
    }
    for index, (key, value) in enumerate(tags.items(), start=1):
        params[f"TagSpecification.1.Tag.{index}.Key"] = key
        params[f"TagSpecification.1.Tag.{index}.Value"] = value
    return params


def load(peer: Peer, total: int, threads: int = 4) -> float:
    """Launch batches of 100 until `total` instances exist; returns the seconds it took."""
    import time

    batches = range(peer.loaded // BATCH, math.ceil(total / BATCH))

    def launch(batch: int) -> list[str]:
        count = min(BATCH, total - batch * BATCH)
        with httpx.Client(timeout=600) as client:
            reply = send(client, peer.main.sign("RunInstances", run_params(peer, batch, count)))
        if reply.status_code != 200:
            raise RuntimeError(f"{peer.name} RunInstances: {reply.status_code} {reply.text[:500]}")
        return [m.decode() for m in INSTANCE_ID.findall(reply.content)]

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for batch, launched in zip(batches, pool.map(launch, batches), strict=True):
            if batch == 0:
                peer.first_batch = launched
    peer.loaded = total
    return time.perf_counter() - started
