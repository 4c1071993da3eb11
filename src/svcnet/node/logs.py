"""Reading CRI-format container logs the way `kubectl logs` prints them.

A CRI log line is `<RFC3339Nano> <stdout|stderr> <F|P> <content>`; `P` marks a part of a
long line that continues in the next record. `Renderer` (pure) turns records into the
bytes kubectl prints: the content of each full line plus a newline, prefixed with the
timestamp when `--timestamps` is asked for. `stream_log(...)` adds the file edge: `--tail`,
and `--follow`, which polls the file until the attempt is over and its log is drained
(polling, not inotify, because the file is local and 100 ms latency is what users expect
from `kubectl logs -f` anyway).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

FOLLOW_POLL_SECONDS = 0.1


class LogsError(LookupError):
    """The logs asked for do not exist (the message is what kubectl shows)."""


@dataclass(frozen=True)
class LogRecord:
    """One parsed CRI log line."""

    timestamp: str
    stream: str
    partial: bool
    content: bytes


def parse_record(raw: bytes) -> LogRecord | None:
    """Parse one CRI log line (without its newline); None for a malformed line."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3 or parts[2] not in (b"F", b"P"):
        return None
    return LogRecord(parts[0].decode(errors="replace"), parts[1].decode(errors="replace"),
                     parts[2] == b"P", parts[3] if len(parts) == 4 else b"")


class Renderer:
    """Joins partial records per stream and renders full lines (stateful across chunks,
    so a follow can feed records as they arrive)."""

    def __init__(self, timestamps: bool) -> None:
        self.timestamps = timestamps
        self._parts: dict[str, tuple[str, bytearray]] = {}

    def feed(self, record: LogRecord) -> bytes | None:
        """The printed line completed by `record`, or None if it is a partial one."""
        ts, buf = self._parts.pop(record.stream, (record.timestamp, bytearray()))
        buf += record.content
        if record.partial:
            self._parts[record.stream] = (ts, buf)
            return None
        prefix = f"{ts} ".encode() if self.timestamps else b""
        return prefix + bytes(buf) + b"\n"


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of `data` and the unterminated rest (a record still being written)."""
    *lines, rest = data.split(b"\n")
    return lines, rest


async def stream_log(path: Path, *, follow: bool, tail: int | None, timestamps: bool,
                     finished: Callable[[], bool]) -> AsyncIterator[bytes]:
    """Yield printed lines of the log at `path`.

    `tail` keeps only the last N lines of what is already there (None or negative: all).
    With `follow`, keep yielding new lines until `finished()` is true and the file holds no
    more complete lines, or the consumer stops iterating."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    offset = len(data)
    raw, rest = _split(data)
    offset -= len(rest)
    renderer = Renderer(timestamps)
    lines = [line for line in (renderer.feed(r) for r in map(parse_record, raw) if r)
             if line is not None]
    if tail is not None and tail >= 0:
        lines = lines[len(lines) - tail:] if tail else []
    for line in lines:
        yield line
    if not follow:
        return
    while True:
        over = finished()  # sample BEFORE reading, so the final read sees everything
        try:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        raw, rest = _split(chunk)
        offset += len(chunk) - len(rest)
        for r in raw:
            record = parse_record(r)
            printed = renderer.feed(record) if record else None
            if printed is not None:
                yield printed
        if over and not raw:
            return
        if not raw:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
