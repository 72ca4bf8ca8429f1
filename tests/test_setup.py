"""`ec2gw setup` (issue 18 item 12): the server account, the instance types and the public
network, created or checked as oneadmin; a second run changes nothing; `ec2gw check` then
passes. On the embedded OpenNebula, or on the real oned of EC2GW_TEST_OPENNEBULA (names
unique to the run, removed afterwards)."""

from __future__ import annotations

import os
import re
import secrets
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ec2gw import cli, setup
from ec2gw.one import documents
from ec2gw.onesim import EmbeddedOpenNebula
from tests.backend import ONEADMIN_VARIABLE, real_oned_endpoint


@dataclass
class Cloud:
    endpoint: str
    auth_file: Path
    run: str
    real: bool

    def one(self, method: str, *args: object) -> object:
        session = self.auth_file.read_text().strip()
        reply = getattr(xmlrpc.client.ServerProxy(self.endpoint), method)(session, *args)
        assert reply[0] is True, reply
        return reply[1]

    def pool(self, method: str, *args: object) -> documents.Element:
        return documents.parse(self.one(method, *args))


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    for name in [n for n in os.environ if n.startswith(("EC2GW_", "ONE_AUTH"))]:
        if not name.startswith("EC2GW_TEST_"):
            monkeypatch.delenv(name)
    endpoint = real_oned_endpoint()
    if endpoint is None:
        with EmbeddedOpenNebula(tmp_path / "one") as sim:
            yield Cloud(sim.url, sim.oneadmin_auth_file, secrets.token_hex(3), False)
        return
    auth_file = tmp_path / "one_auth"
    auth_file.write_text(os.environ[ONEADMIN_VARIABLE] + "\n")
    cloud = Cloud(endpoint, auth_file, secrets.token_hex(3), True)
    try:
        yield cloud
    finally:
        _remove_run(cloud)


def _remove_run(cloud: Cloud) -> None:
    """What this run made on a shared oned: only names carrying its run id."""
    for user in cloud.pool("one.userpool.info").iterfind("USER"):
        if cloud.run in documents.text(user, "NAME"):
            cloud.one("one.user.delete", documents.integer(user, "ID"))
    for template in cloud.pool("one.templatepool.info", -2, -1, -1).iterfind("VMTEMPLATE"):
        if cloud.run in documents.text(template, "NAME"):
            cloud.one("one.template.delete", documents.integer(template, "ID"), False)
    for vnet in cloud.pool("one.vnpool.info", -2, -1, -1).iterfind("VNET"):
        if cloud.run in documents.text(vnet, "NAME"):
            cloud.one("one.vn.delete", documents.integer(vnet, "ID"))


