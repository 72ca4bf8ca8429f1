"""On a real oned (`EC2GW_TEST_OPENNEBULA`), the tests that need the embedded OpenNebula
itself are deselected, and pytest's summary says how many (see `tests/backend.py`)."""

from __future__ import annotations

import pytest

from tests.backend import real_oned_endpoint


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if real_oned_endpoint() is None:
        return
    embedded_only = [item for item in items if item.get_closest_marker("embedded_only")]
    if embedded_only:
        config.hook.pytest_deselected(items=embedded_only)
        items[:] = [item for item in items if not item.get_closest_marker("embedded_only")]
