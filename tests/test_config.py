import pytest

from ec2gw.config import ConfigError, load_settings


def test_documented_example_matches_the_defaults(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "config" / "ec2gw.toml"
    assert load_settings(example, env={}) == load_settings(None, env={})


def test_environment_wins_over_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[opennebula]\nendpoint = "http://a:2633/RPC2"\n[gateway]\nport = 1\n')
    settings = load_settings(
        path, env={"EC2GW_GATEWAY_PORT": "9999", "EC2GW_GATEWAY_LOG_JSON": "yes"}
    )
    assert settings.gateway.port == 9999
    assert settings.gateway.log_json is True
    assert settings.opennebula.endpoint == "http://a:2633/RPC2"
    assert not settings.embedded_mode


@pytest.mark.parametrize(
    "text",
    ["[gateway]\nprot = 1\n", "[nope]\n", "[gateway]\nport = 'x'\n", "gateway = 3\n", "[[x"],
)
def test_mistakes_are_reported(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(path, env={})


def test_environment_rebuilds_the_same_settings():
    # What `ec2gw serve --workers N` hands its worker processes.
    from ec2gw.config import environment

    settings = load_settings(env={})
    settings.gateway.port = 9999
    settings.gateway.log_json = True
    settings.gateway.rate_limit = 0.5
    settings.opennebula.endpoint = "http://oned:2633/RPC2"
    settings.embedded.data_dir = "/tmp/x y"
    assert load_settings(env=environment(settings)) == settings
