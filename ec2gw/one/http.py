"""HTTP/1.1 POST over kept-alive connections: exactly what XML-RPC to OpenNebula needs.

The first version used httpx (DESIGN §6). Measured here, one httpx call cost the gateway
about 700 µs of CPU in httpcore and anyio alone, several times what reading OpenNebula's
answer costs, and most actions make one to three calls. This client does only what oned
and the embedded OpenNebula need: POST to one URL (http or https), `Content-Length` or
chunked replies, `Connection: close` honoured, a pool of idle connections reused last-in
first-out, and one timeout over the whole exchange. A call costs about a tenth.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one reply


class HttpError(Exception):
    """The exchange failed: connect, reset, timeout or a reply that is not HTTP/1.x."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        """Still open at both ends: a server that closed an idle connection shows EOF."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """POSTs to one URL; at most `max_connections` exchanges at once."""

    def __init__(self, url: str, *, timeout: float, max_connections: int) -> None:
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = split.hostname
        self.port = split.port or (443 if split.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if split.scheme == "https" else None
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        netloc = split.netloc.rsplit("@", 1)[-1]  # never send credentials of the URL
        self._head = (
            f"POST {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: ec2gw\r\n"
            "Accept-Encoding: identity\r\n"
        )
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []

    async def post(self, body: bytes, content_type: str = "text/xml") -> Reply:
        head = f"{self._head}Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        request = head.encode("latin-1") + body
        async with self._slots:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._send(request)
            except TimeoutError:
                raise HttpError("timed out") from None

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _send(self, request: bytes) -> Reply:
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, request)
            except _StaleConnection:
                pass  # closed by the server while idle, before it read the request: retry
        return await self._exchange(await self._open(), request)

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, limit=MAX_HEAD_BYTES
            )
        except OSError as err:
            raise HttpError(f"cannot connect: {type(err).__name__}") from None
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: bytes) -> Reply:
        """One request and its reply; the connection goes back to the pool or is closed."""
        keep = answered = False
        try:
            connection.writer.write(request)
            try:
                head = await connection.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as err:
                if not err.partial:
                    raise _StaleConnection from None
                raise
            answered = True
            status, headers, version = _parse_head(head)
            body, delimited = await _read_body(connection.reader, headers)
            keep = delimited and _keep_alive(version, headers)
            return Reply(status, body)
        except (ConnectionResetError, BrokenPipeError) as err:
            if answered:  # the server acted on the request: never send it twice
                raise HttpError("connection reset during the reply") from None
            raise _StaleConnection from err
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            raise HttpError("connection failed or reply malformed") from None
        finally:
            if keep:
                self._idle.append(connection)
            else:
                connection.close()


class _StaleConnection(HttpError):
    """Nothing came back on a connection: the server had closed it."""


def _parse_head(head: bytes) -> tuple[int, dict[str, str], str]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x reply")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers, version


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """The body, and whether its end was marked (else the server closed the connection)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return b"".join(chunks), True
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length)), True
    return await reader.read(), False


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"
