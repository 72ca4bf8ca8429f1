"""The `ec2gw` command: serve, sim, keys, users, setup, check, actions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ec2gw.config import ConfigError, Settings, environment, load_settings
from ec2gw.observability import configure_logging

if TYPE_CHECKING:
    from ec2gw.one.documents import Element

log = logging.getLogger("ec2gw")


def _settings(args: argparse.Namespace) -> Settings:
    config = getattr(args, "config", None) or os.environ.get("EC2GW_CONFIG")
    settings = load_settings(config)
    if getattr(args, "host", None):
        settings.gateway.host = args.host
    if getattr(args, "port", None) is not None:
        settings.gateway.port = args.port
    if getattr(args, "data_dir", None):
        settings.embedded.data_dir = args.data_dir
    if getattr(args, "workers", None) is not None:
        settings.gateway.workers = args.workers
    return settings


def _data_dir(settings: Settings) -> Path:
    return Path(settings.embedded.data_dir).expanduser().resolve()


def _aws_command() -> str:
    """`aws`, spelled so that the printed line works from another terminal too."""
    import shutil

    found = shutil.which("aws")
    if found and Path(found).parent == Path(sys.executable).parent:
        return found  # the aws cli installed beside ec2gw, e.g. in its virtualenv
    return "aws"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ec2gw import embedded, workers
    from ec2gw.app import create_app

    settings = _settings(args)
    configure_logging(settings.gateway.log_json)
    cloud = None
    lock = None
    if settings.embedded_mode:
        data_dir = _data_dir(settings)
        # The data directory's owner for the life of this process (DataDirBusy otherwise:
        # a second OpenNebula on the same database would break the running one).
        lock = embedded.DataDirLock.acquire(data_dir, "ec2gw serve", settings.gateway.port)
        try:
            _port_free(settings.gateway.host, settings.gateway.port)
            cloud = embedded.start(settings, data_dir)
        except BaseException:
            lock.release()
            raise
        (data_dir / "endpoint").write_text(settings.opennebula.endpoint + "\n")
        asyncio.run(embedded.seed(cloud))
        url = embedded.endpoint_url(settings)
        print(
            f"ec2gw: embedded OpenNebula at {settings.opennebula.endpoint} (data in {data_dir})\n"
            f"ec2gw: EC2 endpoint {url}, credentials in {cloud.credentials_file} "
            f"(profile {embedded.PROFILE})\n\nTry:\n\n"
            f"  AWS_SHARED_CREDENTIALS_FILE={cloud.credentials_file} "
            f"AWS_CONFIG_FILE={cloud.config_file} "
            f"{_aws_command()} --profile {embedded.PROFILE} --endpoint-url {url} "
            "ec2 describe-images\n",
            flush=True,
        )
    server_options = {
        "host": settings.gateway.host,
        "port": settings.gateway.port,
        "log_level": "info",
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
    }
    # uvicorn, once it has shut down on SIGTERM, raises the signal again to end the process
    # as the signal would: turned into an exception here, it lets the embedded OpenNebula
    # stop (and its endpoint file go) before the process ends that way.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    terminated = False
    try:
        if settings.gateway.workers > 1:
            # Worker processes build their app from the environment: these very settings,
            # the embedded OpenNebula's endpoint included (it keeps running in this process).
            os.environ.update(environment(settings))
            workers.serve(
                "ec2gw.app:create_from_environment", settings.gateway.workers, **server_options
            )
        else:
            uvicorn.run(create_app(settings), **server_options)
    except _Terminated:
        terminated = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if cloud is not None:
            (_data_dir(settings) / "endpoint").unlink(missing_ok=True)
            cloud.sim.stop()
        if lock is not None:
            lock.release()
    if terminated:
        signal.raise_signal(signal.SIGTERM)
    return 0


class PortInUse(Exception):
    """The gateway's port is taken (checked before the embedded OpenNebula starts)."""


def _port_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise PortInUse(f"cannot listen on {host}:{port}: {err.strerror}") from None


