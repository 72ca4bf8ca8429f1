"""Fixtures of the protocol tests: the real client captures from shared/fixtures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def shared_dir() -> Path:
    """shared/ beside the clone (as CI places it), or wherever EC2GW_SHARED points."""
    override = os.environ.get("EC2GW_SHARED")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


def load_captures() -> list[tuple[str, dict]]:
    """(id, request) for every request of every client-captures/*.jsonl file."""
    captures = []
    for path in sorted((shared_dir() / "fixtures" / "client-captures").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                request = json.loads(line)
                captures.append((f"{path.stem}:{number}:{request['action']}", request))
    return captures


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = shared_dir() / "fixtures"
    if not path.is_dir():
        pytest.fail(f"shared fixtures not found at {path} (set EC2GW_SHARED)")
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test taking `capture` with every captured client request."""
    if "capture" in metafunc.fixturenames:
        captures = load_captures()
        metafunc.parametrize(
            "capture", [request for _, request in captures], ids=[cid for cid, _ in captures]
        )
