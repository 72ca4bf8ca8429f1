"""What a handler knows about the request it serves, and how it reaches OpenNebula."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ec2gw.auth.keys import AccessKey
from ec2gw.auth.verify import Caller
from ec2gw.config import Settings
from ec2gw.ec2.ids import account_id
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.protocol.errors import dry_run_ok


@dataclass
class RequestContext:
    request_id: str
    action: str
    caller: Caller
    key: AccessKey
    settings: Settings
    host: str  # Host header, for endpoints we advertise
    scheme: str
    one_client: OneClient
    session: str  # server_cipher session acting as the caller; never logged
    infra_session: str  # the gateway's own account, for infrastructure facts only

    async def one(self, method: str, *args: object) -> Any:
        """Call OpenNebula as the caller."""
        return await self.one_client.call(self.session, method, *args)

    async def one_doc(self, method: str, *args: object) -> documents.Element:
        """Call OpenNebula as the caller and parse the XML document it returns."""
        return await self.one_client.call_document(self.session, method, *args)

    async def infrastructure(self, method: str, *args: object) -> documents.Element:
        """Read infrastructure (host capacity) as the gateway's own account.

        The one exception to "every call as the caller": a user may not be allowed to list
        hosts, yet RunInstances must know whether the capacity is there. Only aggregate
        capacity is derived from it; nothing of it reaches the client.
        """
        return await self.one_client.call_document(self.infra_session, method, *args)

    @property
    def uid(self) -> int:
        return self.key.uid

    @property
    def account_id(self) -> str:
        return account_id(self.key.uid)

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://{self.host}" if self.host else ""


def finish_dry_run(params: dict[str, Any]) -> None:
    """Call once the permission checks have passed: a DryRun stops here with 412."""
    if params.get("DryRun"):
        raise dry_run_ok()