class _Terminated(Exception):
    """SIGTERM arrived (see `cmd_serve`)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def cmd_sim(args: argparse.Namespace) -> int:
    from ec2gw.onesim.__main__ import run_forever

    settings = _settings(args)
    from ec2gw.embedded import DataDirLock, lifecycle_from

    data_dir, port = _data_dir(settings), args.port or 2633
    lock = DataDirLock.acquire(data_dir, "ec2gw sim", port)
    try:
        run_forever(data_dir, args.host or "127.0.0.1", port, lifecycle_from(settings))
    finally:
        lock.release()
    return 0


async def _with_keystore(settings: Settings, work):
    """Run `work(keystore)` against the configured or embedded OpenNebula."""
    return await _with_opennebula(settings, lambda one, sessions, keystore: work(keystore))


async def _with_opennebula(settings: Settings, work):
    """Run `work(one, sessions, keystore)` against the configured or embedded OpenNebula:
    the embedded one of the data directory (a running `serve`'s, else started here while
    the data directory is locked), or EC2GW_OPENNEBULA_* through the server account."""
    from ec2gw import embedded
    from ec2gw.auth.keys import KeyCipher, KeyStore
    from ec2gw.one.client import OneClient
    from ec2gw.one.sessions import ServerCipherSessions

    cloud = None
    if settings.embedded_mode:
        cloud = embedded.attach(settings, _data_dir(settings))
    one = OneClient(settings.opennebula.endpoint, timeout=settings.opennebula.timeout)
    try:
        sessions = ServerCipherSessions(
            settings.opennebula.server_user, settings.opennebula.server_secret
        )
        cipher = KeyCipher(settings.auth.key_encryption_key or settings.opennebula.server_secret)
        return await work(one, sessions, KeyStore(one, sessions, cipher, cache_seconds=0))
    finally:
        await one.close()
        if cloud is not None:
            cloud.stop()


def _print_key(key, as_json: bool) -> None:
    """A just-minted key, its secret shown this once (`keys create`, `users create`)."""
    if as_json:
        print(
            json.dumps(
                {
                    "AccessKey": {
                        "UserName": key.username,
                        "AccessKeyId": key.access_key_id,
                        "SecretAccessKey": key.secret,
                        "Status": key.status,
                    }
                },
                indent=2,
            )
        )
    else:
        print(
            f"user:              {key.username}\n"
            f"access key id:     {key.access_key_id}\n"
            f"secret access key: {key.secret}\n"
            "(the secret is shown only now)"
        )


def cmd_keys(args: argparse.Namespace) -> int:
    from ec2gw.auth.keys import UnknownUser

    settings = _settings(args)
    try:
        if args.keys_command == "create":
            key = asyncio.run(_with_keystore(settings, lambda ks: ks.create(args.user)))
            _print_key(key, args.json)
        elif args.keys_command == "list":
            keys = asyncio.run(_with_keystore(settings, lambda ks: ks.list(args.user)))
            for key in keys:
                print(
                    f"{key.access_key_id}  {key.username}  {key.status}  "
                    f"created {_utc(key.created)}"
                )
        else:
            deleted = asyncio.run(_with_keystore(settings, lambda ks: ks.delete(args.key)))
            if not deleted:
                print(f"ec2gw: no such access key: {args.key}", file=sys.stderr)
                return 1
            print(f"deleted {args.key}")
    except UnknownUser as err:
        hint = (
            f" (create it with `ec2gw users create {err}`)" if args.keys_command == "create" else ""
        )
        print(f"ec2gw: no such OpenNebula user: {err}{hint}", file=sys.stderr)
        return 1
    return 0


class UserExists(Exception):
    """`ec2gw users create` of a name OpenNebula already has."""


class UnknownGroup(LookupError):
    """`ec2gw users create --group` of a group OpenNebula does not have."""


async def _group_id(one, session: str, group: str) -> int:
    """A group name or numeric id → its id."""
    from ec2gw.one import documents

    pool = await one.call_document(session, "one.grouppool.info")
    for element in pool.iterfind("GROUP"):
        if group in (documents.text(element, "NAME"), documents.text(element, "ID")):
            return documents.integer(element, "ID")
    raise UnknownGroup(group)


async def create_user(one, sessions, keystore, name: str, group: str):
    """Make the OpenNebula user `name` in `group` and mint its first access key.

    The user gets the core driver and a random password nobody is told: it authenticates to
    ec2gw by its EC2 keys (the gateway acts for it through the server account).
    """
    import secrets

    from ec2gw.auth.keys import UnknownUser
    from ec2gw.one.errors import OneError

    try:
        await keystore.resolve_user(name)
    except UnknownUser:
        pass
    else:
        raise UserExists(name)
    gid = await _group_id(one, sessions.admin, group)
    password = secrets.token_urlsafe(32)
    try:
        await one.call(sessions.admin, "one.user.allocate", name, password, "core", [gid])
    except OneError as err:
        if "already taken" in err.message:  # made meanwhile by someone else
            raise UserExists(name) from None
        raise
    return await keystore.create(name)


def cmd_users(args: argparse.Namespace) -> int:
    from ec2gw.one.errors import OneError

    settings = _settings(args)
    try:
        key = asyncio.run(
            _with_opennebula(
                settings,
                lambda one, sessions, keystore: create_user(
                    one, sessions, keystore, args.user, args.group
                ),
            )
        )
    except UserExists:
        print(
            f"ec2gw: user {args.user} exists: use `ec2gw keys create {args.user}`",
            file=sys.stderr,
        )
        return 1
    except UnknownGroup:
        print(f"ec2gw: no such OpenNebula group: {args.group}", file=sys.stderr)
        return 1
    except OneError as err:
        print(
            f"ec2gw: OpenNebula refused to create user {args.user}: {err.message}", file=sys.stderr
        )
        return 1
    _print_key(key, args.json)
    return 0


def _utc(epoch: int) -> str:
    """A creation time as people read it: 2025-01-31T12:00:00Z."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


