"""Micro-benchmark of `ec2gw.auth.verify.verify`: µs per call, in-process, no HTTP.

Signs, with stock botocore, the requests the gateway sees most (a boto3 DescribeRegions
POST with a SigV4 Authorization header, the same as a presigned GET URL, and a SigV2
POST as libcloud/boto 2 send it), then times `await verify(...)` on each over many
iterations with a dict-based secret lookup, the way app.py calls it (header names
lower-cased as uvicorn delivers them). Prints the best of a few rounds per scheme.

    python -m benchmarks.verify_micro [iterations]
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV2Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ec2gw.auth.verify import IncomingRequest, verify

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
HOST = "127.0.0.1:8773"
URL = f"http://{HOST}/"
BODY = "Action=DescribeRegions&Version=2016-11-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
USER_AGENT = (
    "Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux#6.18 md/arch#x86_64 lang/python#3.11.7 "
    "md/pyimpl#CPython m/N,b,e,E,Z cfg/retry-mode#standard Botocore/1.44.8"
)
TABLE = {KEY: SECRET}


async def lookup(access_key: str) -> str | None:
    return TABLE.get(access_key)


def _incoming(method: str, url: str, headers: list[tuple[str, str]], body: str) -> IncomingRequest:
    split = urlsplit(url)
    lowered = [(name.lower(), value) for name, value in headers]
    return IncomingRequest(method, HOST, split.path, split.query, lowered, body.encode())


def _params(req: IncomingRequest) -> list[tuple[str, str]]:
    pairs = parse_qsl(req.query, keep_blank_values=True)
    if req.body:
        pairs += parse_qsl(req.body.decode(), keep_blank_values=True)
    return pairs


def sigv4_header() -> IncomingRequest:
    """What boto3 sends: it signs content-type;host;x-amz-date, then adds the rest."""
    request = AWSRequest(
        method="POST", url=URL, data=BODY, headers={"Host": HOST, "Content-Type": FORM}
    )
    SigV4Auth(Credentials(KEY, SECRET), "ec2", "us-east-1").add_auth(request)
    headers = [
        ("Host", HOST),
        ("Accept-Encoding", "identity"),
        ("Content-Type", FORM),
        ("User-Agent", USER_AGENT),
        ("X-Amz-Date", request.headers["X-Amz-Date"]),
        ("Authorization", request.headers["Authorization"]),
        ("amz-sdk-invocation-id", "edd1059f-cd22-4170-a7d8-d0dbfd2071e4"),
        ("amz-sdk-request", "attempt=1; max=2"),
        ("Content-Length", str(len(BODY))),
    ]
    return _incoming("POST", URL, headers, BODY)


def sigv4_presigned() -> IncomingRequest:
    request = AWSRequest(
        method="POST", url=URL, params={"Action": "DescribeRegions", "Version": "2016-11-15"}
    )
    SigV4QueryAuth(Credentials(KEY, SECRET), "ec2", "us-east-1", expires=3600).add_auth(request)
    url = request.prepare().url
    return _incoming("GET", url, [("Host", HOST), ("User-Agent", "curl/8")], "")


def sigv2() -> IncomingRequest:
    request = AWSRequest(
        method="POST", url=URL, data={"Action": "DescribeRegions", "Version": "2016-11-15"}
    )
    SigV2Auth(Credentials(KEY, SECRET)).add_auth(request)
    body = request.prepare().body
    headers = [("Host", HOST), ("Content-Type", FORM), ("Content-Length", str(len(body)))]
    return _incoming("POST", URL, headers, body)


async def _time(req: IncomingRequest, iterations: int, rounds: int = 5) -> float:
    """Best µs per verify over `rounds` rounds of `iterations` calls."""
    params = _params(req)
    await verify(req, params, lookup)  # fail loudly here, not with a silly figure
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            await verify(req, params, lookup)
        best = min(best, (time.perf_counter() - start) / iterations)
    return best * 1e6


async def main(iterations: int) -> None:
    for label, req in (
        ("SigV4 header (boto3 DescribeRegions POST)", sigv4_header()),
        ("SigV4 presigned GET", sigv4_presigned()),
        ("SigV2 POST", sigv2()),
    ):
        print(f"{label:44s} {await _time(req, iterations):7.1f} µs/verify")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
