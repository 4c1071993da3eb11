"""SqliteStore: the default, durable Store backend, an append-only revision log like kine.

Schema (created on first open):

- `log`: one row per write; `id INTEGER PRIMARY KEY AUTOINCREMENT` is the revision.
  A row holds the key (`name`), whether it created or deleted the key, the key's
  `create_revision`, the revision it replaced (`prev_revision`, 0 on create), the new
  `value` (for a delete: the last value) and the replaced `old_value` (NULL on create and
  delete). So every row is a self-contained Event, previous value included, and history
  replay never needs a row that compaction may already have removed.
  AUTOINCREMENT keeps the high-water mark in `sqlite_sequence` even after compaction deletes
  the newest row of a key, so revisions never go backwards, across restarts included.
- `live`: key -> id of its current row, for keys that exist. Maintained in the same
  transaction as the log append, it makes get/list/count a range scan of live keys joined to
  the log by primary key, independent of how much history is kept. (So `log` needs no index
  on name: nothing looks rows up by key there; replay scans by id, see `_history`.)
  UNIQUE(id) lets compaction test "is this row live?" by index.
- `meta`: `compacted` = the compaction point, so Compacted survives restarts.

Durability: WAL with synchronous=NORMAL. A commit is in the WAL file (the OS's page cache)
before the write coroutine returns, so it survives the process being killed (SIGKILL); only
a power loss or kernel crash may lose the last transactions, which is what we accept.

Calls run synchronously on the event loop thread: each statement is sub-millisecond and
running them inline makes every write plus its publish atomic with respect to other
coroutines, which the gap-free watch design relies on (see watch.py). The file must be
owned by one process: another writer's changes would not reach this process's watchers.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import AsyncIterator

from svcnet.store.interface import KV, Event, KeyExists, KeyNotFound, RevisionMismatch
from svcnet.store.watch import DEFAULT_WATCH_BUFFER, Broadcaster, follow

# Inside the store classes `list` names the method, so history pages are annotated with this.
_Events = list[Event]

__all__ = ["SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE TABLE IF NOT EXISTS live (
    name TEXT PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

_ROW = "log.id, log.name, log.created, log.deleted, log.create_revision, " \
       "log.prev_revision, log.value, log.old_value"

#: Rows per transaction when compaction deletes history, with a yield to the loop between
#: them, so a large compaction does not stall requests and watches.
_COMPACT_CHUNK = 5000


def _prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with `prefix`, or None if there
    is none. SQLite compares TEXT bytewise in UTF-8, which orders like Python's code point
    comparison, so `prefix <= name < _prefix_end(prefix)` is an indexable startswith."""
    chars = list(prefix)
    while chars:
        c = ord(chars.pop()) + 1
        if 0xD800 <= c <= 0xDFFF:
            c = 0xE000  # surrogates cannot be encoded; the next valid code point follows
        if c <= 0x10FFFF:
            return "".join(chars) + chr(c)
    return None


def _range(prefix: str) -> tuple[str, list[object]]:
    """SQL condition and parameters restricting `live.name`/`log.name` (as `{col}`) to
    keys under `prefix`."""
    end = _prefix_end(prefix)
    if end is None:
        return "{col} >= ?", [prefix]
    return "{col} >= ? AND {col} < ?", [prefix, end]


def _event(row: tuple[int, str, int, int, int, int, bytes, bytes | None]) -> Event:
    rev, name, created, deleted, create_rev, prev_rev, value, old_value = row
    kv = KV(name, value, create_rev, rev)
    if created:
        return Event("ADDED", kv)
    if deleted:
        return Event("DELETED", kv, KV(name, value, create_rev, prev_rev))
    return Event("MODIFIED", kv, KV(name, old_value or b"", create_rev, prev_rev))


