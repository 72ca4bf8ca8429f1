"""Configuration: one TOML file (`config/ec2gw.toml` documents every option) plus
`EC2GW_<SECTION>_<OPTION>` environment variables, which win over the file."""

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


@dataclass
class Settings:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    opennebula: OpenNebulaSettings = field(default_factory=OpenNebulaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    embedded: EmbeddedSettings = field(default_factory=EmbeddedSettings)

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


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), then apply `EC2GW_*` environment overrides."""
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
    for section in fields(Settings):
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
            if env_name in env:
                kind = type(getattr(target, name))
                setattr(target, name, _coerce(kind, env[env_name], env_name))
    if raw:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(raw))}")
    return settings


def environment(settings: Settings) -> dict[str, str]:
    """Every option as its `EC2GW_*` variable: what worker processes rebuild `settings` from."""
    variables = {}
    for section in fields(Settings):
        values = getattr(settings, section.name)
        for option in fields(values):
            value = getattr(values, option.name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            variables[f"EC2GW_{section.name}_{option.name}".upper()] = text
    return variables
