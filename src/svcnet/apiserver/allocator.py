"""Range allocators for Service cluster IPs and node ports (pure, in-memory).

Both follow Kubernetes' bitmap allocators (reference/apiserver.md §5.5): a range split
into a low "static" band, kept for addresses users choose by hand, and an upper band that
automatic picks come from (falling back to the low band when the upper one is full), each
pick starting at a random offset so concurrent clusters don't march in step.

State lives only in memory: the stored Services are the source of truth, and `rebuild`
derives the allocator state from them at start, so a crash can never leave the two apart.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field


@dataclass
class RangeAllocator:
    """Integers 0..size-1; `offset` is the size of the static (low) band."""

    size: int
    offset: int
    rng: random.Random = field(default_factory=random.Random)
    used: set[int] = field(default_factory=set)

    def allocate(self, i: int) -> bool:
        """Reserve `i`; False if it is taken. `i` must be within range."""
        if i in self.used:
            return False
        self.used.add(i)
        return True

    def _scan(self, lo: int, hi: int) -> int | None:
        span = hi - lo
        if span <= 0:
            return None
        start = self.rng.randrange(span)
        for step in range(span):
            i = lo + (start + step) % span
            if i not in self.used:
                return i
        return None

    def allocate_next(self) -> int | None:
        """Reserve a free integer from the upper band, else the low band; None if full."""
        i = self._scan(self.offset, self.size)
        if i is None:
            i = self._scan(0, self.offset)
        if i is not None:
            self.used.add(i)
        return i

    def release(self, i: int) -> None:
        self.used.discard(i)


def static_band(size: int, lo: int, hi: int, divisor: int) -> int:
    """Kubernetes' static band size: min(max(lo, size/divisor), hi), 0 for tiny ranges."""
    if size <= lo:
        return 0
    return min(max(lo, size // divisor), hi)


class IPAllocator:
    """Addresses of a service CIDR, minus the network (and broadcast) address."""

    def __init__(self, cidr: str, rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=True)
        total = self.network.num_addresses
        size = total - 2 if self.network.version == 4 else min(total - 1, 65536)
        if size <= 0:
            raise ValueError(f"service CIDR {cidr} is too small")
        self.base = int(self.network.network_address) + 1
        # Kubernetes sizes the static band from the whole CIDR, not the usable addresses.
        band = static_band(min(total, 1 << 32), 16, 256, 16)
        self.range = RangeAllocator(size, min(band, size), rng or random.Random())

    @property
    def cidr(self) -> str:
        return str(self.network)

    def _index(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        i = int(addr) - self.base
        if addr.version != self.network.version or not 0 <= i < self.range.size:
            return None
        return i

    def contains(self, ip: str) -> bool:
        return self._index(ip) is not None

    def allocate(self, ip: str) -> str | None:
        """Reserve `ip`: None on success, else the reason (Kubernetes' wording)."""
        i = self._index(ip)
        if i is None:
            return (f"the provided IP ({ip}) is not in the valid range. The range of valid IPs "
                    f"is {self.cidr}")
        if not self.range.allocate(i):
            return "provided IP is already allocated"
        return None

    def allocate_next(self) -> str | None:
        i = self.range.allocate_next()
        return None if i is None else str(ipaddress.ip_address(self.base + i))

    def release(self, ip: str) -> None:
        i = self._index(ip)
        if i is not None:
            self.range.release(i)

    def allocated(self) -> list[str]:
        return [str(ipaddress.ip_address(self.base + i)) for i in sorted(self.range.used)]


class PortAllocator:
    """Node ports of a range like 30000-32767."""

    def __init__(self, first: int, last: int, rng: random.Random | None = None) -> None:
        if not 0 < first <= last <= 65535:
            raise ValueError(f"invalid port range {first}-{last}")
        self.first, self.last = first, last
        size = last - first + 1
        self.range = RangeAllocator(size, static_band(size, 16, 128, 32), rng or random.Random())

    @property
    def text(self) -> str:
        return f"{self.first}-{self.last}"

    def allocate(self, port: int) -> str | None:
        """Reserve `port`: None on success, else the reason (Kubernetes' wording)."""
        if not self.first <= port <= self.last:
            return (f"provided port is not in the valid range. The range of valid ports is "
                    f"{self.text}")
        if not self.range.allocate(port - self.first):
            return "provided port is already allocated"
        return None

    def allocate_next(self) -> int | None:
        i = self.range.allocate_next()
        return None if i is None else self.first + i

    def release(self, port: int) -> None:
        if self.first <= port <= self.last:
            self.range.release(port - self.first)

    def allocated(self) -> list[int]:
        return [self.first + i for i in sorted(self.range.used)]


def parse_port_range(text: str) -> tuple[int, int]:
    """"30000-32767" (or a single port) -> (first, last); ValueError with the reason."""
    lo, sep, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi if sep else lo)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: expected FIRST-LAST") from None
    if not 0 < first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}: expected 1 <= FIRST <= LAST <= 65535")
    return first, last