class SqliteStore:
    """Durable Store in one SQLite file. Open with `SqliteStore.open(path)` (a plain,
    synchronous classmethod); `compact_window()` is the periodic compaction entry point."""

    def __init__(self, conn: sqlite3.Connection, *, compact_window: int,
                 watch_buffer: int) -> None:
        """Use `open`; this takes an already prepared connection."""
        self._db = conn
        self._window = compact_window
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        self._rev: int = row[0] if row else 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'compacted'").fetchone()
        self._compacted: int = row[0] if row else 0
        self._closed = False
        self._broadcaster = Broadcaster(watch_buffer)

    @classmethod
    def open(cls, path: str, *, compact_window: int = 10_000,
             watch_buffer: int = DEFAULT_WATCH_BUFFER) -> SqliteStore:
        """Open (creating the file, its directory and the schema if absent) the store at
        `path`. The current revision and compaction point are recovered from the file.
        `compact_window`: revisions of history `compact_window()` keeps; `watch_buffer`:
        bound of each watcher's backlog (see watch.WatchOverflow)."""
        if compact_window < 0:
            raise ValueError("compact_window must be >= 0")
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
        # exactly one guarded write.
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            return cls(conn, compact_window=compact_window, watch_buffer=watch_buffer)
        except BaseException:
            conn.close()
            raise

    # --- reads --------------------------------------------------------------------------

    async def get(self, key: str) -> KV | None:
        self._check_open()
        row = self._db.execute(
            "SELECT log.value, log.create_revision, log.id FROM live "
            "JOIN log ON log.id = live.id WHERE live.name = ?", (key,)).fetchone()
        return KV(key, row[0], row[1], row[2]) if row else None

    async def list(self, prefix: str, *, start_after: str = "",
                   limit: int = 0) -> tuple[list[KV], int]:
        self._check_open()
        cond, params = _range(prefix)
        sql = (f"SELECT live.name, log.value, log.create_revision, log.id FROM live "
               f"JOIN log ON log.id = live.id WHERE {cond.format(col='live.name')}")
        if start_after:
            sql += " AND live.name > ?"
            params.append(start_after)
        sql += " ORDER BY live.name"
        if limit > 0:
            sql += " LIMIT ?"
            params.append(limit)
        # One statement in autocommit mode reads one snapshot, and no write can interleave
        # (we do not await), so the items and the revision are consistent.
        items = [KV(*r) for r in self._db.execute(sql, params)]
        return items, self._rev

    async def count(self, prefix: str) -> int:
        self._check_open()
        cond, params = _range(prefix)
        sql = f"SELECT count(*) FROM live WHERE {cond.format(col='name')}"
        return int(self._db.execute(sql, params).fetchone()[0])

    async def current_revision(self) -> int:
        return self._rev

    async def compacted_revision(self) -> int:
        return self._compacted

    # --- writes -------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KV:
        self._check_open()
        with self._transaction():
            if self._live_row(key) is not None:
                raise KeyExists(key, f"{key}: already exists")
            rev = self._rev + 1
            self._append(rev, key, True, False, rev, 0, value, None)
            self._db.execute("INSERT INTO live (name, id) VALUES (?, ?)", (key, rev))
        kv = KV(key, bytes(value), rev, rev)
        self._published(Event("ADDED", kv))
        return kv

    async def update(self, key: str, value: bytes, expected_revision: int) -> KV:
        self._check_open()
        with self._transaction():
            cur = self._guard(key, expected_revision)
            rev = self._rev + 1
            self._append(rev, key, False, False, cur.create_revision, cur.mod_revision,
                         value, cur.value)
            self._db.execute("UPDATE live SET id = ? WHERE name = ?", (rev, key))
        kv = KV(key, bytes(value), cur.create_revision, rev)
        self._published(Event("MODIFIED", kv, cur))
        return kv

    async def delete(self, key: str, expected_revision: int = 0) -> KV:
        self._check_open()
        with self._transaction():
            cur = self._guard(key, expected_revision)
            rev = self._rev + 1
            self._append(rev, key, False, True, cur.create_revision, cur.mod_revision,
                         cur.value, None)
            self._db.execute("DELETE FROM live WHERE name = ?", (key,))
        tomb = KV(key, cur.value, cur.create_revision, rev)
        self._published(Event("DELETED", tomb, cur))
        return tomb

    def _live_row(self, key: str) -> KV | None:
        row = self._db.execute(
            "SELECT log.value, log.create_revision, log.id FROM live "
            "JOIN log ON log.id = live.id WHERE live.name = ?", (key,)).fetchone()
        return KV(key, row[0], row[1], row[2]) if row else None

    def _guard(self, key: str, expected_revision: int) -> KV:
        cur = self._live_row(key)
        if cur is None:
            raise KeyNotFound(key, f"{key}: not found")
        if expected_revision and cur.mod_revision != expected_revision:
            raise RevisionMismatch(key, cur)
        return cur

    def _append(self, rev: int, key: str, created: bool, deleted: bool, create_rev: int,
                prev_rev: int, value: bytes, old_value: bytes | None) -> None:
        # The id is given explicitly (the next revision) so create_revision can be set in
        # the same statement; AUTOINCREMENT still advances sqlite_sequence to it, and a
        # clash (another process writing the file) fails the transaction loudly.
        self._db.execute(
            "INSERT INTO log (id, name, created, deleted, create_revision, prev_revision, "
            "value, old_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rev, key, int(created), int(deleted), create_rev, prev_rev, bytes(value),
             old_value))

    def _published(self, event: Event) -> None:
        """After a commit: advance the revision and fan the event out (no await between)."""
        self._rev = event.kv.mod_revision
        self._broadcaster.publish(event)

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    # --- watch and compaction -------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        return follow(self._broadcaster, prefix, from_revision, self._history,
                      lambda: self._compacted)

    def _history(self, prefix: str, after: int, limit: int) -> _Events:
        # NOT INDEXED keeps SQLite on the rowid range `id > after`, which stops once `limit`
        # rows matched: cost follows the history asked for. Left to itself, the planner
        # prefers the name index, reading every row under the prefix and sorting them, which
        # is far slower for the usual watch from a recent revision.
        cond, params = _range(prefix)
        sql = (f"SELECT {_ROW} FROM log NOT INDEXED WHERE log.id > ? "
               f"AND {cond.format(col='log.name')} ORDER BY log.id LIMIT ?")
        return [_event(r) for r in self._db.execute(sql, [after, *params, limit])]

    async def compact(self, revision: int) -> None:
        """Delete superseded and tombstone rows at or before `revision` (a key's live row is
        always kept) and record `revision` as the compaction point, durably. Watches from an
        older revision then raise Compacted. At or below the current point: no-op; beyond
        the current revision: ValueError. Deletion runs in chunks, yielding between them."""
        self._check_open()
        if revision > self._rev:
            raise ValueError(f"cannot compact revision {revision}: current is {self._rev}")
        if revision <= self._compacted:
            return
        # Record the point before deleting anything: a replay in progress checks it before
        # each page, so it raises Compacted rather than skipping rows deleted under it. If we
        # crash midway, leftover rows are harmless and the next compaction removes them.
        with self._transaction():
            self._db.execute("INSERT INTO meta (key, value) VALUES ('compacted', ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (revision,))
        self._compacted = revision
        row = self._db.execute("SELECT min(id) FROM log").fetchone()
        lo = (row[0] or revision + 1) - 1
        while lo < revision and not self._closed:
            hi = min(lo + _COMPACT_CHUNK, revision)
            with self._transaction():
                # Rows no longer live are superseded or tombstones. A row referenced by
                # `live` is found through live's UNIQUE(id) index.
                self._db.execute(
                    "DELETE FROM log WHERE id > ? AND id <= ? AND NOT EXISTS "
                    "(SELECT 1 FROM live WHERE live.id = log.id)", (lo, hi))
            lo = hi
            await asyncio.sleep(0)

    async def compact_window(self) -> None:
        """Compact so that only the last `compact_window` revisions of history remain.
        The API server calls this periodically."""
        target = self._rev - self._window
        if target > self._compacted:
            await self.compact(target)

    async def close(self) -> None:
        """End all watches and close the file; later calls raise RuntimeError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._broadcaster.close()
        self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    def row_count(self) -> int:
        """Rows in the revision log (live values plus kept history); for tests and stats."""
        self._check_open()
        return int(self._db.execute("SELECT count(*) FROM log").fetchone()[0])


class _Tx:
    """`with` block = one IMMEDIATE transaction: committed on success, rolled back on any
    exception (including the KeyExists/KeyNotFound/RevisionMismatch raised inside)."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException:
                # e.g. disk full or I/O error: leave no transaction open behind us.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        self._db.execute("ROLLBACK")
