"""Secrets from files (issue 18 item 12): EC2GW_<SECTION>_<OPTION>_FILE names a file whose
content, without its trailing newline, is the option (systemd's EnvironmentFile or
credentials, Docker and Kubernetes secrets); `[instance_types]` tables; the systemd unit."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from ec2gw.config import (
    DEFAULT_INSTANCE_TYPES,
    ConfigError,
    InstanceType,
    environment,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "config" / "ec2gw.service"


def test_secrets_are_read_from_the_files_named(tmp_path):
    (tmp_path / "server").write_text("s3cret\n")
    (tmp_path / "kek").write_text("k:e:k \r\n")  # a CRLF file, a trailing space kept
    settings = load_settings(
        env={
            "EC2GW_OPENNEBULA_SERVER_SECRET_FILE": str(tmp_path / "server"),
            "EC2GW_AUTH_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "kek"),
        }
    )
    assert settings.opennebula.server_secret == "s3cret"
    assert settings.auth.key_encryption_key == "k:e:k "


def test_a_file_without_newline_and_one_of_several_lines(tmp_path):
    (tmp_path / "plain").write_text("abc")
    (tmp_path / "lines").write_text("abc\ndef\n\n")
    for name, value in (("plain", "abc"), ("lines", "abc\ndef")):
        env = {"EC2GW_OPENNEBULA_SERVER_SECRET_FILE": str(tmp_path / name)}
        assert load_settings(env=env).opennebula.server_secret == value


def test_the_file_wins_over_the_toml_file_and_the_plain_variable_over_both(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[opennebula]\nserver_secret = "from-toml"\n')
    (tmp_path / "secret").write_text("from-file\n")
    env = {"EC2GW_OPENNEBULA_SERVER_SECRET_FILE": str(tmp_path / "secret")}
    assert load_settings(config, env=env).opennebula.server_secret == "from-file"
    env["EC2GW_OPENNEBULA_SERVER_SECRET"] = "from-variable"
    assert load_settings(config, env=env).opennebula.server_secret == "from-variable"


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(
        ConfigError, match=f"EC2GW_AUTH_KEY_ENCRYPTION_KEY_FILE: no such file: {missing}"
    ):
        load_settings(env={"EC2GW_AUTH_KEY_ENCRYPTION_KEY_FILE": str(missing)})
    with pytest.raises(ConfigError, match="EC2GW_OPENNEBULA_SERVER_SECRET_FILE: cannot read"):
        load_settings(env={"EC2GW_OPENNEBULA_SERVER_SECRET_FILE": str(tmp_path)})  # a directory


def test_only_secret_options_have_a_file_variable(tmp_path):
    (tmp_path / "endpoint").write_text("http://x:2633/RPC2\n")
    settings = load_settings(env={"EC2GW_OPENNEBULA_ENDPOINT_FILE": str(tmp_path / "endpoint")})
    assert settings.opennebula.endpoint == ""


def test_workers_rebuild_the_settings_of_a_file_secret(tmp_path):
    # `serve --workers N` exports EC2GW_* to its workers, which still inherit the _FILE
    # variable: the plain one it exports wins, so both agree.
    (tmp_path / "secret").write_text("from-file\n")
    env = {"EC2GW_OPENNEBULA_SERVER_SECRET_FILE": str(tmp_path / "secret")}
    settings = load_settings(env=env)
    assert load_settings(env={**env, **environment(settings)}) == settings


def test_instance_types_tables(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[instance_types."x1.small"]\nvcpu = 1\nmemory = 512\ncpu = 0.5\n'
        '[instance_types."x1.big"]\nvcpu = 8\nmemory = 32768\n'
    )
    assert load_settings(config, env={}).instance_types == {
        "x1.small": InstanceType(1, 512, 0.5),
        "x1.big": InstanceType(8, 32768, 8.0),  # cpu defaults to vcpu
    }
    assert load_settings(None, env={}).instance_types == DEFAULT_INSTANCE_TYPES


@pytest.mark.parametrize(
    "text",
    [
        "instance_types = 3\n",
        "[instance_types]\nsmall = 3\n",
        '[instance_types."a"]\nvcpu = 1\n',
        '[instance_types."a"]\nvcpu = 1\nmemory = 1\nram = 2\n',
        '[instance_types."a"]\nvcpu = 0\nmemory = 1\n',
        '[instance_types."a"]\nvcpu = "x"\nmemory = 1\n',
    ],
)
def test_instance_type_mistakes_are_reported(tmp_path, text):
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match="instance_types"):
        load_settings(config, env={})


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_has_what_it_needs():
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["serve", "--config", "/etc/ec2gw/ec2gw.toml"]
    assert service["ExecStart"].split()[0].endswith("/ec2gw")  # systemd wants a path
    assert service["User"]
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/ec2gw/ec2gw.env"
    assert service["NoNewPrivileges"] == "yes"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]


def _verify(text: str, tmp_path: Path) -> list[str]:
    """systemd-analyze verify's complaints about a unit (ExecStart pointed at a stand-in
    binary: verify wants it to exist)."""
    binary = tmp_path / "ec2gw"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    copy = tmp_path / "ec2gw.service"
    copy.write_text(text.replace(_unit()["Service"]["ExecStart"].split()[0], str(binary)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if str(copy) in line]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    assert _verify(UNIT.read_text(), tmp_path) == []
    # ... and would tell a mistake (systemd ignores unknown keys and bad values with a line).
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=bogus\nProtectSytem=yes")
    assert len(_verify(broken, tmp_path)) == 2
