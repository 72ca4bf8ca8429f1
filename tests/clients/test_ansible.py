"""Ansible (the `ansible` package from PyPI with its bundled amazon.aws collection):
`ansible-playbook ansible/playbook.yml` with ec2_key, ec2_ami_info, ec2_security_group,
ec2_instance (running, stopped, absent), ec2_vol and ec2_instance_info, pointed at the
gateway by `endpoint_url`; and the aws_ec2 inventory plugin.

amazon.aws is boto3 underneath, but its modules call far more than the obvious action:
ec2_security_group first asks STS GetCallerIdentity for the account id; ec2_instance asks
DescribeVpcs, DescribeSubnets, DescribeSecurityGroups, DescribeInstanceAttribute,
ModifyInstanceAttribute, DescribeInstanceStatus and the boto3 waiters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import LiveGateway

PLAYBOOK = Path(__file__).parent / "ansible" / "playbook.yml"


def _run_playbook(gateway: LiveGateway, tmp_path: Path) -> dict:
    key = gateway.new_user("client-ansible")
    results = tmp_path / "results.json"
    extra = {
        "ec2gw_url": gateway.url,
        "ec2gw_region": gateway.region,
        "ec2gw_access_key": key.access_key_id,
        "ec2gw_secret_key": key.secret,
        "results_file": str(results),
    }
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(tmp_path / "no-ansible.cfg"),  # ignore any ansible.cfg around
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,  # the venv, where boto3 is
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
    }
    playbook = Path(sys.executable).with_name("ansible-playbook")
    run = subprocess.run(
        [str(playbook), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}", str(PLAYBOOK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return json.loads(results.read_text())


def _answered(gateway: LiveGateway) -> tuple[Counter, Counter]:
    """(requests by action, error answers by (action, code)) from the gateway's /metrics."""
    requests: Counter = Counter()
    errors: Counter = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{gateway.url}/metrics").text):
        for sample in family.samples:
            if sample.name == "ec2gw_requests_total":
                requests[sample.labels["action"]] += int(sample.value)
            elif sample.name == "ec2gw_errors_total":
                errors[sample.labels["action"], sample.labels["code"]] += int(sample.value)
    return requests, errors


def test_ansible_playbook(gateway: LiveGateway, tmp_path: Path):
    # A gateway of its own on the same cloud, so that its /metrics count this playbook only.
    with gateway.variant() as own:
        out = _run_playbook(own, tmp_path)
        requests, errors = _answered(own)

    assert out["key"]["changed"] is True and out["key"]["key"]["name"] == "ansible-key"
    assert out["key"]["key"]["fingerprint"] and out["key"]["key"]["private_key"]
    assert out["key_again"]["changed"] is False

    (image,) = out["images"]["images"]
    assert image["name"].startswith("ubuntu-") and image["state"] == "available"

    group = out["group"]
    assert group["changed"] is True and group["group_id"].startswith("sg-")
    rules = [(r["ip_protocol"], r["from_port"], r["to_port"]) for r in group["ip_permissions"]]
    assert sorted(rules) == [("tcp", 22, 22), ("tcp", 80, 80)]
    assert out["group_again"]["changed"] is False

    launched = out["launched"]
    assert launched["changed"] is True and len(launched["instance_ids"]) == 2
    ids = sorted(launched["instance_ids"])
    assert out["launched_again"]["changed"] is False
    running = {i["instance_id"]: i for i in out["running"]["instances"]}
    assert sorted(running) == ids
    for instance in running.values():
        assert instance["state"]["name"] == "running"
        assert instance["instance_type"] == "t3.micro" and instance["key_name"] == "ansible-key"
        assert instance["image_id"] == image["image_id"]
        assert instance["tags"] == {"Name": "ansible-web", "suite": "ansible"}
        # (In "default": ec2gw ignores NetworkInterface.1.SecurityGroupId.N on RunInstances
        # and cannot ModifyInstanceAttribute Groups yet, which ec2_instance needs for others.)
        assert [g["group_name"] for g in instance["security_groups"]] == ["default"]

    volume = out["volume"]["volume"]
    assert volume["id"].startswith("vol-") and volume["size"] == 1 and volume["type"] == "gp3"
    assert volume["status"] == "in-use" and volume["tags"] == {"Name": "ansible-data"}
    assert [(a["instance_id"], a["device"], a["status"]) for a in volume["attachment_set"]] == [
        (launched["instance_ids"][0], "/dev/sdf", "attached")
    ]
    detached = out["volume_detached"]["volume"]
    assert detached["status"] == "available" and detached["attachment_set"] == []
    assert out["volume_deleted"]["changed"] is True

    assert out["stopped"]["stop_success"] == launched["instance_ids"][:1]
    assert out["started"]["start_success"] == launched["instance_ids"][:1]
    refused = out["refused"]
    assert refused["failed"] is True and sorted(refused["terminate_failed"]) == ids
    assert "OperationNotPermitted" in refused["msg"]
    assert out["unprotected"]["changes"] == [{"DisableApiTermination": {"Value": False}}]
    assert sorted(out["terminated"]["terminate_success"]) == ids
    assert {i["state"]["name"] for i in out["after"]["instances"]} == {"terminated"}
    assert out["group_removed"]["changed"] is True
    assert out["key_removed"]["changed"] is True

    # What amazon.aws asked for beyond the plain EC2 calls, and the only errors it met:
    # the key lookup before creating it, the refused termination, and the volume_deleted
    # waiter's poll that ends on InvalidVolume.NotFound.
    assert {
        "DescribeVpcs",
        "DescribeSubnets",
        "DescribeInstanceAttribute",
        "ModifyInstanceAttribute",
        "DescribeInstanceStatus",
        "DescribeTags",
        "DescribeSecurityGroups",
        "CreateSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "CreateVolume",
        "AttachVolume",
        "DetachVolume",
        "DeleteVolume",
    } <= set(requests)
    assert set(errors) == {
        ("DescribeKeyPairs", "InvalidKeyPair.NotFound"),
        ("TerminateInstances", "OperationNotPermitted"),
        ("DescribeVolumes", "InvalidVolume.NotFound"),
    }


