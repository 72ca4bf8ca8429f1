"""MaxResults bounds of every implemented action that pages, against what EC2 accepts (its
API reference, the botocore model's shape bounds) and what the aws cli and boto3 send by
default (issue 18: `aws ec2 describe-volumes` sends MaxResults=1000 and was refused)."""

from __future__ import annotations

import inspect
import re

import botocore.session
import pytest
from awscli.customizations.ec2.paginate import EC2PageSizeInjector
from botocore.exceptions import ClientError

from ec2gw.actions import registry
from ec2gw.ec2 import pages
from ec2gw.protocol.errors import EC2Error
from tests.e2e.conftest import gateway  # noqa: F401  (the live gateway fixture)

MODEL = botocore.session.get_session().get_service_model("ec2")
ITEMS = list(range(1200))


def paging_actions() -> dict[str, object]:
    """Implemented actions whose botocore input has MaxResults -> its shape."""
    found = {}
    for spec in registry.all_actions():
        members = MODEL.operation_model(spec.name).input_shape.members
        if "MaxResults" in members:
            found[spec.name] = members["MaxResults"]
    return found


PAGING = paging_actions()


def cli_default_page_sizes() -> dict[str, int]:
    """The aws cli v1's ec2/paginate customisation: operation -> MaxResults it injects."""
    by_cli_name = {botocore_cli_name(name): name for name in MODEL.operation_names}
    size = EC2PageSizeInjector.DEFAULT_PAGE_SIZE
    return {by_cli_name[cli]: size for cli in EC2PageSizeInjector.TARGET_OPERATIONS}


def botocore_cli_name(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def test_every_paging_action_has_its_bounds() -> None:
    assert len(PAGING) >= 14
    assert set(PAGING) == set(pages.MAX_RESULTS)


@pytest.mark.parametrize("name", sorted(PAGING))
def test_bounds_match_the_botocore_model(name: str) -> None:
    shape, bounds = PAGING[name], pages.MAX_RESULTS[name]
    if "min" in shape.metadata:
        assert bounds.minimum == shape.metadata["min"]
    if "max" in shape.metadata:
        assert bounds.maximum == shape.metadata["max"] and not bounds.capped
    assert 1 <= bounds.minimum <= 5 and bounds.maximum >= 100


@pytest.mark.parametrize("name", sorted(PAGING))
def test_each_handler_pages_with_its_own_bounds(name: str) -> None:
    source = inspect.getsource(registry.get(name).handler)
    calls = re.findall(r"pages\.page\(([^)]*)\)", source)
    assert calls, f"{name} does not page"
    for call in calls:
        assert f'action="{name}"' in call, f"{name}: pages.page({call})"


@pytest.mark.parametrize("name", sorted(PAGING))
def test_largest_and_smallest_accepted(name: str) -> None:
    bounds = pages.MAX_RESULTS[name]
    for value in (bounds.minimum, bounds.maximum):
        chunk, token = pages.page(ITEMS, {"MaxResults": value}, action=name)
        assert len(chunk) == value and token
    with pytest.raises(EC2Error) as err:
        pages.page(ITEMS, {"MaxResults": bounds.minimum - 1}, action=name)
    assert err.value.code == "InvalidParameterValue"
    above = {"MaxResults": bounds.maximum + 1}
    if bounds.capped:  # EC2: "larger than N, only N results are returned"
        chunk, token = pages.page(ITEMS, above, action=name)
        assert len(chunk) == bounds.maximum and token
        rest, last = pages.page(ITEMS, {**above, "NextToken": token}, action=name)
        assert chunk[-1] + 1 == rest[0] and (last is None) == (len(ITEMS) <= 2 * bounds.maximum)
    else:
        with pytest.raises(EC2Error):
            pages.page(ITEMS, above, action=name)


def test_what_the_cli_sends_by_default_is_accepted() -> None:
    sizes = cli_default_page_sizes()
    assert sizes == {"DescribeVolumes": 1000, "DescribeSnapshots": 1000}
    for name, size in sizes.items():
        pages.page(ITEMS, {"MaxResults": size}, action=name)


def test_live_largest_page_of_every_action(gateway) -> None:  # noqa: F811
    """Through boto3 on a live gateway: each action at its top bound and at the cli's 1000."""
    client = gateway.client()
    for name in sorted(PAGING):
        bounds = pages.MAX_RESULTS[name]
        method = getattr(client, botocore_cli_name(name).replace("-", "_"))
        values = {bounds.minimum, bounds.maximum} | ({1000} if bounds.capped else set())
        for value in sorted(values):
            try:
                method(MaxResults=value)
            except ClientError as err:  # pragma: no cover - the failure message
                pytest.fail(f"{name} MaxResults={value}: {err}")


def test_live_aws_cli_describe_volumes_without_arguments(gateway) -> None:  # noqa: F811
    for command in ("describe-volumes", "describe-snapshots"):
        done = gateway.aws("ec2", command, "--output", "json")
        assert done.returncode == 0, done.stderr
