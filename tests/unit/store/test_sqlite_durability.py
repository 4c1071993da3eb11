"""SqliteStore durability: state survives reopen and SIGKILL; compaction persists and frees
history. Everything lives in tmp_path; the crash test's child process is always reaped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from svcnet.store.interface import Compacted
from svcnet.store.sqlite import SqliteStore

P = "/registry/services/default/"


async def test_reopen_keeps_objects_and_revisions(tmp_path: Path) -> None:
    path = str(tmp_path / "data" / "state.db")  # the directory is created on open
    store = SqliteStore.open(path)
    kvs = {}
    for i in range(30):
        kv = await store.create(f"{P}s{i}", b"v%d" % i)
        kvs[kv.key] = kv
    kvs[P + "s0"] = await store.update(P + "s0", b"changed", 0)
    await store.delete(P + "s1")
    del kvs[P + "s1"]
    before = await store.current_revision()
    await store.close()

    store = SqliteStore.open(path)
    try:
        assert await store.current_revision() >= before
        items, rev = await store.list(P)
        assert {kv.key: kv for kv in items} == kvs and rev >= before
        new = await store.create(P + "after", b"x")
        assert new.mod_revision > before
        # history survives too: a watch from an old revision replays it
        w = store.watch(P, before - 1)
        ev = await asyncio.wait_for(w.__anext__(), 5)
        assert (ev.type, ev.kv.key) == ("DELETED", P + "s1")
        await w.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_revision_never_reused_after_compacting_newest_rows(tmp_path: Path) -> None:
    """The last write is a delete, so after compaction no row holds the highest revision;
    the revision must still not go back after reopen."""
    path = str(tmp_path / "state.db")
    store = SqliteStore.open(path)
    await store.create(P + "a", b"x")
    tomb = await store.delete(P + "a")
    await store.compact(tomb.mod_revision)
    assert store.row_count() == 0
    await store.close()
    store = SqliteStore.open(path)
    try:
        assert await store.current_revision() == tomb.mod_revision
        assert (await store.create(P + "a", b"y")).mod_revision == tomb.mod_revision + 1
    finally:
        await store.close()


async def test_compaction_persists_and_frees_history(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = SqliteStore.open(path, compact_window=10)
    for i in range(50):
        await store.create(f"{P}k{i}", b"x")
        await store.update(f"{P}k{i}", b"y", 0)
    for i in range(0, 50, 2):
        await store.delete(f"{P}k{i}")
    assert store.row_count() == 125
    await store.compact_window()
    target = await store.current_revision() - 10
    assert await store.compacted_revision() == target
    # kept: one live row per remaining key (25) plus the rows after the target (10)
    assert store.row_count() == 35
    await store.close()

    store = SqliteStore.open(path, compact_window=10)
    try:
        assert await store.compacted_revision() == target
        with pytest.raises(Compacted):
            await store.watch(P, target - 1).__anext__()
        assert await store.count(P) == 25
        assert all(kv.value == b"y" for kv in (await store.list(P))[0])
    finally:
        await store.close()


_CHILD = r"""
import asyncio, sys, time
from svcnet.store.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore.open(sys.argv[1])
    deadline = time.monotonic() + 60  # never outlive a test that forgot us
    i = 0
    while time.monotonic() < deadline:
        kv = await store.create(f"/registry/crash/k{i:07d}", b"payload-%d" % i)
        # acknowledge only after create() returned, as the API server answers a client
        print(kv.key, kv.mod_revision, flush=True)
        i += 1

asyncio.run(main())
"""


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while len(acked) < 400 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            key, rev = line.split()
            acked[key] = int(rev)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is still writing
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    assert len(acked) >= 400, f"child acknowledged only {len(acked)} writes: {err}"
    assert proc.returncode == -signal.SIGKILL

    async def check() -> None:
        store = SqliteStore.open(path)
        try:
            for key, rev in acked.items():
                kv = await store.get(key)
                assert kv is not None, f"acknowledged {key} lost"
                assert kv.mod_revision == rev
            assert await store.current_revision() >= max(acked.values())
            kv = await store.create("/registry/crash/after", b"x")
            assert kv.mod_revision > max(acked.values())
        finally:
            await store.close()

    asyncio.run(check())
