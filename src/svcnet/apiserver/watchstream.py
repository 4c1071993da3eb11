"""Serving a watch: a chunked stream of `{"type": ..., "object": ...}\\n` lines.

Semantics (reference/apiserver.md §4): without resourceVersion (or "0") the stream starts
with synthetic ADDED events for the current state, then changes; with resourceVersion N
only changes after N. A too-old N is answered inside the stream as an ERROR event with a
410 Expired Status (clients relist). `allowWatchBookmarks` adds BOOKMARK events;
`timeoutSeconds` ends the stream. For Table watches (kubectl get -w) each object is a
one-row Table, with column definitions only in the first event.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import orjson
from aiohttp import web

from svcnet.api import errors, printers
from svcnet.apiserver.paths import ResourcePath
from svcnet.apiserver.registry import Registry, WatchEvent
from svcnet.apiserver.request import ListOptions, wants_table

BOOKMARK_INTERVAL = 30.0  # seconds between bookmarks (kube sends about one a minute)
POLL = 5.0  # how often an idle stream checks that its client is still there
DEFAULT_TIMEOUT = (1800, 3600)  # server-chosen watch length when the client sets none


async def _events(registry: Registry, rp: ResourcePath, opts: ListOptions,
                  ) -> tuple[list[WatchEvent], int]:
    """Initial synthetic events and the revision to watch from."""
    rv = opts.resource_version
    if rv not in ("", "0"):
        try:
            start = int(rv)
        except ValueError:
            raise errors.bad_request(f'invalid resourceVersion: "{rv}"') from None
        return [], start
    res = await registry.list(rp.kind, rp.namespace, labels=opts.labels, fields=opts.fields)
    initial = [WatchEvent("ADDED", o, int(o["metadata"]["resourceVersion"])) for o in res.items]
    return initial, res.resource_version


async def serve_watch(request: web.Request, registry: Registry, rp: ResourcePath,
                      opts: ListOptions) -> web.StreamResponse:
    kind = rp.kind
    table = wants_table(request.headers.get("Accept"))
    if rp.name is not None:
        raise errors.bad_request("watch of a single object is addressed by the collection with "
                                 "fieldSelector=metadata.name=<name>")
    initial, start = await _events(registry, rp, opts)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    headers_sent = False

    def encode(ev_type: str, obj: dict[str, Any]) -> bytes:
        nonlocal headers_sent
        if table and ev_type in ("ADDED", "MODIFIED", "DELETED"):
            obj = printers.table(kind, [obj], datetime.now(timezone.utc),
                                 include_object=opts.include_object, no_headers=headers_sent,
                                 list_meta={"resourceVersion": obj["metadata"].get(
                                     "resourceVersion", "")})
            headers_sent = True
        return orjson.dumps({"type": ev_type, "object": obj}) + b"\n"

    timeout = opts.timeout_seconds if opts.timeout_seconds is not None else \
        random.randint(*DEFAULT_TIMEOUT)
    deadline = time.monotonic() + timeout
    last_rv = start
    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
    stream: AsyncIterator[WatchEvent] = registry.watch(kind, rp.namespace, start,
                                                       labels=opts.labels, fields=opts.fields)
    pending: asyncio.Task[WatchEvent] | None = None
    try:
        for ev in initial:
            await resp.write(encode(ev.type, ev.obj))
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if pending is None:
                pending = asyncio.ensure_future(stream.__anext__())
            wait = min(deadline, next_bookmark if opts.bookmarks else now + POLL, now + POLL) - now
            done, _ = await asyncio.wait({pending}, timeout=max(wait, 0.0))
            if done:
                task, pending = pending, None
                try:
                    ev = task.result()
                except StopAsyncIteration:
                    break
                except errors.StatusError as e:
                    await resp.write(orjson.dumps({"type": "ERROR", "object": e.status()}) + b"\n")
                    break
                last_rv = ev.revision
                await resp.write(encode(ev.type, ev.obj))
                continue
            if request.transport is None or request.transport.is_closing():
                break
            if opts.bookmarks and time.monotonic() >= next_bookmark:
                bookmark = {"kind": kind.kind, "apiVersion": kind.api_version,
                            "metadata": {"resourceVersion": str(last_rv)}}
                await resp.write(orjson.dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n")
                next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration, Exception):
                pass
        await stream.aclose()  # type: ignore[attr-defined]
    try:
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    return resp