OK, WARNING, PROBLEM = "ok", "WARNING", "PROBLEM"
CheckLine = tuple[str, str]  # (OK / WARNING / PROBLEM, what)


def _line(ok: bool, text: str) -> CheckLine:
    return (OK if ok else PROBLEM, text)


def allows_all_inbound(group: Element) -> bool:
    """Whether the security group lets every protocol in from any address (OpenNebula's
    group 0 `default` does, as it comes: `RULE=[RULE_TYPE=INBOUND,PROTOCOL=ALL]`)."""
    from ec2gw.actions.security_groups import ec2_rules, rules_of

    rules = [
        {k: v.upper() if k in ("RULE_TYPE", "PROTOCOL") else v for k, v in rule.items()}
        for rule in rules_of(group)
    ]
    return any(
        not r["IsEgress"] and r["IpProtocol"] == "-1" and r["CidrIpv4"] == "0.0.0.0/0"
        for r in ec2_rules(0, "", rules)
    )


def _group_ids(value: str) -> list[int]:
    return [int(g) for g in value.split(",") if g.strip().isdigit()]


def subnet_networks(vnets: Element, public_network: str) -> list[Element]:
    """The networks of a vnet pool the gateway offers as subnets: all but the public
    network of Elastic IPs and its reservations."""
    from ec2gw.actions.vpc import is_public, network_named

    public_id = network_named(vnets, public_network)
    return [v for v in vnets.iterfind("VNET") if not is_public(v, public_id)]


def open_networks(vnets: Element, groups: Element, public_network: str) -> list[str]:
    """Warnings for the subnets whose NICs are open to all inbound traffic.

    oned adds a network's SECURITY_GROUPS (which `one.vn.allocate` makes include 0) and its
    address ranges' SECURITY_GROUPS to every NIC on it: an instance there is in those
    groups too, whatever groups it is launched with.
    """
    from ec2gw.ec2 import ids
    from ec2gw.one import documents

    open_groups = {
        documents.integer(g, "ID"): documents.text(g, "NAME")
        for g in groups.iterfind("SECURITY_GROUP")
        if allows_all_inbound(g)
    }
    warnings = []
    for vnet in subnet_networks(vnets, public_network):
        vnet_id = documents.integer(vnet, "ID")
        network = f"network {documents.text(vnet, 'NAME')!r} ({ids.SUBNET.encode(vnet_id)})"
        # (what sets the groups, its SECURITY_GROUPS, how to set them to `rest`)
        places = [
            (
                network,
                documents.text(vnet, "TEMPLATE/SECURITY_GROUPS"),
                f"one.vn.update({vnet_id}, 'SECURITY_GROUPS=\"{{rest}}\"', 1), i.e. "
                f'onevnet update {vnet_id} FILE --append with SECURITY_GROUPS="{{rest}}" in FILE',
            )
        ]
        for ar in vnet.iterfind("AR_POOL/AR"):
            ar_id = documents.text(ar, "AR_ID")
            places.append(
                (
                    f"address range {ar_id} of {network}",
                    documents.text(ar, "SECURITY_GROUPS"),
                    f"one.vn.update_ar({vnet_id}, "
                    f"'AR=[AR_ID={ar_id}, SECURITY_GROUPS=\"{{rest}}\"]'), "
                    f"i.e. onevnet updatear {vnet_id} {ar_id}",
                )
            )
        for place, value, fix in places:
            present = _group_ids(value)
            for group in (g for g in present if g in open_groups):
                rest = ",".join(str(g) for g in present if g != group)
                warnings.append(
                    f"{place} puts every instance launched on it in security group {group} "
                    f"{open_groups[group]!r}, which allows all inbound traffic, whatever "
                    f"groups it is launched with. Fix: take {group} out of its "
                    f"SECURITY_GROUPS: {fix.format(rest=rest)} (instances launched before "
                    "keep the group)"
                )
    return warnings


