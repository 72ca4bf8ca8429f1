"""`ec2gw setup`: what an operator makes once on a real OpenNebula, as oneadmin.

Each item is created if missing, else checked against the configuration, never changed:

* the server_cipher account `[opennebula] server_user` (group oneadmin);
* the instance types of `[instance_types]`, VM templates carrying EC2_INSTANCE_TYPE that
  every user may use (as `embedded.seed` makes them);
* the public network of Elastic IPs, `[gateway] public_network`: only checked (it is the
  operator's own network), with `ec2gw check`'s warning about groups open to all traffic.

Running it twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ec2gw.config import InstanceType, Settings
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.one.errors import OneError
from ec2gw.one.sessions import ServerCipherSessions

CREATED, PRESENT, DIFFERS, WARNING, PROBLEM = "created", "ok", "DIFFERS", "WARNING", "PROBLEM"
ONEADMIN_GROUP = 0
USE_BY_ALL = (1, 1, 0, 1, 0, 0, 1, 0, 0)  # owner um-, group u--, other u--


def oneadmin_auth_file(given: str | None, env: dict[str, str] | None = None) -> Path:
    """The oneadmin credentials file, as the OpenNebula CLI finds it: the option, else
    $ONE_AUTH, else ~/.one/one_auth."""
    env = os.environ if env is None else env
    return Path(given or env.get("ONE_AUTH") or Path.home() / ".one" / "one_auth").expanduser()


def read_auth(path: Path) -> str:
    """`user:password` from a one_auth file (its first line)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise SetupError(f"cannot read the oneadmin credentials {path}: {err.strerror}") from None
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if ":" not in line:
        raise SetupError(f"{path} does not hold `user:password` credentials")
    return line


class SetupError(Exception):
    """`ec2gw setup` cannot start (no endpoint, no credentials, oned refused them)."""


@dataclass
class Report:
    lines: list[tuple[str, str]] = field(default_factory=list)
    # A secret made here, to be shown once: (user, secret).
    new_secret: tuple[str, str] | None = None

    def add(self, status: str, text: str) -> None:
        self.lines.append((status, text))

    @property
    def failed(self) -> bool:
        return any(status in (PROBLEM, DIFFERS) for status, _ in self.lines)


