"""What a Pod's resolver does with a name: the search-path walk, step by step (pure).

`kubectl exec ... -- nslookup mysql` hides the walk: with the kubelet's `ndots:5`, a name
with fewer than five dots is tried with every search domain first (`mysql.demo.svc.
cluster.local`, `mysql.svc.cluster.local`, ...), then as written; a name with five or more
dots (or a trailing dot) the other way round. Each try costs a query, usually an NXDOMAIN,
and external names pay for all of them (dns.md §4). `svcnet dns explain` replays the walk
against the cluster DNS so a user sees every candidate, what the server answered, and
where the resolver stopped.

`candidates` is glibc's order (res_search); `stop_index` is where glibc stops: at the
first answer with records. glibc goes on after NXDOMAIN and after NODATA (an empty
NOERROR), musl (Alpine) stops at the first answer that is not NXDOMAIN; both are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from svcnet.node.dnsconf import parse_resolv_conf

DEFAULT_NDOTS = 1  # glibc's default, when resolv.conf says nothing


@dataclass(frozen=True)
class ResolverConfig:
    """The parts of a resolv.conf that decide the walk, and how long each query may take
    (`timeout` seconds, `attempts` tries: glibc's defaults 5 and 2, and its caps)."""

    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    ndots: int
    timeout: float = 5.0
    attempts: int = 2

    @classmethod
    def from_text(cls, text: str) -> "ResolverConfig":
        servers, search, options = parse_resolv_conf(text)
        ndots, timeout, attempts = DEFAULT_NDOTS, 5.0, 2
        for opt in options:
            key, _, value = opt.partition(":")
            try:
                if key == "ndots":
                    ndots = max(0, min(15, int(value)))  # glibc caps at 15
                elif key == "timeout":
                    timeout = float(max(1, min(30, int(value))))
                elif key == "attempts":
                    attempts = max(1, min(5, int(value)))
            except ValueError:
                pass
        return cls(tuple(servers), tuple(search), ndots, timeout, attempts)


@dataclass(frozen=True)
class Step:
    """One query of the walk and what the server said (`rcode` as text, `answers` as the
    record texts of the answer section)."""

    name: str
    rcode: str
    answers: tuple[str, ...]

    @property
    def has_records(self) -> bool:
        return self.rcode == "NOERROR" and bool(self.answers)


def candidates(name: str, config: ResolverConfig) -> list[str]:
    """The fully qualified names glibc tries for `name`, in order (duplicates dropped)."""
    if not name or name == ".":
        raise ValueError("a name to look up is required")
    if name.endswith("."):
        return [name]
    absolute = f"{name}."
    searched = [f"{name}.{domain.strip('.')}." for domain in config.search if domain.strip(".")]
    order = [absolute, *searched] if name.count(".") >= config.ndots else [*searched, absolute]
    seen: set[str] = set()
    out = []
    for c in order:
        if c.lower() not in seen:
            seen.add(c.lower())
            out.append(c)
    return out


def stop_index(steps: Sequence[Step]) -> int | None:
    """The step at which glibc's resolver returns an address (None: the lookup fails)."""
    for i, step in enumerate(steps):
        if step.has_records:
            return i
    return None


def musl_stop_index(steps: Sequence[Step]) -> int | None:
    """Where musl stops: the first answer that is not NXDOMAIN (it may be empty or an error,
    which is why Alpine images fail lookups that glibc images resolve)."""
    for i, step in enumerate(steps):
        if step.rcode != "NXDOMAIN":
            return i
    return None


def render(name: str, qtype: str, config: ResolverConfig, server: str,
           steps: Sequence[Step]) -> str:
    """The report `svcnet dns explain` prints."""
    lines = [f"resolving {name} ({qtype}) as a Pod would: nameserver {server}, "
             f"search {' '.join(config.search) or '(none)'}, ndots:{config.ndots}"]
    dots = name.rstrip(".").count(".")
    if name.endswith("."):
        lines.append("the name ends with a dot: it is tried as written, no search domains")
    elif dots >= config.ndots:
        lines.append(f"{dots} dot(s) >= ndots:{config.ndots}: tried as written first, then "
                     "with each search domain")
    else:
        lines.append(f"{dots} dot(s) < ndots:{config.ndots}: each search domain first, then "
                     "as written")
    stop = stop_index(steps)
    width = max((len(s.name) for s in steps), default=0)
    for i, step in enumerate(steps):
        mark = "->" if i == stop else "  "
        answer = ", ".join(step.answers) if step.answers else "-"
        lines.append(f"{mark} {i + 1}. {step.name:<{width}}  {step.rcode:<8}  {answer}")
    if stop is None:
        lines.append(f"result: not found after {len(steps)} quer{'y' if len(steps) == 1 else 'ies'}")
    else:
        lines.append(f"result: {', '.join(steps[stop].answers)} after {stop + 1} "
                     f"quer{'y' if stop == 0 else 'ies'} (glibc)")
    if stop is not None and stop < len(steps) - 1:
        lines.append("(-> marks where the resolver stops; the later candidates are shown "
                     "for comparison)")
    musl = musl_stop_index(steps)
    if stop is not None and musl is not None and musl < stop:
        lines.append(f"note: musl-based images (Alpine) stop at step {musl + 1} "
                     f"({steps[musl].rcode}) and fail the lookup")
    return "\n".join(lines)