CHECK_IMAGES_LISTED = 20


def _images_line(images: Element) -> CheckLine:
    """The AMIs the cloud offers: its own (owner oneadmin, EC2's `amazon`) by name, the
    first CHECK_IMAGES_LISTED of them; the users' own AMIs only counted (a busy cloud has
    many, and they are not the operator's catalogue)."""
    from ec2gw.actions.images import CLOUD_OWNER_UID, is_ami
    from ec2gw.one import documents

    amis = [i for i in images.iterfind("IMAGE") if is_ami(i)]
    names = sorted(
        documents.text(i, "NAME") for i in amis if documents.integer(i, "UID") == CLOUD_OWNER_UID
    )
    listed = ", ".join(names[:CHECK_IMAGES_LISTED]) or "none"
    if len(names) > CHECK_IMAGES_LISTED:
        listed += f" and {len(names) - CHECK_IMAGES_LISTED} more"
    return _line(
        bool(amis),
        f"OS images (AMIs) of the cloud (owner amazon): {len(names)}: {listed}; "
        f"users' own AMIs: {len(amis) - len(names)}",
    )


async def _check(settings: Settings) -> list[CheckLine]:
    """What `ec2gw check` reports."""
    from ec2gw.actions.regions import slug
    from ec2gw.one import documents
    from ec2gw.one.client import OneClient
    from ec2gw.one.errors import OneError
    from ec2gw.one.sessions import ServerCipherSessions
    from ec2gw.protocol.errors import EC2Error

    one_settings = settings.opennebula
    lines: list[CheckLine] = []
    if not one_settings.server_secret:
        return [
            _line(
                False,
                "[opennebula] server_secret is empty: set it or EC2GW_OPENNEBULA_SERVER_SECRET",
            )
        ]
    one = OneClient(one_settings.endpoint, timeout=min(one_settings.timeout, 10))
    session = ServerCipherSessions(one_settings.server_user, one_settings.server_secret).admin
    try:
        try:
            version = await one.call(session, "one.system.version")
        except EC2Error:
            return [_line(False, f"OpenNebula is not reachable at {one_settings.endpoint}")]
        except OneError as err:
            return [
                _line(
                    False,
                    f"OpenNebula at {one_settings.endpoint} refused the server "
                    f"account {one_settings.server_user!r}: {err.message}",
                )
            ]
        lines.append(_line(True, f"OpenNebula {version} reachable at {one_settings.endpoint}"))
        me = await one.call_document(session, "one.user.info", -1)
        driver = documents.text(me, "AUTH_DRIVER")
        groups = {g.text for g in me.iterfind("GROUPS/ID")}
        lines.append(
            _line(
                driver.startswith("server"),
                f"server account {one_settings.server_user!r}: auth driver {driver}"
                + ("" if driver.startswith("server") else " (must be server_cipher)"),
            )
        )
        lines.append(_line("0" in groups, f"server account in the oneadmin group: {'0' in groups}"))
        zone = await one.call_document(session, "one.zone.info", settings.gateway.zone_id)
        region = settings.gateway.region_name or slug(documents.text(zone, "NAME"))
        lines.append(
            _line(
                True,
                f"region: {region} (zone {settings.gateway.zone_id} "
                f"{documents.text(zone, 'NAME')!r})",
            )
        )
        clusters = await one.call_document(session, "one.clusterpool.info")
        names = [documents.text(c, "NAME") for c in clusters.iterfind("CLUSTER")]
        lines.append(
            _line(bool(names), f"clusters (availability zones): {', '.join(names) or 'none'}")
        )
        images = await one.call_document(session, "one.imagepool.info", -2, -1, -1)
        lines.append(_images_line(images))
        vnets = await one.call_document(session, "one.vnpool.info", -2, -1, -1)
        public = settings.gateway.public_network
        nets = [documents.text(v, "NAME") for v in subnet_networks(vnets, public)]
        lines.append(_line(bool(nets), f"networks (subnets): {', '.join(nets) or 'none'}"))
        secgroups = await one.call_document(session, "one.secgrouppool.info", -2, -1, -1)
        lines += [(WARNING, w) for w in open_networks(vnets, secgroups, public)]
        templates = await one.call_document(session, "one.templatepool.info", -2, -1, -1)
        types = sorted(
            {
                documents.text(t, "TEMPLATE/EC2_INSTANCE_TYPE")
                for t in templates.iterfind("VMTEMPLATE")
            }
            - {""}
        )
        lines.append(_line(bool(types), f"instance types: {', '.join(types) or 'none'}"))
    finally:
        await one.close()
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print("configuration: ok")
    if settings.embedded_mode:
        data_dir = _data_dir(settings)
        print(f"no [opennebula] endpoint: `ec2gw serve` runs the embedded OpenNebula in {data_dir}")
        from ec2gw import embedded

        attached = embedded.attach(settings, data_dir)
        try:
            lines = asyncio.run(_check(settings))
        finally:
            attached.stop()
    else:
        lines = asyncio.run(_check(settings))
    for status, line in lines:
        print(f"{status:<8}{line}")
    return 1 if any(status == PROBLEM for status, _ in lines) else 0


