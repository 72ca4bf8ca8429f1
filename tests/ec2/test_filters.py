import pytest

from ec2gw.ec2 import filters
from ec2gw.protocol.errors import EC2Error

RESOURCES = [
    {"id": "i-1", "state": "running", "tags": {"Name": "web1", "env": "prod"}, "ips": ["10.0.0.1"]},
    {"id": "i-2", "state": "stopped", "tags": {"Name": "web2"}, "ips": []},
    {"id": "i-3", "state": "running", "tags": {"Name": "db?1"}, "ips": ["10.0.0.3", "1.2.3.4"]},
]
KNOWN = {"state": lambda r: r["state"], "id": lambda r: r["id"], "ip": lambda r: r["ips"]}


def run(*specs):
    chosen = filters.apply(
        RESOURCES, [{"Name": n, "Values": v} for n, v in specs], KNOWN, lambda r: r["tags"]
    )
    return [r["id"] for r in chosen]


def test_values_are_ored_and_filters_anded():
    assert run(("state", ["running", "pending"])) == ["i-1", "i-3"]
    assert run(("state", ["running"]), ("tag:Name", ["web*"])) == ["i-1"]


def test_wildcards_and_escapes():
    assert run(("tag:Name", ["web?"])) == ["i-1", "i-2"]
    assert run(("tag:Name", ["*"])) == ["i-1", "i-2", "i-3"]
    assert run(("tag:Name", ["db\\?1"])) == ["i-3"]
    assert run(("tag:Name", ["db\\?2"])) == []
    assert run(("id", ["i-"])) == []  # whole-value match, not substring


def test_tag_key_and_value():
    assert run(("tag-key", ["env"])) == ["i-1"]
    assert run(("tag-value", ["web2", "prod"])) == ["i-1", "i-2"]
    assert run(("tag:missing", ["*"])) == []


def test_list_valued_extractors():
    assert run(("ip", ["1.2.3.4"])) == ["i-3"]
    assert run(("ip", ["10.0.0.*"])) == ["i-1", "i-3"]


def test_unknown_filter_and_empty_values_are_client_errors():
    with pytest.raises(EC2Error) as err:
        run(("colour", ["red"]))
    assert err.value.code == "InvalidParameterValue" and err.value.status == 400
    with pytest.raises(EC2Error):
        run(("state", []))


def test_no_filters_keeps_everything():
    assert filters.apply(RESOURCES, None, KNOWN) == RESOURCES
