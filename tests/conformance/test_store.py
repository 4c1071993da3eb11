"""Conformance suite for the Store protocol: every backend must pass all of it.

Each test gets a fresh store from `open_store` for each backend (sqlite in tmp_path).
Watch tests bound every wait with a timeout so a lost event fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from svcnet.store import watch as watchmod
from svcnet.store.factory import open_store
from svcnet.store.interface import (KV, Compacted, Event, KeyExists, KeyNotFound,
                                    RevisionMismatch, Store)
from svcnet.store.memory import MemoryStore
from svcnet.store.sqlite import SqliteStore
from svcnet.store.watch import WatchOverflow

BACKENDS = ["memory", "sqlite"]
P = "/registry/services/"
MakeStore = Callable[..., Awaitable[Store]]


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Opens stores of the parametrized backend with extra options; closes them after."""
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        if not options:
            s = await open_store(request.param, str(tmp_path / f"d{len(opened)}"))
        elif request.param == "sqlite":
            s = SqliteStore.open(str(tmp_path / f"d{len(opened)}" / "state.db"), **options)
        else:
            s = MemoryStore(**options)
        opened.append(s)
        return s

    yield make
    for s in opened:
        await s.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


async def take(it: AsyncIterator[Event], n: int, timeout: float = 5.0) -> list[Event]:
    """The next `n` events of a watch, failing after `timeout` seconds."""
    async def run() -> list[Event]:
        return [await it.__anext__() for _ in range(n)]
    return await asyncio.wait_for(run(), timeout)


async def assert_quiet(it: AsyncIterator[Event], wait: float = 0.05) -> None:
    """No further event arrives within `wait` seconds."""
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(it.__anext__(), wait)


# --- create / get / update / delete ----------------------------------------------------------

async def test_create_and_get(store: Store) -> None:
    assert await store.get(P + "a") is None
    kv = await store.create(P + "a", b"one")
    assert kv == KV(P + "a", b"one", kv.mod_revision, kv.mod_revision)
    assert kv.mod_revision >= 1
    assert await store.get(P + "a") == kv
    with pytest.raises(KeyExists) as e:
        await store.create(P + "a", b"two")
    assert e.value.key == P + "a"
    assert await store.get(P + "a") == kv
    assert await store.current_revision() == kv.mod_revision


async def test_update_checks_expected_revision(store: Store) -> None:
    kv1 = await store.create(P + "a", b"1")
    kv2 = await store.update(P + "a", b"2", kv1.mod_revision)
    assert (kv2.value, kv2.create_revision) == (b"2", kv1.create_revision)
    assert kv2.mod_revision > kv1.mod_revision
    with pytest.raises(RevisionMismatch) as e:
        await store.update(P + "a", b"stale", kv1.mod_revision)
    assert e.value.current == kv2 and e.value.key == P + "a"
    kv3 = await store.update(P + "a", b"3", 0)  # 0 = unconditional
    assert kv3.mod_revision > kv2.mod_revision and kv3.create_revision == kv1.create_revision
    assert await store.get(P + "a") == kv3
    with pytest.raises(KeyNotFound):
        await store.update(P + "missing", b"x", 0)
    assert await store.current_revision() == kv3.mod_revision  # failed writes use no revision


async def test_delete_tombstone_and_recreate(store: Store) -> None:
    kv1 = await store.create(P + "a", b"v")
    with pytest.raises(RevisionMismatch):
        await store.delete(P + "a", kv1.mod_revision + 100)
    tomb = await store.delete(P + "a", kv1.mod_revision)
    assert tomb == KV(P + "a", b"v", kv1.create_revision, tomb.mod_revision)
    assert tomb.mod_revision > kv1.mod_revision
    assert await store.get(P + "a") is None
    with pytest.raises(KeyNotFound):
        await store.delete(P + "a")
    with pytest.raises(KeyNotFound):
        await store.update(P + "a", b"x", 0)
    again = await store.create(P + "a", b"new")
    assert again.create_revision == again.mod_revision > tomb.mod_revision
    assert (await store.delete(P + "a")).value == b"new"  # expected 0 = unconditional


