"""Running one scripted XML-RPC sequence on a cloud and recording its replies.

A scenario is a function of a `Side`: it calls methods as oneadmin (`side.admin`) or as a
plain user through a server_cipher session (`side.user`), and every call is recorded with
its normalised reply. Values a later call needs come from the side's own replies
(`side.ok`), so ids may differ. When a call a scenario depends on fails, `StepFailed`
stops that side's scenario; the comparison then shows where the two sides parted.
Everything a run makes is removed afterwards as oneadmin (`side.cleanup`).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field

from ec2gw.one.sessions import ServerCipherSessions
from tests.differential.normalize import Run, parse, reply_lines

Reply = list | dict


SWEEP = (
    ("one.imagepool.info", "IMAGE", "one.image.delete"),
    ("one.vnpool.info", "VNET", "one.vn.delete"),
    ("one.secgrouppool.info", "SECURITY_GROUP", "one.secgroup.delete"),
    ("one.templatepool.info", "VMTEMPLATE", "one.template.delete"),
)
SWEEP_ARGS = {"one.image.delete": (True,)}


class StepFailed(Exception):
    """A call the rest of the scenario needs did not succeed."""


@dataclass
class Cloud:
    """An XML-RPC endpoint with oneadmin and server_cipher credentials."""

    name: str
    url: str
    admin_session: str
    server_user: str
    server_secret: str
    host_id: int = 0

    def __post_init__(self) -> None:
        self.sessions = ServerCipherSessions(self.server_user, self.server_secret)

    def call(self, session: str, method: str, *args: object) -> Reply:
        proxy = xmlrpc.client.ServerProxy(self.url, allow_none=False)
        try:
            return list(getattr(proxy, method)(session, *args))
        except xmlrpc.client.Fault as fault:
            return {"faultCode": fault.faultCode, "faultString": fault.faultString}


@dataclass
class Step:
    label: str
    lines: list[str]


@dataclass
class Side:
    cloud: Cloud
    run: Run = field(default_factory=lambda: Run(secrets.token_hex(4)))
    steps: list[Step] = field(default_factory=list)
    undo: list[Callable[[], object]] = field(default_factory=list)
    user_name: str = ""
    user_session: str = ""

    # --- calls --------------------------------------------------------------------------

    def name(self, what: str) -> str:
        """A name unique to this run (normalised to `<run>` in the comparison)."""
        return f"diff-{self.run.token}-{what}"

    def session(self, who: str) -> str:
        if who == "admin":
            return self.cloud.admin_session
        return self.user_session if who == "user" else "nobody:wrong"

    def call(self, who: str, method: str, *args: object, note: str = "") -> Reply:
        session = self.session(who)
        reply = self.cloud.call(session, method, *args)
        label = f"{who} {method}{' ' + note if note else ''}"
        self.steps.append(Step(label, reply_lines(reply, self.run)))
        return reply

    def admin(self, method: str, *args: object, note: str = "") -> Reply:
        return self.call("admin", method, *args, note=note)

    def user(self, method: str, *args: object, note: str = "") -> Reply:
        return self.call("user", method, *args, note=note)

    @staticmethod
    def ok(reply: Reply):
        if not isinstance(reply, list) or reply[0] is not True:
            raise StepFailed(str(reply))
        return reply[1]

    def quiet(self, who: str, method: str, *args: object) -> Reply:
        """A call that is not compared (polling, cleanup)."""
        return self.cloud.call(self.session(who), method, *args)

    # --- objects ------------------------------------------------------------------------

    def made(self, pool: str, oid: int, delete: Callable[[], object] | None = None) -> int:
        self.run.made(pool, oid)
        if delete is not None:
            self.undo.append(delete)
        return oid

    def make_user(self) -> int:
        """A plain user in group `users` and a server_cipher session acting as it."""
        self.user_name = self.name("user")
        uid = self.ok(
            self.admin("one.user.allocate", self.user_name, "pw-" + self.run.token, "core", [1])
        )
        self.run.user_id = uid
        self.made("USER_POOL", uid, lambda: self.quiet("admin", "one.user.delete", uid))
        self.user_session = self.cloud.sessions.for_user(self.user_name)
        return uid

    def cleanup(self) -> None:
        """Undo what the run made, then sweep what an unexpected success left (any object
        whose name carries the run's token)."""
        for undo in reversed(self.undo):
            with contextlib.suppress(Exception):  # best effort: the next one may still work
                undo()
        self.undo.clear()
        for pool, root, delete in SWEEP:
            reply = self.quiet("admin", pool, -2, -1, -1)
            if not isinstance(reply, list) or reply[0] is not True:
                continue
            for item in parse(reply[1]).children:
                fields = {c.tag: c.text for c in item.children if c.leaf}
                if self.run.token in fields.get("NAME", "") and item.tag == root:
                    self.quiet("admin", delete, int(fields["ID"]), *SWEEP_ARGS.get(delete, ()))

    # --- waiting ------------------------------------------------------------------------

    def field(self, method: str, oid: int, path: str) -> str | None:
        reply = self.quiet("admin", method, oid)
        if not isinstance(reply, list) or reply[0] is not True:
            return None
        node = parse(reply[1])
        for part in path.split("/"):
            node = next((c for c in node.children if c.tag == part), None)
            if node is None:
                return None
        return node.text

    def wait(
        self, method: str, oid: int, path: str, values: set[str | None], timeout: float = 20.0
    ) -> str | None:
        """Poll `method(oid)` until the leaf at `path` takes one of `values` (None = gone)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.field(method, oid, path)
            if value in values or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def wait_vm(self, vid: int, state: str, lcm: str = "0", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.field("one.vm.info", vid, "STATE"),
                self.field("one.vm.info", vid, "LCM_STATE"),
            ) == (state, lcm):
                return
            time.sleep(0.1)
