"""Async XML-RPC client for OpenNebula (oned or the embedded one).

One pool of kept-alive connections per gateway process (`ec2gw.one.http`);
`ec2gw.one.xmlrpc` for the encoding. Every call is made with a session string
(`user:secret` or a server_cipher session) so that OpenNebula decides what
the caller may see and do.
"""

from __future__ import annotations

import asyncio
import logging
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass

from ec2gw.one import documents
from ec2gw.one.errors import INTERNAL, OneError
from ec2gw.one.http import HttpError, HttpPool
from ec2gw.one.xmlrpc import decode_reply, encode_call
from ec2gw.protocol.errors import EC2Error, unavailable

log = logging.getLogger("ec2gw.one")

# A reply this large is read in two steps with a turn of the event loop between them (the
# XML-RPC string, then the document in it): a pool of 10,000 VMs takes about 0.4 s each.
LARGE_REPLY_BYTES = 1 << 20


@dataclass
class CallStats:
    """Observer hook for metrics: called with (method, seconds, ok)."""

    observe: Callable[[str, float, bool], None] | None = None


class OneClient:
    """Talks XML-RPC to one OpenNebula endpoint over a keep-alive connection pool."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 30.0,
        max_connections: int = 10,
        stats: CallStats | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._http = HttpPool(endpoint, timeout=timeout, max_connections=max_connections)
        self._stats = stats or CallStats()

    async def close(self) -> None:
        await self._http.close()

    async def call(self, session: str, method: str, *args: object) -> object:
        """Call `method(session, *args)`; return the value at index 1 or raise.

        Raises `OneError` for an OpenNebula failure array and `EC2Error("Unavailable")`
        when OpenNebula cannot be reached, times out, or answers garbage. The session
        string is never logged.
        """
        value, _ = await self._call(session, method, args, document=False)
        return value

    async def call_document(self, session: str, method: str, *args: object) -> documents.Element:
        """`call` for the methods that answer an XML document (`*.info`): it, parsed.

        A document that is not XML is an unreadable reply, like a reply that is not XML-RPC.
        """
        _, document = await self._call(session, method, args, document=True)
        assert document is not None
        return document

    async def _call(
        self, session: str, method: str, args: tuple[object, ...], *, document: bool
    ) -> tuple[object, documents.Element | None]:
        body = encode_call(method, (session, *args))
        started = time.perf_counter()
        ok = False
        try:
            reply = await self._http.post(body)
            if reply.status != 200:
                log.warning("OpenNebula %s answered HTTP %s", method, reply.status)
                raise unavailable()
            try:
                result = decode_reply(reply.body)
            except xmlrpc.client.Fault as fault:
                log.error("OpenNebula fault on %s: %s", method, fault.faultString)
                raise EC2Error("InternalError", "An internal error has occurred") from None
            except Exception:
                raise _unreadable(method) from None
            if not isinstance(result, list) or not result:
                raise unavailable()
            if result[0] is not True:
                code = int(result[2]) if len(result) > 2 else INTERNAL
                obj = int(result[3]) if len(result) > 3 else -1
                raise OneError(method, code, str(result[1]), obj)
            parsed = None
            if document:
                if len(reply.body) > LARGE_REPLY_BYTES:
                    await asyncio.sleep(0)  # let other requests run in between
                try:
                    parsed = documents.parse(result[1])
                except Exception:
                    raise _unreadable(method) from None
            ok = True
            return result[1], parsed
        except HttpError as exc:
            log.warning("OpenNebula unreachable on %s: %s", method, exc)
            raise unavailable() from None
        finally:
            if self._stats.observe:
                self._stats.observe(method, time.perf_counter() - started, ok)


def _unreadable(method: str) -> EC2Error:
    log.error("OpenNebula %s answered an unreadable reply", method)
    return unavailable()
