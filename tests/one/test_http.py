"""The XML-RPC transport against a scripted HTTP server on a real socket: reply framings,
kept-alive connections, servers that close them, hang or answer garbage."""

from __future__ import annotations

import asyncio

import pytest

from ec2gw.one.http import HttpError, HttpPool
from tests.one.conftest import Script, Server


def length_reply(status: int = 200, extra: str = "") -> Script:
    async def script(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body
        )
        if "close" in extra:
            await writer.drain()
            writer.close()

    return script


async def chunked_reply(body: bytes, writer: asyncio.StreamWriter) -> None:
    pieces = [body[: len(body) // 2], body[len(body) // 2 :]]
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")


async def eof_delimited_reply(body: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + body)
    await writer.drain()
    writer.close()


async def close_without_reply(body: bytes, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def hang(body: bytes, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def garbage(body: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")


def pool(server: Server, timeout: float = 5.0) -> HttpPool:
    return HttpPool(server.url, timeout=timeout, max_connections=4)


async def test_content_length_replies_reuse_one_connection(serve):
    server = await serve([length_reply()])
    client = pool(server)
    for n in range(5):
        reply = await client.post(b"call %d" % n)
        assert (reply.status, reply.body) == (200, b"call %d" % n)
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /RPC2 HTTP/1.1\r\n")
    assert b"\r\nContent-Type: text/xml\r\n" in first
    await client.close()


async def test_chunked_and_eof_delimited_replies(serve):
    server = await serve([chunked_reply, chunked_reply, eof_delimited_reply, length_reply()])
    client = pool(server)
    assert (await client.post(b"a" * 1000)).body == b"a" * 1000
    assert (await client.post(b"b")).body == b"b"
    assert server.connections == 1
    assert (await client.post(b"until eof")).body == b"until eof"
    assert (await client.post(b"next")).body == b"next"  # on a new connection
    assert server.connections == 2
    await client.close()


async def test_connection_close_is_honoured(serve):
    server = await serve([length_reply(extra="Connection: close\r\n")])
    client = pool(server)
    for _ in range(3):
        assert (await client.post(b"x")).status == 200
    assert server.connections == 3
    await client.close()


async def test_a_connection_the_server_dropped_while_idle_is_replaced(serve):
    # The server answers, then drops the kept-alive connection without a word (as oned
    # does after its keep-alive timeout): the next call must go through on a new one.
    server = await serve([length_reply(), close_without_reply, length_reply()])
    client = pool(server)
    assert (await client.post(b"one")).body == b"one"
    assert (await client.post(b"two")).body == b"two"
    assert server.connections == 2
    await client.close()


async def test_non_200_status_is_returned(serve):
    server = await serve([length_reply(status=500)])
    client = pool(server)
    assert (await client.post(b"x")).status == 500
    await client.close()


async def test_hang_times_out_and_the_connection_is_not_reused(serve):
    server = await serve([hang, length_reply()])
    client = pool(server, timeout=0.3)
    with pytest.raises(HttpError, match="timed out"):
        await client.post(b"slow")
    assert (await client.post(b"fast")).body == b"fast"
    assert server.connections == 2
    await client.close()


@pytest.mark.parametrize("script", [garbage, close_without_reply])
async def test_garbage_or_silence_on_a_new_connection_is_an_error(serve, script):
    server = await serve([script])
    client = pool(server)
    with pytest.raises(HttpError):
        await client.post(b"x")
    await client.close()


async def test_nothing_listening_is_an_error():
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = HttpPool(f"http://127.0.0.1:{port}/RPC2", timeout=2, max_connections=1)
    with pytest.raises(HttpError, match="cannot connect"):
        await client.post(b"x")


async def test_concurrent_calls_share_at_most_max_connections(serve):
    async def slow(body: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await length_reply()(body, writer)

    server = await serve([slow])
    client = HttpPool(server.url, timeout=5, max_connections=3)
    replies = await asyncio.gather(*(client.post(b"%d" % n) for n in range(12)))
    assert sorted(r.body for r in replies) == sorted(b"%d" % n for n in range(12))
    assert server.connections == 3
    await client.close()


def test_only_http_urls():
    with pytest.raises(ValueError):
        HttpPool("ftp://host/RPC2", timeout=1, max_connections=1)


async def test_a_reply_cut_short_is_an_error_and_the_call_is_not_sent_again(serve):
    import socket
    import struct

    async def cut(body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # a reset, not an orderly close

    server = await serve([length_reply(), cut])
    client = pool(server)
    assert (await client.post(b"first")).body == b"first"
    with pytest.raises(HttpError):
        await client.post(b"second")  # on the kept-alive connection
    assert [r.endswith(b"second") for r in server.requests] == [False, True]
    await client.close()
