"""`uvicorn benchmarks.gateway_app:create --factory [--workers N]`: the gateway as
`ec2gw serve --workers N` builds it in each worker (`ec2gw.app:create_from_environment`).

With BENCH_PROFILE_DIR set, `POST /_bench/profile/start` and
`POST /_bench/profile/stop?name=NAME` sample the event-loop thread with pyinstrument and
write NAME.txt (the call tree) and NAME.json (hot spots) there. Benchmark use only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ec2gw.app import create_from_environment

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def create() -> ASGIApp:
    app: ASGIApp = create_from_environment()
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    return _Profiling(app, Path(profile_dir)) if profile_dir else app


def hot_spots(session: Any, ours: str = "/ec2gw/", top: int = 15) -> dict[str, Any]:
    """Self time per function, and inclusive time per ec2gw function, from a session."""
    root = session.root_frame()
    total = root.time if root is not None else 0.0
    self_time: dict[str, float] = {}
    inclusive: dict[str, float] = {}

    def name(frame: Any) -> str:
        path = frame.file_path_short or frame.file_path or "?"
        return f"{frame.function} ({path}:{frame.line_no})"

    def walk(frame: Any, ancestors: frozenset[str]) -> None:
        key = name(frame)
        self_time[key] = self_time.get(key, 0.0) + frame.total_self_time
        if ours in (frame.file_path or "") and key not in ancestors:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
        for child in frame.children:
            if not child.is_synthetic:  # their time is in the parent's self time
                walk(child, ancestors | {key})

    if root is not None:
        walk(root, frozenset())

    def ranked(table: dict[str, float]) -> list[dict[str, Any]]:
        rows = sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [
            {"function": k, "seconds": round(v, 3), "share": round(v / total, 3) if total else 0}
            for k, v in rows
        ]

    return {
        "sampled_seconds": round(total, 3),
        "self": ranked(self_time),
        "inclusive": ranked(inclusive),
    }


class _Profiling:
    """ASGI wrapper adding the two profiling endpoints in front of the gateway."""

    def __init__(self, app: ASGIApp, directory: Path) -> None:
        self.app = app
        self.directory = directory
        self.profiler: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/_bench/profile/"):
            await self.app(scope, receive, send)
            return
        from pyinstrument import Profiler

        body: dict[str, Any] = {"ok": True}
        if scope["path"].endswith("/start"):
            self.profiler = Profiler(interval=0.0005, async_mode="disabled")
            self.profiler.start()
        elif self.profiler is not None:
            session = self.profiler.stop()
            self.profiler = None
            name = parse_qs(scope["query_string"].decode()).get("name", ["profile"])[0]
            self.directory.mkdir(parents=True, exist_ok=True)
            from pyinstrument.renderers import ConsoleRenderer

            text = ConsoleRenderer(unicode=False, color=False, show_all=True).render(session)
            (self.directory / f"{name}.txt").write_text(text)
            body = hot_spots(session)
            (self.directory / f"{name}.json").write_text(json.dumps(body, indent=1))
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
