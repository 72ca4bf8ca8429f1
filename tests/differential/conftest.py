"""Differential tests: the same calls on the real oned and on the embedded OpenNebula.

They need a real oned: `EC2GW_TEST_OPENNEBULA` (its XML-RPC endpoint),
`EC2GW_TEST_ONEADMIN_AUTH` (`oneadmin:password`) and `EC2GW_TEST_SERVER_AUTH`
(`serveradmin:secret`). Without all three, `test_differential.py` is not collected at all
(so a plain `pytest` neither fails nor reports skips); CI sets them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle
from tests.differential.harness import Cloud

ENV = ("EC2GW_TEST_OPENNEBULA", "EC2GW_TEST_ONEADMIN_AUTH", "EC2GW_TEST_SERVER_AUTH")
ENABLED = all(os.environ.get(name) for name in ENV)

collect_ignore = [] if ENABLED else ["test_differential.py"]


def _host_id(cloud: Cloud, name: str) -> int:
    reply = cloud.call(cloud.admin_session, "one.hostpool.info")
    import re

    for m in re.finditer(r"<HOST><ID>(\d+)</ID><NAME>([^<]*)</NAME>", reply[1]):
        if m.group(2) == name:
            return int(m.group(1))
    return -1


@pytest.fixture(scope="session")
def oned() -> Cloud:
    server_user, _, secret = os.environ["EC2GW_TEST_SERVER_AUTH"].partition(":")
    cloud = Cloud(
        "oned",
        os.environ["EC2GW_TEST_OPENNEBULA"],
        os.environ["EC2GW_TEST_ONEADMIN_AUTH"],
        server_user,
        secret,
    )
    version = cloud.call(cloud.admin_session, "one.system.version")
    assert version[0] is True, f"the real oned does not answer: {version}"
    return cloud


@pytest.fixture(scope="session")
def onesim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """The embedded OpenNebula set up as oned.sh's fresh cloud: a dummy host
    `dummy-host-0`, datastores 0-2, cluster 0, security group 0."""
    sim = EmbeddedOpenNebula(
        Path(tmp_path_factory.mktemp("differential")), lifecycle=Lifecycle(delete=0.02)
    )
    sim.start()
    cloud = Cloud("onesim", sim.url, sim.oneadmin_session, sim.server_user, sim.server_secret)
    cloud.call(cloud.admin_session, "one.host.allocate", "dummy-host-0", "dummy", "dummy", -1)
    yield cloud
    sim.stop()