def test_ansible_aws_ec2_inventory(gateway: LiveGateway, tmp_path: Path):
    """The amazon.aws.aws_ec2 inventory plugin: DescribeRegions, then the DescribeInstances
    paginator per region; hosts named by instance id, grouped by a tag."""
    key = gateway.new_user("client-ansible-inventory")
    ec2 = gateway.client(key)
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["ubuntu-*"]}])["Images"][0]
    reservation = ec2.run_instances(
        ImageId=ami["ImageId"],
        MinCount=2,
        MaxCount=2,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web"}]}],
    )
    ids = sorted(i["InstanceId"] for i in reservation["Instances"])
    zones = {i["Placement"]["AvailabilityZone"] for i in reservation["Instances"]}
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1})
    inventory = tmp_path / "ec2gw.aws_ec2.yml"  # the plugin wants this name ending
    inventory.write_text(
        json.dumps(
            {
                "plugin": "amazon.aws.aws_ec2",
                "endpoint_url": gateway.url,
                "access_key": key.access_key_id,
                "secret_key": key.secret,
                "regions": [gateway.region],
                "hostnames": ["instance-id"],
                "keyed_groups": [{"key": "tags.role", "prefix": "role"}],
                "compose": {"ansible_host": "private_ip_address"},
            }
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(tmp_path / "no-ansible.cfg"),
        "ANSIBLE_INVENTORY_ENABLED": "amazon.aws.aws_ec2",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",  # an inventory error fails, not warns
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
    }
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(inventory), "--list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    # ansible-core 2.19 marks untrusted strings as {"__ansible_unsafe": text} in --list
    found = json.loads(listed.stdout, object_hook=lambda d: d.get("__ansible_unsafe", d))
    assert sorted(found["role_web"]["hosts"]) == ids
    hostvars = found["_meta"]["hostvars"]
    for instance_id in ids:
        assert hostvars[instance_id]["state"]["name"] == "running"
        assert hostvars[instance_id]["ansible_host"].startswith("10.")
        # (The plugin's placement.region is the zone name minus its last character, AWS's
        # `us-east-1a` convention; ec2gw's zones are `<region>-<cluster>`, so not checked.)
        assert hostvars[instance_id]["placement"]["availability_zone"] in zones
    ec2.terminate_instances(InstanceIds=ids)