def cmd_setup(args: argparse.Namespace) -> int:
    from ec2gw import setup
    from ec2gw.protocol.errors import EC2Error

    settings = _settings(args)
    if settings.embedded_mode:
        print(
            "ec2gw: setup needs an OpenNebula: set [opennebula] endpoint (the embedded "
            "OpenNebula of `ec2gw serve` is set up by itself)",
            file=sys.stderr,
        )
        return 2
    try:
        auth_file = setup.oneadmin_auth_file(args.oneadmin_auth_file)
        report = asyncio.run(setup.setup(settings, setup.read_auth(auth_file)))
    except setup.SetupError as err:
        print(f"ec2gw: {err}", file=sys.stderr)
        return 1
    except EC2Error:
        print(
            f"ec2gw: OpenNebula is not reachable at {settings.opennebula.endpoint}",
            file=sys.stderr,
        )
        return 1
    print(f"OpenNebula at {settings.opennebula.endpoint}, as {auth_file}'s user:")
    for status, line in report.lines:
        print(f"{status:<8}{line}")
    if report.new_secret:
        user, secret = report.new_secret
        print(
            f"\nThe new secret of {user!r}, shown only now: put these lines in the "
            "configuration's [opennebula] table (or the value in "
            "EC2GW_OPENNEBULA_SERVER_SECRET, e.g. in /etc/ec2gw/ec2gw.env of "
            "config/ec2gw.service), then run `ec2gw check`:\n\n"
            f'server_user = "{user}"\nserver_secret = "{secret}"\n'
        )
    return 1 if report.failed else 0


def actions_table() -> str:
    from ec2gw.actions.registry import all_actions

    rows = [
        f"| `{spec.name}` | {spec.opennebula} | {spec.oned or 'reads only'} |"
        for spec in all_actions()
    ]
    header = ["| EC2 action | OpenNebula | relies on in oned |", "| --- | --- | --- |"]
    return "\n".join([*header, *rows])


def _generated_blocks() -> dict[str, str]:
    from ec2gw.one.states import readme_table

    return {"actions": actions_table(), "states": readme_table()}