def _key(secret: str) -> str:
    """What OpenNebula stores as a server_cipher user's password: the SHA-256 of its
    secret, the key of its tokens (what `oneuser create --driver server_cipher` sends and
    what oned keeps for serveradmin)."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def _server_account(one: OneClient, admin: str, settings: Settings, report: Report) -> None:
    name = settings.opennebula.server_user
    secret = settings.opennebula.server_secret
    users = await one.call_document(admin, "one.userpool.info")
    user = next((u for u in users.iterfind("USER") if documents.text(u, "NAME") == name), None)
    if user is None:
        made = not secret
        secret = secret or secrets.token_hex(32)
        try:
            uid = await one.call(
                admin, "one.user.allocate", name, _key(secret), "server_cipher", [ONEADMIN_GROUP]
            )
        except OneError as err:
            report.add(PROBLEM, f"server account {name!r}: OpenNebula refused it: {err.message}")
            return
        report.add(CREATED, f"server account {name!r} (id {uid}, server_cipher, group oneadmin)")
        if made:
            report.new_secret = (name, secret)
        await _secret_works(one, name, secret, report)
        return
    uid = documents.integer(user, "ID")
    driver = documents.text(user, "AUTH_DRIVER")
    groups = {documents.to_integer(g.text or "", -1) for g in user.iterfind("GROUPS/ID")}
    problems = []
    if driver != "server_cipher":
        problems.append(f"auth driver {driver}, not server_cipher (oneuser chauth {uid} ...)")
    if ONEADMIN_GROUP not in groups:
        problems.append(f"not in the oneadmin group (oneuser chgrp {uid} oneadmin)")
    if problems:
        report.add(DIFFERS, f"server account {name!r} (id {uid}) exists: {'; '.join(problems)}")
    else:
        report.add(PRESENT, f"server account {name!r} (id {uid}): server_cipher, group oneadmin")
    if not secret:
        where = " (serveradmin's is in /var/lib/one/.one/sunstone_auth)" if uid == 1 else ""
        report.add(
            PROBLEM,
            f"[opennebula] server_secret is empty: set the secret of {name!r}{where}, or "
            "name a new account in [opennebula] server_user and run `ec2gw setup` again to "
            "create it",
        )
    elif not problems:
        await _secret_works(one, name, secret, report)


async def _secret_works(one: OneClient, name: str, secret: str, report: Report) -> None:
    session = ServerCipherSessions(name, secret).admin
    try:
        await one.call(session, "one.user.info", -1)
    except OneError as err:
        report.add(
            PROBLEM, f"server account {name!r}: the configured secret is refused: {err.message}"
        )
    else:
        report.add(PRESENT, f"server account {name!r}: the configured secret works")


def _differences(template: etree._Element, spec: InstanceType) -> list[str]:
    found = []
    for label, path, want in (
        ("vcpu", "TEMPLATE/VCPU", spec.vcpu),
        ("memory", "TEMPLATE/MEMORY", spec.memory),
        ("cpu", "TEMPLATE/CPU", spec.cpu),
    ):
        have = documents.text(template, path)
        try:
            same = float(have) == float(want)
        except ValueError:
            same = False
        if not same:
            found.append(f"{label} {have or 'unset'} (configured {want})")
    if documents.text(template, "PERMISSIONS/OTHER_U") != "1":
        found.append("not usable by every user (onetemplate chmod ID 644 or 604)")
    return found


async def _instance_types(one: OneClient, admin: str, settings: Settings, report: Report) -> None:
    from ec2gw.actions.instance_types import TYPE_ATTRIBUTE

    if not settings.instance_types:
        report.add(WARNING, "no [instance_types] configured")
        return
    pool = await one.call_document(admin, "one.templatepool.info", -2, -1, -1)
    existing: dict[str, etree._Element] = {}
    for template in sorted(pool.iterfind("VMTEMPLATE"), key=lambda t: documents.integer(t, "ID")):
        existing.setdefault(
            documents.text(template, f"TEMPLATE/{TYPE_ATTRIBUTE}").strip(), template
        )
    for name, spec in settings.instance_types.items():
        size = f"{spec.vcpu} vCPU, {spec.memory} MB, CPU {spec.cpu:g}"
        template = existing.get(name)
        if template is not None:
            tid = documents.integer(template, "ID")
            differences = _differences(template, spec)
            if differences:
                report.add(
                    DIFFERS,
                    f"instance type {name} (template {tid}): {'; '.join(differences)}; "
                    "left as it is",
                )
            else:
                report.add(PRESENT, f"instance type {name} (template {tid}): {size}")
            continue
        try:
            tid = await one.call(
                admin,
                "one.template.allocate",
                documents.template_text(
                    [
                        ("NAME", name),
                        (TYPE_ATTRIBUTE, name),
                        ("CPU", f"{spec.cpu:g}"),
                        ("VCPU", spec.vcpu),
                        ("MEMORY", spec.memory),
                        ("DESCRIPTION", f"EC2 instance type {name}"),
                    ]
                ),
            )
            await one.call(admin, "one.template.chmod", tid, *USE_BY_ALL)
        except OneError as err:
            report.add(PROBLEM, f"instance type {name}: OpenNebula refused it: {err.message}")
            continue
        report.add(CREATED, f"instance type {name} (template {tid}): {size}, usable by all")


async def _public_network(one: OneClient, admin: str, settings: Settings, report: Report) -> None:
    from ec2gw.actions.vpc import network_named
    from ec2gw.cli import open_networks

    wanted = settings.gateway.public_network
    if not wanted:
        report.add(WARNING, "no [gateway] public_network: no Elastic IPs (AllocateAddress fails)")
        return
    vnets = await one.call_document(admin, "one.vnpool.info", -2, -1, -1)
    vnet_id = network_named(vnets, wanted)
    if vnet_id is None:
        report.add(
            PROBLEM,
            f"public network {wanted!r} ([gateway] public_network) does not exist: create it "
            "(onevnet create), usable by every user, or correct the name",
        )
        return
    vnet = next(v for v in vnets.iterfind("VNET") if documents.integer(v, "ID") == vnet_id)
    report.add(PRESENT, f"public network {wanted!r} (id {vnet_id}) exists (checked only)")
    if documents.text(vnet, "PERMISSIONS/OTHER_U") != "1":
        report.add(
            WARNING,
            f"public network {wanted!r}: users need USE on it for Elastic IPs "
            f"(onevnet chmod {vnet_id} 604, or an ACL)",
        )
    alone = etree.Element("VNET_POOL")
    alone.append(vnet)
    groups = await one.call_document(admin, "one.secgrouppool.info", -2, -1, -1)
    for warning in open_networks(alone, groups, ""):
        report.add(WARNING, warning)


async def setup(settings: Settings, oneadmin_session: str) -> Report:
    """Create or check each item; what was done, line by line."""
    report = Report()
    one = OneClient(settings.opennebula.endpoint, timeout=settings.opennebula.timeout)
    try:
        try:
            await one.call(oneadmin_session, "one.user.info", -1)
        except OneError as err:
            raise SetupError(
                f"OpenNebula at {settings.opennebula.endpoint} refused the oneadmin "
                f"credentials: {err.message}"
            ) from None
        await _server_account(one, oneadmin_session, settings, report)
        await _instance_types(one, oneadmin_session, settings, report)
        await _public_network(one, oneadmin_session, settings, report)
    finally:
        await one.close()
    return report
