"""Fixtures for the signature tests: the shared/ folder and the captured client requests.

CI clones the repository into some folder and puts a copy of `shared/` beside it, so the
fixtures are looked up at `<repo>/../shared`, or wherever `EC2GW_SHARED` points.

Every test that takes a `capture` argument runs once per signed request captured from a
real client (`shared/fixtures/client-captures/*.jsonl` and `examples/*.http`), with ids
`file:n:tag`.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from ec2gw.auth.verify import Caller, IncomingRequest, verify

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def shared_dir() -> Path:
    """`$EC2GW_SHARED`, else the `shared/` folder beside the repository checkout."""
    override = os.environ.get("EC2GW_SHARED")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.fail(f"shared fixtures not found at {path}; set EC2GW_SHARED")
    return path


@dataclass(frozen=True)
class Capture:
    id: str  # file:n:tag
    request: IncomingRequest
    params: list[tuple[str, str]]  # decoded query + form params, as the gateway passes them
    signed_at: float  # the client's own signing time
    scheme: str  # "v4", "v4-presigned", "v2"

    @property
    def has_session_token(self) -> bool:
        names = {n.lower() for n, _ in self.request.headers}
        return "x-amz-security-token" in names


def header(req: IncomingRequest, name: str) -> str | None:
    return next((v for n, v in req.headers if n.lower() == name), None)


def params_of(req: IncomingRequest) -> list[tuple[str, str]]:
    """Query + form params, decoded the way the gateway does (form only for url-encoded POSTs)."""
    pairs = parse_qsl(req.query, keep_blank_values=True)
    content_type = (header(req, "content-type") or "").split(";")[0].strip().lower()
    if req.method == "POST" and content_type == "application/x-www-form-urlencoded":
        pairs += parse_qsl(req.body.decode(), keep_blank_values=True)
    return pairs


def scheme_of(req: IncomingRequest, params: list[tuple[str, str]]) -> str | None:
    if (header(req, "authorization") or "").startswith("AWS4-HMAC-SHA256"):
        return "v4"
    names = {k for k, _ in params}
    if "X-Amz-Signature" in names:
        return "v4-presigned"
    if "Signature" in names:
        return "v2"
    return None


def signing_time(req: IncomingRequest, params: list[tuple[str, str]]) -> float:
    values = dict(params)
    stamp = header(req, "x-amz-date") or values.get("X-Amz-Date")
    if stamp:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    return datetime.fromisoformat(values["Timestamp"].replace("Z", "+00:00")).timestamp()


def run_verify(
    req: IncomingRequest,
    now: float,
    *,
    secrets: dict[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
    asked: list[str] | None = None,
) -> Caller:
    """`verify` with a fixed clock and an in-memory key table (default: the example key)."""
    table = {KEY: SECRET} if secrets is None else secrets

    async def lookup(access_key: str) -> str | None:
        if asked is not None:
            asked.append(access_key)
        return table.get(access_key)

    pairs = params_of(req) if params is None else params
    return asyncio.run(verify(req, pairs, lookup, now=now))


def _from_jsonl(path: Path) -> list[tuple[str, IncomingRequest]]:
    found = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        headers = [(n, v) for n, v in record["headers"]]
        req = IncomingRequest(
            method=record["method"],
            host=next(v for n, v in headers if n.lower() == "host"),
            path=record["path"],
            query=record["query"],
            headers=headers,
            body=record["body"].encode(),
        )
        found.append((f"{path.stem}:{record['n']}:{record.get('tag', '')}", req))
    return found


def _from_http(path: Path) -> tuple[str, IncomingRequest]:
    """A raw HTTP/1.1 request as written by the capture server (CRLF or LF line ends)."""
    text = path.read_bytes().replace(b"\r\n", b"\n").decode()
    head, _, body = text.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, target, _ = request_line.split(" ")
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    path_part, _, query = target.partition("?")
    req = IncomingRequest(
        method=method,
        host=next(v for n, v in headers if n.lower() == "host"),
        path=path_part,
        query=query,
        headers=headers,
        body=body.encode(),
    )
    return f"examples/{path.name}:1:http", req


def load_captures() -> list[Capture]:
    root = shared_dir() / "fixtures" / "client-captures"
    raw = [case for path in sorted(root.glob("*.jsonl")) for case in _from_jsonl(path)]
    raw += [_from_http(path) for path in sorted((root / "examples").glob("*.http"))]
    captures = []
    for case_id, req in raw:
        params = params_of(req)
        scheme = scheme_of(req, params)
        if scheme is not None:
            captures.append(Capture(case_id, req, params, signing_time(req, params), scheme))
    return captures


CAPTURES = load_captures()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking `capture` runs over all captures, unless it parametrizes its own."""
    own = any(
        "capture" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")
    )
    if "capture" in metafunc.fixturenames and not own:
        metafunc.parametrize("capture", CAPTURES, ids=[c.id for c in CAPTURES])
