"""The OpenNebula client's documents against a scripted oned on a real socket."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Awaitable, Callable

import pytest
from lxml import etree

from ec2gw.one.client import OneClient
from ec2gw.one.errors import OneError
from ec2gw.protocol.errors import EC2Error
from tests.loop_turns import LoopTurns
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


@pytest.mark.parametrize("vms", [1, 40_000])
async def test_a_document_comes_parsed(serve: Serve, vms: int) -> None:
    text = pool(vms)
    server = await serve([answering(True, text, 0)])
    one = OneClient(server.url)
    document = await one.call_document("s", "one.vmpool.info", -2)
    assert etree.tostring(document, encoding="unicode") == text
    assert await one.call("s", "one.vmpool.info", -2) == text
    await one.close()


async def test_a_failure_is_a_one_error_and_a_document_not_xml_is_unreadable(
    serve: Serve,
) -> None:
    message = "[one.vm.info] Error getting virtual machine [7]."
    server = await serve([answering(False, message, 0x400, 7), answering(True, "not <xml")])
    one = OneClient(server.url)
    with pytest.raises(OneError) as failure:
        await one.call_document("s", "one.vm.info", 7)
    assert failure.value.code == 0x400
    with pytest.raises(EC2Error) as unreadable:
        await one.call_document("s", "one.vm.info", 7)
    assert unreadable.value.code == "Unavailable"
    await one.close()


@pytest.mark.parametrize("vms, turns_between", [(10, False), (40_000, True)])
async def test_a_large_reply_lets_the_event_loop_turn_between_its_two_reads(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, vms: int, turns_between: bool
) -> None:
    """The XML-RPC string of a large pool, then the document in it: other requests run in
    between (counted by a task that counts the loop's turns), a small reply goes straight."""
    from ec2gw.one import client, documents

    server = await serve([answering(True, pool(vms), 0)])
    seen: dict[str, int] = {}
    async with LoopTurns() as turns:

        def decode_counted(body: bytes) -> object:
            value = decode(body)
            seen["decoded"] = turns.count
            return value

        def parse_counted(text: str) -> etree._Element:
            seen["parsing"] = turns.count
            return parse(text)

        decode, parse = client.decode_reply, documents.parse
        monkeypatch.setattr(client, "decode_reply", decode_counted)
        monkeypatch.setattr(documents, "parse", parse_counted)
        one = OneClient(server.url)
        document = await one.call_document("s", "one.vmpool.info", -2)
    assert len(document) == vms
    assert (seen["parsing"] > seen["decoded"]) is turns_between
    await one.close()
