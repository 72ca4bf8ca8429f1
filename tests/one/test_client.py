"""The OpenNebula client's documents: small replies read on the event loop, large ones in a
worker thread, with the same results and errors either way."""

from __future__ import annotations

import asyncio
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable

import pytest
from lxml import etree

from ec2gw.one import client as one_client
from ec2gw.one.client import OneClient
from ec2gw.one.errors import OneError
from ec2gw.protocol.errors import EC2Error
from tests.one.conftest import Script, Server

Serve = Callable[[list[Script]], Awaitable[Server]]


def answering(*value: object) -> Script:
    reply = xmlrpc.client.dumps((list(value),), methodresponse=True).encode()

    async def script(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)

    return script


def pool(vms: int) -> str:
    names = "".join(f"<VM><ID>{n}</ID><NAME>vm &amp; {n}</NAME></VM>" for n in range(vms))
    return f"<VM_POOL>{names}</VM_POOL>"


@pytest.mark.parametrize("vms", [3, 20_000], ids=["small", "large"])
async def test_documents_small_and_large_read_alike(serve: Serve, vms: int) -> None:
    text = pool(vms)
    assert (len(text) >= one_client.LARGE_REPLY_BYTES) == (vms > 3)
    server = await serve([answering(True, text, 0)])
    one = OneClient(server.url)
    document = await one.call_document("s", "one.vmpool.info", -2)
    assert etree.tostring(document, encoding="unicode") == text
    assert await one.call("s", "one.vmpool.info", -2) == text
    await one.close()


@pytest.mark.parametrize("filler", [0, one_client.LARGE_REPLY_BYTES], ids=["small", "large"])
async def test_failures_read_alike(serve: Serve, filler: int) -> None:
    message = "[one.vm.info] Error getting virtual machine [7]." + " " * filler
    server = await serve([answering(False, message, 0x400, 7), answering(True, "not <xml")])
    one = OneClient(server.url)
    with pytest.raises(OneError) as failure:
        await one.call_document("s", "one.vm.info", 7)
    assert failure.value.code == 0x400
    with pytest.raises(EC2Error) as unreadable:
        await one.call_document("s", "one.vm.info", 7)
    assert unreadable.value.code == "Unavailable"
    await one.close()


async def test_a_large_reply_is_read_off_the_event_loop(serve: Serve) -> None:
    """While a large pool is read, other coroutines keep running: the longest pause of a
    ticking coroutine is well below what reading the reply on the loop would take."""
    text = pool(200_000)
    reply = xmlrpc.client.dumps(([True, text, 0],), methodresponse=True).encode()
    started = time.perf_counter()
    one_client._read(reply, True, False)
    on_the_loop = time.perf_counter() - started
    server = await serve([answering(True, text, 0)])
    one = OneClient(server.url)
    reading = asyncio.ensure_future(one.call_document("s", "one.vmpool.info", -2))
    longest_pause, last = 0.0, time.perf_counter()
    while not reading.done():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        longest_pause, last = max(longest_pause, now - last), now
    assert len((await reading).findall("VM")) == 200_000
    assert longest_pause < on_the_loop / 3
    await one.close()
