"""No container engine runs here, so check by inspection that the image can be built."""

import re
import tomllib
from pathlib import Path

from ec2gw.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def test_copied_paths_exist():
    for args in instructions("COPY"):
        if args.startswith("--from"):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source


def test_entrypoint_is_the_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert instructions("ENTRYPOINT") == ['["ec2gw"]'] and "ec2gw" in scripts
    assert instructions("CMD") == ['["serve"]']


def test_environment_names_real_options():
    env = dict(re.findall(r"(EC2GW_[A-Z_]+)=(\S+)", " ".join(instructions("ENV"))))
    assert env.pop("EC2GW_CONFIG") == "/etc/ec2gw/ec2gw.toml"
    settings = load_settings(None, env=env)
    assert settings != Settings()
    assert settings.gateway.host == "0.0.0.0"
    assert settings.embedded.data_dir == "/var/lib/ec2gw"


def test_runs_as_non_root_with_a_healthcheck():
    assert instructions("USER") == ["ec2gw"]
    (check,) = instructions("HEALTHCHECK")
    assert "/healthz" in check
    assert "EXPOSE 8773" in DOCKERFILE
