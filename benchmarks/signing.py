"""EC2 Query requests signed with botocore's SigV4Auth before any timed loop.

A SigV4 signature stays valid for the 15-minute clock-skew window, so a pool signed up
front can be replayed by the load generator without signing in the timed loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

API_VERSION = "2016-11-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass(frozen=True)
class HttpRequest:
    """One ready-to-send request: what the load generator replays byte for byte."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        split = urlsplit(self.url)
        return split.path + (f"?{split.query}" if split.query else "")


@dataclass(frozen=True)
class Target:
    """An EC2 endpoint and the credentials and region to sign for it."""

    name: str
    url: str
    region: str
    access_key: str
    secret_key: str

    def sign(self, action: str, params: dict[str, str] | None = None) -> HttpRequest:
        form = {"Action": action, "Version": API_VERSION, **(params or {})}
        request = AWSRequest(
            method="POST", url=self.url + "/", data=urlencode(form), headers={"Content-Type": FORM}
        )
        SigV4Auth(Credentials(self.access_key, self.secret_key), "ec2", self.region).add_auth(
            request
        )
        headers = {"Host": urlsplit(self.url).netloc, **dict(request.headers.items())}
        return HttpRequest("POST", self.url + "/", tuple(headers.items()), request.body)

    def pool(self, action: str, params: dict[str, str], size: int) -> list[HttpRequest]:
        return [self.sign(action, params) for _ in range(size)]


def xmlrpc_request(url: str, method: str, *args: object) -> HttpRequest:
    """A raw XML-RPC call to OpenNebula, encoded as the gateway's client encodes it."""
    import xmlrpc.client

    body = xmlrpc.client.dumps(args, method, allow_none=False).encode()
    host = urlsplit(url).netloc
    return HttpRequest("POST", url, (("Host", host), ("Content-Type", "text/xml")), body)
