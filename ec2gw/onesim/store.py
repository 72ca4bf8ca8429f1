"""SQLite persistence: one row per object (its fields as JSON), like oned's `*_pool` tables.

The cloud keeps every object in memory and writes the ones a call changed before the
reply goes out, so a restart (or a crash after the reply) finds what the client was told.

The lists of VMs that grow with the VM pool (an image's VMS, the UPDATED_VMS of networks
and security groups) are not part of the object's row: they are rows of `member`, one per
entry in list order, written as entries come and go. Otherwise every VM created would
rewrite its image's ever longer list.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

# The list field of each kind kept in `member` rows.
MEMBER_FIELDS = {"image": "vms", "vnet": "updated_vms", "secgroup": "updated_vms"}

# (kind, oid, member, added): an entry appended to (True) or removed from (False) a list.
MemberChange = tuple[str, int, int, bool]


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
        # rowid order is list order (a new row gets the highest rowid); entries may repeat.
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS member (kind TEXT, oid INTEGER, member INTEGER)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS member_key ON member (kind, oid, member)")

    def load(self) -> dict[str, dict[int, dict[str, Any]]]:
        pools: dict[str, dict[int, dict[str, Any]]] = {}
        for kind, oid, body in self.db.execute("SELECT kind, oid, body FROM pool"):
            pools.setdefault(kind, {})[oid] = json.loads(body)
        for kind, field in MEMBER_FIELDS.items():
            objs = pools.get(kind, {})
            with self.db:  # a database written before `member` existed kept them in the row
                for oid, obj in objs.items():
                    if field not in obj:
                        continue
                    for member in obj.pop(field) or []:
                        self.db.execute("INSERT INTO member VALUES (?, ?, ?)", (kind, oid, member))
                    self.db.execute(
                        "UPDATE pool SET body = ? WHERE kind = ? AND oid = ?",
                        (json.dumps(obj, separators=(",", ":")), kind, oid),
                    )
            for obj in objs.values():
                obj[field] = []
            rows = self.db.execute(
                "SELECT oid, member FROM member WHERE kind = ? ORDER BY rowid", (kind,)
            )
            for oid, member in rows:
                if oid in objs:
                    objs[oid][field].append(member)
        return pools

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def write(
        self,
        objects: list[tuple[str, int, dict[str, Any] | None]],
        meta: dict[str, Any],
        members: list[MemberChange] | None = None,
    ) -> None:
        """Write changed objects (None = deleted), list entries and meta values in one
        transaction."""
        if not objects and not meta and not members:
            return
        with self.db:
            self.db.execute("BEGIN")
            for kind, oid, member, added in members or []:
                if added:
                    self.db.execute("INSERT INTO member VALUES (?, ?, ?)", (kind, oid, member))
                else:  # the first occurrence, as `list.remove`
                    self.db.execute(
                        "DELETE FROM member WHERE rowid = (SELECT min(rowid) FROM member"
                        " WHERE kind = ? AND oid = ? AND member = ?)",
                        (kind, oid, member),
                    )
            for kind, oid, obj in objects:
                if obj is None:
                    self.db.execute("DELETE FROM pool WHERE kind = ? AND oid = ?", (kind, oid))
                    self.db.execute("DELETE FROM member WHERE kind = ? AND oid = ?", (kind, oid))
                    continue
                field = MEMBER_FIELDS.get(kind)
                if field is not None and field in obj:
                    obj = {k: v for k, v in obj.items() if k != field}
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