def readme_with_table(readme: str) -> str:
    """The README with its generated blocks (`<!-- NAME:start -->`) rewritten."""
    for name, table in _generated_blocks().items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in readme:
            continue
        head, rest = readme.split(start, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{start}\n{table}\n{end}{tail}"
    return readme


def cmd_actions(args: argparse.Namespace) -> int:
    if args.readme:
        path = Path(args.readme)
        path.write_text(readme_with_table(path.read_text()))
    else:
        print(actions_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ec2gw",
        description=(
            "An EC2 endpoint for OpenNebula: serve, sim, keys, users, setup, check, actions."
        ),
        epilog="`ec2gw COMMAND --help` tells more about each command.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{serve,sim,keys,users,setup,check,actions}"
    )

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            metavar="FILE",
            help="TOML configuration file (see config/ec2gw.toml; default $EC2GW_CONFIG)",
        )
        p.add_argument(
            "--data-dir",
            metavar="DIR",
            help="data directory of the embedded OpenNebula (default ./ec2gw-data)",
        )

    serve = sub.add_parser(
        "serve", help="run the gateway (on the embedded OpenNebula if no endpoint is configured)"
    )
    common(serve)
    serve.add_argument(
        "--host", help="address the gateway listens on (default [gateway] host, 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, help="port the gateway listens on (default [gateway] port, 8773)"
    )
    serve.add_argument("--workers", type=int, help="gateway processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    sim = sub.add_parser("sim", help="run the embedded OpenNebula alone (XML-RPC)")
    common(sim)
    sim.add_argument("--host", help="address its XML-RPC listens on (default 127.0.0.1)")
    sim.add_argument("--port", type=int, help="port of its XML-RPC (default 2633)")
    sim.set_defaults(func=cmd_sim)

    keys = sub.add_parser("keys", help="manage EC2 access keys of OpenNebula users")
    keys_sub = keys.add_subparsers(
        dest="keys_command", required=True, metavar="{create,list,delete}"
    )
    create = keys_sub.add_parser("create", help="mint an access key for USER")
    create.add_argument("user", metavar="USER", help="OpenNebula user name")
    create.add_argument(
        "--json", action="store_true", help="print it as `aws iam create-access-key` does"
    )
    common(create)
    listing = keys_sub.add_parser("list", help="list access keys (of USER)")
    listing.add_argument("user", metavar="USER", nargs="?", help="only this user's keys")
    common(listing)
    delete = keys_sub.add_parser("delete", help="revoke an access key")
    delete.add_argument("key", metavar="ACCESS_KEY_ID", help="the access key id to revoke")
    common(delete)
    keys.set_defaults(func=cmd_keys)

    users = sub.add_parser("users", help="manage OpenNebula users of the gateway")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="{create}")
    user_create = users_sub.add_parser(
        "create", help="make OpenNebula user NAME and its first access key"
    )
    user_create.add_argument("user", metavar="NAME", help="the new OpenNebula user's name")
    user_create.add_argument(
        "--group",
        default="users",
        metavar="G",
        help="its OpenNebula group, by name or id (default users)",
    )
    user_create.add_argument(
        "--json", action="store_true", help="print the key as `aws iam create-access-key` does"
    )
    common(user_create)
    users.set_defaults(func=cmd_users)

    setup = sub.add_parser(
        "setup",
        help="create or check, as oneadmin, the server account, instance types and public "
        "network the configuration names",
        description=(
            "Create what the configuration needs on OpenNebula, as oneadmin, or check that it "
            "is there: the server_cipher account [opennebula] server_user (in group "
            "oneadmin; a new secret is printed once), the instance types of [instance_types] "
            "(VM templates with EC2_INSTANCE_TYPE, usable by every user), and the public "
            "network [gateway] public_network (checked only). Existing items are never "
            "changed: each line says created, ok, or DIFFERS. Exit status 1 if anything "
            "differs or is missing, 0 otherwise; `ec2gw check` then passes."
        ),
    )
    common(setup)
    setup.add_argument(
        "--oneadmin-auth-file",
        metavar="FILE",
        help="oneadmin's `user:password` file (default $ONE_AUTH, else ~/.one/one_auth, "
        "as the OpenNebula CLI)",
    )
    setup.set_defaults(func=cmd_setup)

    check = sub.add_parser("check", help="validate the configuration and what OpenNebula offers")
    common(check)
    check.set_defaults(func=cmd_check)

    actions = sub.add_parser("actions", help="print the supported actions as a Markdown table")
    actions.add_argument(
        "--readme",
        metavar="FILE",
        help="rewrite the generated tables inside this Markdown file instead "
        "(README.md, docs/mapping.md)",
    )
    actions.set_defaults(func=cmd_actions)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging(json_lines=False)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"ec2gw: configuration error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`ec2gw actions | head`): not an error worth a traceback.
        # Python flushes stdout again at exit; point it at /dev/null so that it cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE (128 + 13)
    except PortInUse as err:
        print(f"ec2gw: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        embedded = sys.modules.get("ec2gw.embedded")  # imported by the commands that use it
        if embedded is None or not isinstance(err, embedded.DataDirBusy):
            raise
        print(f"ec2gw: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
