"""aws cli v1: a user's whole day with `aws ec2 …` against the gateway.

Runs the real `aws` command (the PyPI awscli, with its own vendored botocore) in a
subprocess, as a fresh OpenNebula user, and checks what it printed.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.e2e.conftest import LiveGateway


@pytest.fixture(scope="module")
def cli(gateway: LiveGateway):
    key = gateway.new_user("client-awscli")

    def run(*args: str, expect_rc: int = 0) -> str:
        done = gateway.aws("ec2", *args, key=key)
        assert done.returncode == expect_rc, (args, done.stdout, done.stderr)
        return done.stdout if expect_rc == 0 else done.stderr

    def run_json(*args: str) -> dict:
        return json.loads(run(*args, "--output", "json") or "{}")

    run.json = run_json
    return run


def test_aws_cli_workflow(gateway: LiveGateway, cli, tmp_path):
    # Discovery: region, zones, images and instance types.
    regions = cli.json("describe-regions", "--query", "Regions[].RegionName")
    assert regions == [gateway.region]
    zones = cli.json("describe-availability-zones")["AvailabilityZones"]
    assert zones and {z["State"] for z in zones} == {"available"}
    assert {z["RegionName"] for z in zones} == {gateway.region}
    zone = zones[0]["ZoneName"]
    images = cli.json(
        "describe-images",
        "--owners",
        "amazon",
        "--filters",
        "Name=name,Values=ubuntu-*",
        "--query",
        "Images[].{id: ImageId, name: Name, state: State}",
    )
    assert len(images) == 1 and images[0]["state"] == "available"
    ami = images[0]["id"]
    assert ami.startswith("ami-")
    types = cli.json(
        "describe-instance-types",
        "--instance-types",
        "t3.micro",
        "t3.small",
        "--query",
        "sort_by(InstanceTypes, &InstanceType)[].[InstanceType, VCpuInfo.DefaultVCpus]",
    )
    assert types == [["t3.micro", 1], ["t3.small", 2]]

    # A key pair, and six instances launched with it, user data and tags.
    key = cli.json("create-key-pair", "--key-name", "cli-key")
    assert key["KeyName"] == "cli-key"
    assert key["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    user_data = tmp_path / "user-data.sh"
    user_data.write_text("#!/bin/sh\necho from the aws cli\n")
    dry = cli("run-instances", "--image-id", ami, "--dry-run", expect_rc=255)
    assert "DryRunOperation" in dry
    launched = cli.json(
        "run-instances",
        "--image-id",
        ami,
        "--instance-type",
        "t3.micro",
        "--count",
        "6",
        "--key-name",
        "cli-key",
        "--user-data",
        f"file://{user_data}",
        "--placement",
        f"AvailabilityZone={zone}",
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=cli-web},{Key=team,Value=clients}]",
    )
    ids = sorted(i["InstanceId"] for i in launched["Instances"])
    assert len(ids) == 6 and launched["ReservationId"].startswith("r-")
    cli("wait", "instance-running", "--instance-ids", *ids)

    # Listing: filters, a projection, a table, and paging.
    rows = cli.json(
        "describe-instances",
        "--filters",
        "Name=tag:team,Values=clients",
        "Name=instance-state-name,Values=running",
        "--query",
        "Reservations[].Instances[].[InstanceId,KeyName,InstanceType,Placement.AvailabilityZone]",
    )
    assert sorted(rows) == [[i, "cli-key", "t3.micro", zone] for i in ids]
    none = cli.json("describe-instances", "--filters", "Name=tag:team,Values=nobody")
    assert none["Reservations"] == []
    table = cli("describe-instances", "--instance-ids", ids[0], "--output", "table")
    assert "DescribeInstances" in table and ids[0] in table and "cli-web" in table
    # --page-size is MaxResults on the wire (EC2 allows 5..1000, counting instances);
    # --max-items cuts client-side and counts reservations (the paginator's result key).
    first = cli.json("describe-instances", "--page-size", "5", "--max-items", "1")
    assert len(first["Reservations"]) == 1 and first["NextToken"]
    seen = [i["InstanceId"] for r in first["Reservations"] for i in r["Instances"]]
    assert len(seen) == 5
    rest = cli.json(
        "describe-instances", "--page-size", "5", "--starting-token", first["NextToken"]
    )
    seen += [i["InstanceId"] for r in rest["Reservations"] for i in r["Instances"]]
    assert sorted(seen) == ids and "NextToken" not in rest
    # The server's own pages, one request each.
    page1 = cli.json("describe-instances", "--no-paginate", "--max-results", "5")
    page2 = cli.json(
        "describe-instances",
        "--no-paginate",
        "--max-results",
        "5",
        "--next-token",
        page1["NextToken"],
    )
    on_pages = [
        [i["InstanceId"] for r in p["Reservations"] for i in r["Instances"]] for p in (page1, page2)
    ]
    assert [len(p) for p in on_pages] == [5, 1] and sorted(sum(on_pages, [])) == ids
    assert "NextToken" not in page2
    too_small = cli("describe-instances", "--no-paginate", "--max-results", "1", expect_rc=255)
    assert "InvalidParameterValue" in too_small
    attribute = cli.json(
        "describe-instance-attribute", "--instance-id", ids[0], "--attribute", "userData"
    )
    assert base64.b64decode(attribute["UserData"]["Value"]) == user_data.read_bytes()

    # Lifecycle: stop, start, terminate, with the cli's waiters.
    stopping = cli.json("stop-instances", "--instance-ids", ids[0])["StoppingInstances"]
    assert [(s["InstanceId"], s["CurrentState"]["Name"]) for s in stopping] == [
        (ids[0], "stopping")
    ]
    cli("wait", "instance-stopped", "--instance-ids", ids[0])
    starting = cli.json("start-instances", "--instance-ids", ids[0])["StartingInstances"]
    assert starting[0]["PreviousState"]["Name"] == "stopped"
    assert starting[0]["CurrentState"]["Name"] == "pending"
    cli("wait", "instance-running", "--instance-ids", ids[0])
    dry = cli("terminate-instances", "--instance-ids", *ids, "--dry-run", expect_rc=255)
    assert "DryRunOperation" in dry
    terminating = cli.json("terminate-instances", "--instance-ids", *ids)["TerminatingInstances"]
    assert {t["CurrentState"]["Name"] for t in terminating} == {"shutting-down"}
    cli("wait", "instance-terminated", "--instance-ids", *ids)
    states = cli(
        "describe-instances",
        "--instance-ids",
        *ids,
        "--query",
        "Reservations[].Instances[].State.Name",
        "--output",
        "text",
    )
    assert states.split() == ["terminated"] * 6
    missing = cli("describe-instances", "--instance-ids", "i-0fffffff", expect_rc=255)
    assert "InvalidInstanceID.NotFound" in missing
