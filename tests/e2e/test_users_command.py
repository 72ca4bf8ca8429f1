"""`ec2gw users create` (issue 18 item 6): an operator adds a user and its first key with
one command, against a running `ec2gw serve`, and the key works with boto3 at once."""

from __future__ import annotations

import json
import os
import time
import xmlrpc.client
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import free_port
from tests.e2e.test_serve import _ec2gw, _serving, _wait_healthy

pytestmark = pytest.mark.embedded_only  # `ec2gw serve` starts its own embedded OpenNebula


def _ec2(port: int, key: dict):
    return boto3.client(
        "ec2",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="opennebula",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )


def _oneadmin(data_dir: Path, method: str, *args: object) -> object:
    """An XML-RPC call as oneadmin to the embedded OpenNebula a `serve` announced."""
    endpoint = (data_dir / "endpoint").read_text().strip()
    session = (data_dir / "one_auth").read_text().strip()
    reply = getattr(xmlrpc.client.ServerProxy(endpoint), method)(session, *args)
    assert reply[0], reply
    return reply[1]


def _user(data_dir: Path, name: str) -> dict[str, str]:
    """The user as OpenNebula has it (read as oneadmin through the embedded XML-RPC)."""
    import xml.etree.ElementTree as ET

    pool = _oneadmin(data_dir, "one.userpool.info")
    for user in ET.fromstring(pool).iterfind("USER"):
        if user.findtext("NAME") == name:
            return {field: user.findtext(field) for field in ("ID", "GNAME", "AUTH_DRIVER")}
    raise AssertionError(f"no user {name}")


def test_users_create_makes_a_user_whose_key_works(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["EC2GW_EMBEDDED_SCHEDULE_DELAY"] = "0"
    with _serving(port, data_dir, env) as server:
        _wait_healthy(port, time.monotonic() + 60)
        assert server.poll() is None
        cli_env = {**env, "EC2GW_EMBEDDED_DATA_DIR": str(data_dir)}

        # Before: keys create for an unknown user says how to make one.
        missing = _ec2gw("keys", "create", "bob", env=cli_env)
        assert missing.returncode == 1
        assert (
            "no such OpenNebula user: bob (create it with `ec2gw users create bob`)"
            in missing.stderr
        )

        created = _ec2gw("users", "create", "bob", "--json", env=cli_env)
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["AccessKey"]
        assert key["UserName"] == "bob" and key["Status"] == "Active"
        assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
        assert _user(data_dir, "bob")["GNAME"] == "users"
        assert _user(data_dir, "bob")["AUTH_DRIVER"] == "core"

        # The new key works at once, as bob: what it makes is bob's.
        ec2 = _ec2(port, key)
        assert ec2.describe_regions()["Regions"][0]["RegionName"] == "opennebula"
        ec2.create_key_pair(KeyName="bob-key")
        assert [p["KeyName"] for p in ec2.describe_key_pairs()["KeyPairs"]] == ["bob-key"]
        listed = _ec2gw("keys", "list", "bob", env=cli_env)
        assert key["AccessKeyId"] in listed.stdout and key["SecretAccessKey"] not in listed.stdout

        # A second time: refused, and told what to do instead; the first key still works.
        again = _ec2gw("users", "create", "bob", env=cli_env)
        assert again.returncode == 1 and again.stdout == ""
        assert "user bob exists: use `ec2gw keys create bob`" in again.stderr
        assert ec2.describe_key_pairs()["KeyPairs"]
        ec2.close()

        # The plain output is `keys create`'s; --group by id, and an unknown group refused.
        qa = _oneadmin(data_dir, "one.group.allocate", "qa")
        plain = _ec2gw("users", "create", "carol", "--group", str(qa), env=cli_env)
        assert plain.returncode == 0, plain.stderr
        lines = dict(line.split(":", 1) for line in plain.stdout.splitlines() if ":" in line)
        assert lines["user"].strip() == "carol"
        carol = {
            "AccessKeyId": lines["access key id"].strip(),
            "SecretAccessKey": lines["secret access key"].strip(),
        }
        assert "(the secret is shown only now)" in plain.stdout
        assert _user(data_dir, "carol")["GNAME"] == "qa"
        ec2 = _ec2(port, carol)
        assert ec2.describe_key_pairs()["KeyPairs"] == []  # not bob's
        ec2.close()
        nogroup = _ec2gw("users", "create", "dave", "--group", "nosuch", env=cli_env)
        assert nogroup.returncode == 1
        assert "no such OpenNebula group: nosuch" in nogroup.stderr
        assert "dave" not in _ec2gw("keys", "list", env=cli_env).stdout

    # With no `serve` running, the command starts the embedded OpenNebula itself (holding
    # the data directory meanwhile), and the user is there at the next start.
    offline = _ec2gw("users", "create", "erin", "--json", env=cli_env)
    assert offline.returncode == 0, offline.stderr
    erin = json.loads(offline.stdout)["AccessKey"]
    with _serving(port, data_dir, env):
        _wait_healthy(port, time.monotonic() + 60)
        ec2 = _ec2(port, erin)
        assert ec2.describe_key_pairs()["KeyPairs"] == []
        ec2.close()
        assert _user(data_dir, "erin")["GNAME"] == "users"