async def test_revisions_strictly_increase_across_keys(store: Store) -> None:
    revs = []
    for i in range(20):
        revs.append((await store.create(f"{P}k{i % 7}-{i}", b"x")).mod_revision)
        revs.append((await store.update(f"{P}k{i % 7}-{i}", b"y", 0)).mod_revision)
        if i % 3 == 0:
            revs.append((await store.delete(f"{P}k{i % 7}-{i}")).mod_revision)
    assert revs == sorted(set(revs))
    assert await store.current_revision() == revs[-1]


# --- list / count ----------------------------------------------------------------------------

async def test_list_prefix_sorted_with_revision(store: Store) -> None:
    for name in ["c", "a", "b", "d"]:
        await store.create(P + "ns1/" + name, name.encode())
    await store.create("/registry/pods/ns1/a", b"pod")
    await store.delete(P + "ns1/d")
    items, rev = await store.list(P)
    assert [kv.key for kv in items] == [P + "ns1/a", P + "ns1/b", P + "ns1/c"]
    assert [kv.value for kv in items] == [b"a", b"b", b"c"]
    assert rev == await store.current_revision()
    assert (await store.list("/registry/nothing/")) == ([], rev)
    everything, _ = await store.list("")
    assert len(everything) == 4


async def test_list_pagination(store: Store) -> None:
    names = [f"{P}ns/{i:03d}" for i in range(25)]
    for n in names:
        await store.create(n, b"x")
    seen: list[str] = []
    start = ""
    revs = set()
    while True:
        page, rev = await store.list(P, start_after=start, limit=10)
        revs.add(rev)
        seen += [kv.key for kv in page]
        if len(page) < 10:
            break
        start = page[-1].key
    assert seen == names and len(revs) == 1
    page, _ = await store.list(P, start_after=names[23])
    assert [kv.key for kv in page] == [names[24]]
    # start_after below the prefix does not widen the range
    page, _ = await store.list(P, start_after="/a", limit=2)
    assert [kv.key for kv in page] == names[:2]


async def test_prefix_isolation(store: Store) -> None:
    await store.create(P + "a/x", b"1")
    await store.create(P + "ab/x", b"2")
    await store.create(P + "a", b"3")
    items, _ = await store.list(P + "a/")
    assert [kv.key for kv in items] == [P + "a/x"]
    assert await store.count(P + "a/") == 1
    assert await store.count(P) == 3


async def test_count(store: Store) -> None:
    assert await store.count(P) == 0
    for i in range(5):
        await store.create(f"{P}{i}", b"x")
    await store.create("/registry/pods/x", b"x")
    await store.delete(f"{P}2")
    assert await store.count(P) == 4
    assert await store.count("") == 5


# --- watch -----------------------------------------------------------------------------------

async def test_watch_from_current_sees_later_writes(store: Store) -> None:
    await store.create(P + "old", b"0")
    w = store.watch(P, await store.current_revision())
    first = asyncio.ensure_future(take(w, 3))
    await asyncio.sleep(0)
    a = await store.create(P + "a", b"1")
    b = await store.update(P + "a", b"2", a.mod_revision)
    c = await store.delete(P + "a")
    evs = await first
    assert [e.type for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e.kv for e in evs] == [a, b, c]
    assert [e.prev for e in evs] == [None, a, b]
    await assert_quiet(w)
    await w.aclose()  # type: ignore[attr-defined]


async def test_watch_replays_history_then_continues_live(store: Store) -> None:
    start = await store.current_revision()
    a = await store.create(P + "a", b"1")
    b = await store.update(P + "a", b"2", 0)
    w = store.watch(P, start)
    evs = await take(w, 2)
    assert [(e.type, e.kv, e.prev) for e in evs] == [("ADDED", a, None), ("MODIFIED", b, a)]
    c = await store.delete(P + "a")
    (ev,) = await take(w, 1)
    assert (ev.type, ev.kv, ev.prev) == ("DELETED", c, b)
    await assert_quiet(w)
    # from a middle revision: only what came after it
    w2 = store.watch(P, a.mod_revision)
    assert [e.kv.mod_revision for e in await take(w2, 2)] == [b.mod_revision, c.mod_revision]
    await assert_quiet(w2)
    await w.aclose()  # type: ignore[attr-defined]
    await w2.aclose()  # type: ignore[attr-defined]


