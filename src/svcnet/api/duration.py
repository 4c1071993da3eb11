"""Human-readable ages, exactly as Kubernetes prints them (`5m`, `7h59m`, `2d3h`, `3y10d`).

kubectl prints the Age cells the server puts into a Table without recomputing them, so the
strings must be byte-for-byte those of apimachinery's `pkg/util/duration.HumanDuration`
(reference/apiserver.md §2.4), and a missing or zero timestamp must print `<unknown>` like
the printers' `translateTimestampSince`.

Arithmetic is done on integer nanoseconds, as Go's `time.Duration` does, so boundaries such as
119.9s → `119s` and 120s → `2m` fall exactly where Go puts them (Go truncates toward zero).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["age", "human_duration", "human_duration_ns", "parse_time", "since"]

_NS_PER_SECOND = 1_000_000_000
_NS_PER_MINUTE = 60 * _NS_PER_SECOND
_NS_PER_HOUR = 60 * _NS_PER_MINUTE

# Go's zero `time.Time` as it appears in JSON; `metav1.Time.IsZero()` treats it as unset.
_ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero (Go semantics), for positive `b`."""
    q = abs(a) // b
    return q if a >= 0 else -q


def human_duration_ns(ns: int) -> str:
    """HumanDuration of a duration given in integer nanoseconds.

    Rules, in order: below -1s `<invalid>` (more than the tolerated clock skew), otherwise
    negative `0s`; <120s `Ns`; <10m `Mm` or `MmSs`; <3h `Mm`; <8h `Hh` or `HhMm`; <48h `Hh`;
    <8d `Dd` or `DdHh`; <2y `Dd`; <8y `Yy` or `YyDd`; else `Yy` (a year is 365 days).
    """
    seconds = _trunc_div(ns, _NS_PER_SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = ns // _NS_PER_MINUTE
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = ns // _NS_PER_HOUR
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def human_duration(seconds: float) -> str:
    """HumanDuration of `seconds` (may be fractional or negative); see `human_duration_ns`."""
    ns = seconds * _NS_PER_SECOND if isinstance(seconds, int) else round(seconds * 1e9)
    return human_duration_ns(int(ns))


def parse_time(timestamp: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp (`2025-01-01T00:00:00Z`, optional fraction or offset).

    Returns an aware datetime, or None when the value is missing, empty, unparsable or Go's
    zero time — all the cases where Kubernetes' printers consider the timestamp unset.
    A timestamp without an offset is taken as UTC.
    """
    if not timestamp or not isinstance(timestamp, str):
        return None
    try:
        t = datetime.fromisoformat(timestamp.strip().upper())
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    if t == _ZERO_TIME:
        return None
    return t


def _as_aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


def since(t: datetime | None, now: datetime) -> str:
    """HumanDuration of `now - t`, or `<unknown>` when `t` is None (unset timestamp)."""
    if t is None:
        return "<unknown>"
    delta: timedelta = _as_aware(now) - t
    ns = ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000
    return human_duration_ns(ns)


def age(timestamp: str | None, now: datetime) -> str:
    """The Age cell for an RFC 3339 `timestamp` at time `now`.

    `<unknown>` when the timestamp is missing (as kubectl/the printers print a zero time).
    A naive `now` is taken as UTC.
    """
    return since(parse_time(timestamp), now)
