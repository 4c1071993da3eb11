"""Watch machinery shared by the store backends: fan-out, replay, live switch.

Every write happens in this process, on the event loop thread, and commits synchronously.
A backend therefore publishes each committed write to its `Broadcaster` right after the
commit, with no `await` in between, so the broadcaster sees events exactly in revision order
and never misses one. No polling is involved.

A watch from revision R (`follow`) must yield every event under its prefix with revision
> R exactly once, in order, even while writes race its start. It does so in three steps:

1. subscribe to live events first; from now on each matching event is buffered;
2. replay history with revision > R from the backend's log, page by page;
3. drain the buffer, skipping revisions that the replay already yielded.

Any write is either committed before the last history page was read (so it was replayed)
or after the subscription was made (so it is buffered); both if it falls in between, which
the skip in step 3 handles. Hence no gap and no duplicate.

Each subscription has a bounded buffer. A watcher that falls `limit` events behind is cut
off with `WatchOverflow` instead of making writers wait or memory grow without bound; the
caller ends its stream and the client re-watches from the last revision it saw, as
Kubernetes clients do after any watch ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator, Callable, Protocol

from svcnet.store.interface import Compacted, Event

#: Default bound of a watcher's buffer of undelivered live events.
DEFAULT_WATCH_BUFFER = 10_000

#: History rows fetched per query during replay. Paging bounds the memory and the time the
#: event loop spends in one query when a watch starts from far back.
REPLAY_PAGE = 1000


class WatchOverflow(Exception):
    """A watcher fell more than its buffer size behind the writers and was terminated.

    Raised from the watch iterator. The events yielded before it are correct; the caller
    should end the watch and let the client resume from the last revision it received."""

    def __init__(self, prefix: str, limit: int) -> None:
        super().__init__(f"watch of {prefix!r} fell more than {limit} events behind")
        self.prefix = prefix
        self.limit = limit


class HistoryReader(Protocol):
    """Backend hook for replay: up to `limit` events whose key starts with `prefix` and
    whose revision is > `after`, in revision order. Must be synchronous (no await) so that
    a page and the compaction check before it are atomic with respect to other coroutines."""

    def __call__(self, prefix: str, after: int, limit: int) -> list[Event]: ...


_OPEN, _OVERFLOWED, _CLOSED = 0, 1, 2


class Subscription:
    """One watcher's buffer of live events for keys under `prefix`.

    `push` is called synchronously by the broadcaster and never blocks; `get` is awaited by
    the single consumer."""

    __slots__ = ("prefix", "_limit", "_buf", "_waiter", "_state", "_owner")

    def __init__(self, owner: Broadcaster | None, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self._limit = limit
        self._buf: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._state = _OPEN if owner is not None else _CLOSED
        self._owner = owner

    def push(self, event: Event) -> None:
        if self._state != _OPEN:
            return
        if len(self._buf) >= self._limit:
            # Drop the backlog now: the consumer will only ever see WatchOverflow.
            self._state = _OVERFLOWED
            self._buf.clear()
            self._detach()
        else:
            self._buf.append(event)
        self._wake()

    async def get(self) -> Event | None:
        """The next buffered event, waiting for one; None once the subscription is closed.
        Raises WatchOverflow if the buffer overflowed."""
        while True:
            if self._state == _OVERFLOWED:
                raise WatchOverflow(self.prefix, self._limit)
            if self._state == _CLOSED:
                return None
            if self._buf:
                return self._buf.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Stop receiving; a pending or later `get` returns None. Idempotent."""
        if self._state == _OPEN:
            self._state = _CLOSED
        self._buf.clear()
        self._detach()
        self._wake()

    def _detach(self) -> None:
        if self._owner is not None:
            self._owner._remove(self)
            self._owner = None

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)


class Broadcaster:
    """Per-store fan-out of committed events to subscriptions, by key prefix.

    Subscriptions are grouped by prefix and looked up by slicing the event's key at each
    distinct prefix length in use, so a publish costs a few dict lookups plus one append per
    interested watcher, however many unrelated watchers exist."""

    def __init__(self, buffer: int = DEFAULT_WATCH_BUFFER) -> None:
        if buffer < 1:
            raise ValueError("watch buffer must be >= 1")
        self.buffer = buffer
        self._by_prefix: dict[str, set[Subscription]] = {}
        self._lengths: dict[int, int] = {}  # prefix length -> number of prefixes of it
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, prefix: str) -> Subscription:
        """A new subscription; already closed if the broadcaster is."""
        if self._closed:
            return Subscription(None, prefix, self.buffer)
        sub = Subscription(self, prefix, self.buffer)
        subs = self._by_prefix.get(prefix)
        if subs is None:
            subs = self._by_prefix[prefix] = set()
            self._lengths[len(prefix)] = self._lengths.get(len(prefix), 0) + 1
        subs.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        """Deliver a committed event. Call in revision order, synchronously after commit."""
        key = event.kv.key
        n = len(key)
        for length in tuple(self._lengths):
            if length > n:
                continue
            subs = self._by_prefix.get(key[:length])
            if subs:
                # Copy: a push may overflow a subscription, which removes it from `subs`.
                for sub in tuple(subs):
                    sub.push(event)

    def close(self) -> None:
        """End every subscription (their consumers see a clean end) and refuse new ones."""
        self._closed = True
        for subs in list(self._by_prefix.values()):
            for sub in tuple(subs):
                sub.close()
        self._by_prefix.clear()
        self._lengths.clear()

    def watcher_count(self) -> int:
        return sum(len(s) for s in self._by_prefix.values())

    def _remove(self, sub: Subscription) -> None:
        subs = self._by_prefix.get(sub.prefix)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._by_prefix[sub.prefix]
            length = len(sub.prefix)
            left = self._lengths[length] - 1
            if left:
                self._lengths[length] = left
            else:
                del self._lengths[length]


async def follow(broadcaster: Broadcaster, prefix: str, from_revision: int,
                 history: HistoryReader, compacted: Callable[[], int]) -> AsyncIterator[Event]:
    """The body of `Store.watch`: events under `prefix` with revision > `from_revision`,
    replayed from `history` and then live from `broadcaster` (see the module docstring).

    Being an async generator, nothing happens until the first iteration, which is where
    Compacted is raised if `from_revision` < `compacted()`. Compaction while a replay is
    paging also raises Compacted, since the rows not yet replayed may be gone. Ends cleanly
    when the broadcaster closes (store closed), raises WatchOverflow if the consumer lags."""
    sub = broadcaster.subscribe(prefix)
    try:
        cursor = from_revision
        page_size = REPLAY_PAGE  # read at call time so tests can shrink it
        while True:
            if broadcaster.closed:
                return  # the store is closed: its log may no longer be readable
            oldest = compacted()
            if cursor < oldest:
                raise Compacted(cursor, oldest)
            page = history(prefix, cursor, page_size)
            for event in page:
                cursor = event.kv.mod_revision
                yield event
                if broadcaster.closed:
                    return
            if len(page) < page_size:
                break
        while True:
            live = await sub.get()
            if live is None:
                return
            rev = live.kv.mod_revision
            if rev <= cursor:
                continue  # already yielded by the replay
            cursor = rev
            yield live
    finally:
        sub.close()
