"""Configuration: one TOML file (`config/ec2gw.toml` documents every option) plus
`EC2GW_<SECTION>_<OPTION>` environment variables, which win over the file.

Secret options can also come from a file named by `EC2GW_<SECTION>_<OPTION>_FILE` (systemd
credentials, Docker/Kubernetes secrets): the file's content without its trailing newline.
Precedence, lowest first: the TOML file, the `_FILE` variable, the plain variable."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8773
    workers: int = 1
    max_body_bytes: int = 1_048_576
    clock_skew_seconds: int = 900
    zone_id: int = 0
    region_name: str = ""
    # True: a SigV4 scope naming another region (an AWS region, another zone) is accepted
    # too, for clients that cannot choose the region they sign for.
    accept_any_signing_region: bool = False
    terminated_visible_seconds: int = 3600
    # Bounds the wait of every instance-state action (Terminate, Stop, Start, Reboot, a
    # launch's rollback) for a VM in a transient state oned refuses the action in.
    terminate_wait_seconds: float = 5.0
    rate_limit: float = 50.0
    rate_burst: float = 100.0
    log_json: bool = False
    public_network: str = ""


@dataclass
class OpenNebulaSettings:
    endpoint: str = ""
    server_user: str = "serveradmin"
    server_secret: str = ""
    timeout: float = 30.0
    max_connections: int = 10


@dataclass
class AuthSettings:
    key_encryption_key: str = ""
    key_cache_seconds: float = 5.0


@dataclass
class EmbeddedSettings:
    data_dir: str = "./ec2gw-data"
    schedule_delay: float = 1.0
    prolog_delay: float = 1.0
    boot_delay: float = 1.0
    shutdown_delay: float = 1.0
    epilog_delay: float = 1.0


@dataclass(frozen=True)
class InstanceType:
    """An instance type `ec2gw setup` makes: a VM template with EC2_INSTANCE_TYPE = name."""

    vcpu: int
    memory: int  # MB
    cpu: float  # OpenNebula's CPU share


# `[instance_types]` when the configuration has none (config/ec2gw.toml shows them).
DEFAULT_INSTANCE_TYPES = {
    "t3.nano": InstanceType(1, 512, 0.25),
    "t3.micro": InstanceType(1, 1024, 0.5),
    "t3.small": InstanceType(2, 2048, 1.0),
    "t3.medium": InstanceType(2, 4096, 1.0),
    "m5.large": InstanceType(2, 8192, 2.0),
    "m5.xlarge": InstanceType(4, 16384, 4.0),
}

# Options that may be read from a file named by EC2GW_<SECTION>_<OPTION>_FILE.
SECRET_OPTIONS = (("opennebula", "server_secret"), ("auth", "key_encryption_key"))


@dataclass
class Settings:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    opennebula: OpenNebulaSettings = field(default_factory=OpenNebulaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    embedded: EmbeddedSettings = field(default_factory=EmbeddedSettings)
    # Not an option section: `[instance_types.NAME]` tables, read by `ec2gw setup` only
    # (no environment variables).
    instance_types: dict[str, InstanceType] = field(
        default_factory=lambda: dict(DEFAULT_INSTANCE_TYPES)
    )

    @property
    def embedded_mode(self) -> bool:
        """No OpenNebula endpoint configured: run the embedded one."""
        return not self.opennebula.endpoint


class ConfigError(ValueError):
    pass


def _coerce(kind: type, value: Any, where: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}") from None


def _option_sections() -> list:
    """The fields of `Settings` that are option sections (`[gateway]`, ...)."""
    return [f for f in fields(Settings) if f.name != "instance_types"]


def _instance_types(given: Any) -> dict[str, InstanceType]:
    """`[instance_types."t3.micro"]` tables (vcpu, memory in MB, cpu) → InstanceType."""
    if not isinstance(given, dict):
        raise ConfigError("[instance_types] must be a table of tables")
    types = {}
    for name, spec in given.items():
        where = f"[instance_types.{name!r}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be a table (vcpu, memory, cpu)")
        unknown = set(spec) - {"vcpu", "memory", "cpu"}
        if unknown:
            raise ConfigError(f"unknown option {where} {', '.join(sorted(unknown))}")
        missing = {"vcpu", "memory"} - set(spec)
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
        vcpu = _coerce(int, spec["vcpu"], f"{where} vcpu")
        memory = _coerce(int, spec["memory"], f"{where} memory")
        cpu = _coerce(float, spec.get("cpu", vcpu), f"{where} cpu")
        if vcpu < 1 or memory < 1 or cpu <= 0:
            raise ConfigError(f"{where}: vcpu, memory and cpu must be positive")
        types[str(name)] = InstanceType(vcpu, memory, cpu)
    return types


def _secret_file(env: Any, variable: str) -> str:
    """The content of the file `variable` names, without its trailing newline."""
    path = env[variable]
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{variable}: no such file: {path}") from None
    except OSError as err:
        raise ConfigError(f"{variable}: cannot read {path}: {err.strerror}") from None
    return text.rstrip("\r\n")


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), then apply `EC2GW_*` environment overrides: for a
    secret option, `EC2GW_<SECTION>_<OPTION>_FILE` (a file holding it), then the plain
    variable, which wins."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    settings = Settings()
    if "instance_types" in raw:
        settings.instance_types = _instance_types(raw.pop("instance_types"))
    for section in _option_sections():
        target = getattr(settings, section.name)
        given = raw.pop(section.name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"[{section.name}] must be a table")
        known = {f.name: f for f in fields(target)}
        for key, value in given.items():
            if key not in known:
                raise ConfigError(f"unknown option [{section.name}] {key}")
            kind = type(getattr(target, key))
            setattr(target, key, _coerce(kind, value, f"[{section.name}] {key}"))
        for name in known:
            env_name = f"EC2GW_{section.name}_{name}".upper()
            if (section.name, name) in SECRET_OPTIONS and f"{env_name}_FILE" in env:
                setattr(target, name, _secret_file(env, f"{env_name}_FILE"))
            if env_name in env:
                kind = type(getattr(target, name))
                setattr(target, name, _coerce(kind, env[env_name], env_name))
    if raw:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(raw))}")
    return settings


def environment(settings: Settings) -> dict[str, str]:
    """Every option as its `EC2GW_*` variable: what worker processes rebuild `settings` from."""
    variables = {}
    for section in _option_sections():
        values = getattr(settings, section.name)
        for option in fields(values):
            value = getattr(values, option.name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            variables[f"EC2GW_{section.name}_{option.name}".upper()] = text
    return variables
