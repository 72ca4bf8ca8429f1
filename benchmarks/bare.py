"""A bare ASGI app answering every request with one fixed EC2-like body: the ceiling
of uvicorn on this machine, against which the gateway's DescribeRegions is compared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
    b"<requestId>00000000-0000-0000-0000-000000000000</requestId><regionInfo><item>"
    b"<regionName>opennebula</regionName><regionEndpoint>127.0.0.1</regionEndpoint>"
    b"<optInStatus>opt-in-not-required</optInStatus></item></regionInfo>"
    b"</DescribeRegionsResponse>"
)
HEADERS = [(b"content-type", b"text/xml;charset=UTF-8"), (b"content-length", b"%d" % len(BODY))]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass  # drain the request body
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
