"""SQLite persistence: one row per object (its fields as JSON), like oned's `*_pool` tables.

The cloud keeps every object in memory and writes the ones a call changed before the
reply goes out, so a restart (or a crash after the reply) finds what the client was told.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


class Store:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS pool (kind TEXT, oid INTEGER, body TEXT,"
            " PRIMARY KEY (kind, oid))"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    def load(self) -> dict[str, dict[int, dict[str, Any]]]:
        pools: dict[str, dict[int, dict[str, Any]]] = {}
        for kind, oid, body in self.db.execute("SELECT kind, oid, body FROM pool"):
            pools.setdefault(kind, {})[oid] = json.loads(body)
        return pools

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def write(
        self,
        objects: list[tuple[str, int, dict[str, Any] | None]],
        meta: dict[str, Any],
    ) -> None:
        """Write changed objects (None = deleted) and meta values in one transaction."""
        if not objects and not meta:
            return
        with self.db:
            self.db.execute("BEGIN")
            for kind, oid, obj in objects:
                if obj is None:
                    self.db.execute("DELETE FROM pool WHERE kind = ? AND oid = ?", (kind, oid))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO pool VALUES (?, ?, ?)",
                        (kind, oid, json.dumps(obj, separators=(",", ":"))),
                    )
            for key, value in meta.items():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value))
                )

    def close(self) -> None:
        self.db.close()