async def test_watch_start_races_writes_without_gap_or_duplicate(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Watchers start (from old revisions) while a writer runs; each must see exactly the
    revisions after its start. A tiny replay page makes the replay cross many pages."""
    monkeypatch.setattr(watchmod, "REPLAY_PAGE", 7)
    total = 300
    for i in range(50):
        await store.create(f"{P}pre{i}", b"x")
    final = await store.current_revision() + 2 * total

    async def writer() -> None:
        for i in range(total):
            kv = await store.create(f"{P}k{i}", b"x")
            await store.update(kv.key, b"y", kv.mod_revision)
            await asyncio.sleep(0)

    async def watcher(from_rev: int) -> list[int]:
        got: list[int] = []
        w = store.watch(P, from_rev)
        async for ev in w:
            got.append(ev.kv.mod_revision)
            if got[-1] >= final:
                break
        await w.aclose()  # type: ignore[attr-defined]
        return got

    task = asyncio.create_task(writer())
    watchers = []
    for start in (0, 10, 49):
        watchers.append((start, asyncio.create_task(watcher(start))))
        for _ in range(20):
            await asyncio.sleep(0)
    mid = await store.current_revision() - 5
    watchers.append((mid, asyncio.create_task(watcher(mid))))
    await asyncio.wait_for(task, 30)
    assert await store.current_revision() == final
    for start, t in watchers:
        got = await asyncio.wait_for(t, 30)
        assert got == list(range(start + 1, final + 1)), f"watch from {start}"


async def test_watch_prefix_filtering(store: Store) -> None:
    w = store.watch(P + "a/", 0)
    await store.create(P + "ab/x", b"no")
    await store.create("/registry/pods/a/x", b"no")
    mine = await store.create(P + "a/x", b"yes")
    await store.create(P + "a", b"no")
    (ev,) = await take(w, 1)
    assert ev.kv == mine
    await assert_quiet(w)
    all_w = store.watch("", 0)
    assert len(await take(all_w, 4)) == 4
    await w.aclose()  # type: ignore[attr-defined]
    await all_w.aclose()  # type: ignore[attr-defined]


async def test_many_concurrent_watchers_get_every_event_fast(store: Store) -> None:
    n_watchers, n_events = 100, 20
    rev0 = await store.current_revision()
    written: dict[int, float] = {}
    latencies: list[float] = []

    async def watcher() -> list[int]:
        got: list[int] = []
        w = store.watch(P, rev0)
        async for ev in w:
            if ev.kv.key != P + "ready":
                latencies.append(time.perf_counter() - written[ev.kv.mod_revision])
            got.append(ev.kv.mod_revision)
            if len(got) == n_events + 1:
                break
        await w.aclose()  # type: ignore[attr-defined]
        return got

    tasks = [asyncio.create_task(watcher()) for _ in range(n_watchers)]
    await asyncio.sleep(0.05)  # let all of them subscribe
    revs = [(await store.create(P + "ready", b"")).mod_revision]
    for i in range(n_events):
        await asyncio.sleep(0.002)
        t = time.perf_counter()
        kv = await store.create(f"{P}e{i}", b"x")
        written[kv.mod_revision] = t
        revs.append(kv.mod_revision)
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert all(r == revs for r in results)
    assert len(latencies) == n_watchers * n_events
    # "within a few ms": generous bounds so a loaded CI machine does not flake
    assert statistics.median(latencies) < 0.02, statistics.median(latencies)
    assert max(latencies) < 0.25, max(latencies)


async def test_watch_aclose_releases_subscription(store: Store) -> None:
    bc = getattr(store, "_broadcaster", None)
    if bc is None:
        pytest.skip("backend has no in-process broadcaster")
    w = store.watch(P, 0)
    await store.create(P + "a", b"x")
    await take(w, 1)
    assert bc.watcher_count() == 1
    await w.aclose()  # type: ignore[attr-defined]
    assert bc.watcher_count() == 0


async def test_slow_watcher_overflows_without_blocking_writers(make_store: MakeStore) -> None:
    store = await make_store(watch_buffer=10)
    w = store.watch(P, 0)
    await store.create(P + "first", b"x")
    await take(w, 1)  # now live and subscribed
    for i in range(11):  # one more than the buffer holds; no write may block
        await asyncio.wait_for(store.create(f"{P}k{i}", b"x"), 1)
    with pytest.raises(WatchOverflow):
        await take(w, 1)
    # a fresh watch from the last delivered revision resumes without loss
    w2 = store.watch(P, 1)
    assert [e.kv.key for e in await take(w2, 11)] == [f"{P}k{i}" for i in range(11)]
    await w2.aclose()  # type: ignore[attr-defined]


# --- compaction ------------------------------------------------------------------------------

async def test_compaction(store: Store) -> None:
    a1 = await store.create(P + "a", b"a1")
    await store.create(P + "b", b"b")
    await store.delete(P + "b")
    c = await store.create(P + "c", b"c")
    a2 = await store.update(P + "a", b"a2", 0)
    r = c.mod_revision
    assert await store.compacted_revision() == 0
    await store.compact(r)
    assert await store.compacted_revision() == r
    for old in (0, r - 1):
        with pytest.raises(Compacted) as e:
            await take(store.watch(P, old), 1)
        assert (e.value.requested, e.value.compacted) == (old, r)
    # from the compaction point: the later update, with its previous value intact
    w = store.watch(P, r)
    (ev,) = await take(w, 1)
    assert (ev.type, ev.kv, ev.prev) == ("MODIFIED", a2, a1)
    d = await store.create(P + "d", b"d")
    assert (await take(w, 1))[0].kv == d
    await w.aclose()  # type: ignore[attr-defined]
    # live values are untouched
    items, _ = await store.list(P)
    assert items == [a2, c, d]
    assert await store.get(P + "b") is None
    await store.compact(r - 1)  # older than the current point: no-op
    assert await store.compacted_revision() == r
    with pytest.raises(ValueError):
        await store.compact(await store.current_revision() + 1)
    # compacting everything keeps every live value and their create revisions
    await store.compact(await store.current_revision())
    assert (await store.list(P))[0] == [a2, c, d]
    tomb = await store.delete(P + "a")
    assert tomb.create_revision == a1.create_revision


async def test_compaction_during_replay_raises_compacted(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchmod, "REPLAY_PAGE", 5)
    for i in range(20):
        await store.update(P + "a", b"%d" % i, 0) if i else await store.create(P + "a", b"0")
    w = store.watch(P, 0)
    got = [e.kv.mod_revision for e in await take(w, 3)]
    await store.compact(await store.current_revision())
    with pytest.raises(Compacted):
        async for ev in w:  # the rest of the fetched page, then Compacted
            got.append(ev.kv.mod_revision)
    assert got == list(range(1, len(got) + 1)) and len(got) < 20


async def test_compact_window_keeps_last_revisions(make_store: MakeStore) -> None:
    store = await make_store(compact_window=5)
    compact_window = getattr(store, "compact_window")
    await compact_window()  # nothing to do yet
    assert await store.compacted_revision() == 0
    for i in range(20):
        await store.update(P + "a", b"%d" % i, 0) if i else await store.create(P + "a", b"0")
    await compact_window()
    cur = await store.current_revision()
    assert await store.compacted_revision() == cur - 5
    w = store.watch(P, cur - 5)
    assert [e.kv.mod_revision for e in await take(w, 5)] == list(range(cur - 4, cur + 1))
    await w.aclose()  # type: ignore[attr-defined]
    assert (await store.get(P + "a")) is not None


# --- close -----------------------------------------------------------------------------------

async def test_close_ends_watches(store: Store) -> None:
    watches = [store.watch(P, 0) for _ in range(3)]
    await store.create(P + "a", b"x")
    for w in watches:
        await take(w, 1)
    pending = [asyncio.ensure_future(w.__anext__()) for w in watches]
    await asyncio.sleep(0.01)
    await store.close()
    for p in pending:
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(p, 2)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(store.watch(P, 0).__anext__(), 2)
    await store.close()  # idempotent


async def test_open_store_rejects_unknown_datastore(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='unknown datastore "etcd": supported: sqlite, memory'):
        await open_store("etcd", str(tmp_path))