def _config(cloud: Cloud, path: Path, secret: str = "", extra: str = "") -> Path:
    path.write_text(
        f'[gateway]\npublic_network = "public-{cloud.run}"\n'
        f'[opennebula]\nendpoint = "{cloud.endpoint}"\nserver_user = "ec2gw-{cloud.run}"\n'
        f'server_secret = "{secret}"\n'
        f'[instance_types."small-{cloud.run}"]\nvcpu = 1\nmemory = 256\ncpu = 0.5\n'
        f'[instance_types."large-{cloud.run}"]\nvcpu = 4\nmemory = 8192\n' + extra
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def _lines(output: str, status: str) -> list[str]:
    return [line[8:] for line in output.splitlines() if line.startswith(f"{status:<8}")]


def _state(cloud: Cloud) -> tuple[list[str], list[str]]:
    """Every user and template (id, name, driver or attributes): what setup could change."""
    users = [
        documents.text(u, "ID") + documents.text(u, "NAME") + documents.text(u, "AUTH_DRIVER")
        for u in cloud.pool("one.userpool.info").iterfind("USER")
    ]
    templates = [
        documents.text(t, "ID") + documents.text(t, "NAME") + documents.text(t, "TEMPLATE/MEMORY")
        for t in cloud.pool("one.templatepool.info", -2, -1, -1).iterfind("VMTEMPLATE")
    ]
    return users, templates


def _operator_network(cloud: Cloud, name: str, address: str, shared: bool = True) -> int:
    """A network as an operator makes it: `one.vn.allocate` adds security group 0."""
    vnet_id = cloud.one(
        "one.vn.allocate",
        f'NAME="{name}"\nVN_MAD="dummy"\nBRIDGE="br9"\nAR=[TYPE="IP4",IP="{address}",SIZE="8"]',
        -1,
    )
    if shared:
        cloud.one("one.vn.chmod", vnet_id, 1, 1, 0, 1, 0, 0, 1, 0, 0)
    return vnet_id


def test_setup_creates_then_finds_everything_and_check_passes(cloud, tmp_path, capsys):
    config = _config(cloud, tmp_path / "ec2gw.toml")
    auth = ("--oneadmin-auth-file", str(cloud.auth_file))
    public_id = _operator_network(cloud, f"public-{cloud.run}", "198.51.100.50")

    status, out = _run(capsys, "setup", "--config", str(config), *auth)
    assert status == 0, out
    created = _lines(out, "created")
    assert len(created) == 3, out
    assert f"server account 'ec2gw-{cloud.run}'" in created[0]
    assert f"instance type small-{cloud.run}" in created[1] and "1 vCPU, 256 MB" in created[1]
    assert f"instance type large-{cloud.run}" in created[2] and "CPU 4" in created[2]
    assert f"server account 'ec2gw-{cloud.run}': the configured secret works" in _lines(out, "ok")
    assert f"public network 'public-{cloud.run}' (id {public_id}) exists" in out
    # The operator's public network still carries group 0: warned about, left alone.
    (warning,) = _lines(out, "WARNING")
    assert "security group 0 'default'" in warning and "allows all inbound" in warning
    # The new secret, printed once, ready to paste.
    (secret,) = re.findall(r'^server_secret = "([0-9a-f]{64})"$', out, re.M)
    assert out.count(secret) == 1

    users = {documents.text(u, "NAME"): u for u in cloud.pool("one.userpool.info")}
    account = users[f"ec2gw-{cloud.run}"]
    assert documents.text(account, "AUTH_DRIVER") == "server_cipher"
    assert documents.text(account, "GID") == "0"
    types = {
        documents.text(t, "TEMPLATE/EC2_INSTANCE_TYPE"): t
        for t in cloud.pool("one.templatepool.info", -2, -1, -1).iterfind("VMTEMPLATE")
    }
    small = types[f"small-{cloud.run}"]
    assert documents.text(small, "TEMPLATE/VCPU") == "1"
    assert documents.text(small, "TEMPLATE/MEMORY") == "256"
    assert documents.text(small, "PERMISSIONS/OTHER_U") == "1"
    assert documents.text(types[f"large-{cloud.run}"], "TEMPLATE/CPU") == "4"  # cpu = vcpu

    # Second run, with the secret in the configuration: everything is there, nothing changes.
    before = _state(cloud)
    config = _config(cloud, tmp_path / "ec2gw.toml", secret)
    status, again = _run(capsys, "setup", "--config", str(config), *auth)
    assert status == 0, again
    assert _lines(again, "created") == [] and secret not in again
    assert len(_lines(again, "ok")) == 5, again  # account, its secret, 2 types, network
    assert _state(cloud) == before

    # The gateway's own check, through the new account.
    if not cloud.real:  # a bare embedded OpenNebula: the operator's image and subnet
        image = cloud.one(
            "one.image.allocate", 'NAME="os"\nPATH="/var/tmp/os.qcow2"\nTYPE="OS"\nSIZE="64"', 1
        )
        cloud.one("one.image.chmod", image, 1, 1, 0, 1, 0, 0, 1, 0, 0)
        private = _operator_network(cloud, "private", "10.0.0.10")
        cloud.one("one.vn.update", private, 'SECURITY_GROUPS=""', 1)
    status, checked = _run(capsys, "check", "--config", str(config))
    assert f"ok      server account 'ec2gw-{cloud.run}': auth driver server_cipher" in checked
    assert "ok      server account in the oneadmin group: True" in checked
    assert f"small-{cloud.run}" in checked and f"large-{cloud.run}" in checked
    if not cloud.real:  # a shared oned may hold other runs' networks with warnings
        assert status == 0, checked


def test_setup_reports_what_differs_and_changes_nothing(cloud, tmp_path, capsys):
    auth = ("--oneadmin-auth-file", str(cloud.auth_file))
    # An account of the wrong kind, a type of another size, and no public network.
    cloud.one("one.user.allocate", f"ec2gw-{cloud.run}", "pw-Secret-1", "core", [1])
    tid = cloud.one(
        "one.template.allocate",
        f'NAME="small-{cloud.run}"\nEC2_INSTANCE_TYPE="small-{cloud.run}"\n'
        'VCPU="2"\nMEMORY="256"\nCPU="0.5"',
    )
    before = _state(cloud)
    config = _config(cloud, tmp_path / "ec2gw.toml", "a-secret")
    status, out = _run(capsys, "setup", "--config", str(config), *auth)
    assert status == 1, out
    differs = _lines(out, "DIFFERS")
    assert "auth driver core, not server_cipher" in differs[0]
    assert "not in the oneadmin group" in differs[0]
    assert f"instance type small-{cloud.run} (template {tid}): vcpu 2 (configured 1)" in differs[1]
    assert "not usable by every user" in differs[1]
    (problem,) = _lines(out, "PROBLEM")
    assert f"public network 'public-{cloud.run}'" in problem and "does not exist" in problem
    assert "a-secret" not in out
    after = _state(cloud)
    assert after[0] == before[0]  # the account is left as it is
    assert [t for t in after[1] if t not in before[1]] == [  # only the missing type is made
        t for t in after[1] if f"large-{cloud.run}" in t
    ]


def test_a_wrong_secret_and_an_empty_one_are_problems(cloud, tmp_path, capsys):
    auth = ("--oneadmin-auth-file", str(cloud.auth_file))
    config = _config(cloud, tmp_path / "ec2gw.toml")
    _operator_network(cloud, f"public-{cloud.run}", "198.51.100.60")
    assert _run(capsys, "setup", "--config", str(config), *auth)[0] == 0
    status, out = _run(capsys, "setup", "--config", str(config), *auth)  # secret not set
    assert status == 1 and "[opennebula] server_secret is empty" in out
    config = _config(cloud, tmp_path / "ec2gw.toml", "not-the-secret")
    status, out = _run(capsys, "setup", "--config", str(config), *auth)
    assert status == 1 and "the configured secret is refused" in out
    assert "not-the-secret" not in out


def test_oneadmin_credentials_come_as_the_cli_finds_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert setup.oneadmin_auth_file(None, {}) == tmp_path / ".one" / "one_auth"
    assert setup.oneadmin_auth_file(None, {"ONE_AUTH": "/x/auth"}) == Path("/x/auth")
    assert setup.oneadmin_auth_file("/y", {"ONE_AUTH": "/x/auth"}) == Path("/y")
    with pytest.raises(setup.SetupError, match="cannot read"):
        setup.read_auth(tmp_path / "missing")
    (tmp_path / "bad").write_text("no colon\n")
    with pytest.raises(setup.SetupError, match="user:password"):
        setup.read_auth(tmp_path / "bad")
    (tmp_path / "good").write_text("oneadmin:pw\n")
    assert setup.read_auth(tmp_path / "good") == "oneadmin:pw"


def test_setup_needs_an_endpoint_and_good_credentials(cloud, tmp_path, capsys):
    status, out = _run(capsys, "setup", "--config", str(_empty(tmp_path)))
    assert status == 2 and "setup needs an OpenNebula" in out
    wrong = tmp_path / "wrong_auth"
    wrong.write_text("oneadmin:not-the-password\n")
    config = _config(cloud, tmp_path / "ec2gw.toml")
    status, out = _run(capsys, "setup", "--config", str(config), "--oneadmin-auth-file", str(wrong))
    assert status == 1 and "refused the oneadmin credentials" in out
    assert _lines(out, "created") == []


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path
