"""Scripted OpenNebula-like HTTP servers on real sockets, for the transport and client tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

# A script answers one request: it gets the request's body and the writer.
Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Accepts connections; every request is answered by the next script (the last repeats)."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                script = self.scripts[min(len(self.requests), len(self.scripts)) - 1]
                await script(body, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/RPC2"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Script]], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(scripts: list[Script]) -> Server:
        server = Server(scripts)
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.server.close()
