"""Pod IP allocation from the node's podCIDR: a pure core plus a tiny persistence helper.

Addresses: every host address of the range except the network address, the gateway (the
first address, which the node bridge holds) and, for IPv4, the broadcast address, so a
/24 gives .2-.254 (253 pods).

Allocation is keyed by pod uid (asking again returns the same IP) and round-robin: the
search starts after the last address handed out, like the CNI host-local plugin. A freed
IP is thus not reused at once, which keeps a new pod from inheriting a just-deleted
pod's stale conntrack entries, endpoints or DNS answers.

`PodIPAM` keeps the allocations in `<state_dir>/ipam.json` (one small file, replaced
atomically: written to a temporary file, fsynced, renamed), so a restarted agent gives
its pods the same IPs. One agent owns a state_dir; there is no locking between processes.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from svcnet.node.types import NodeConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IPAMError(Exception):
    """Base of IP allocation errors. `reason` is the Event reason the agent posts."""

    reason = "FailedCreatePodSandBox"


class PodCIDRExhausted(IPAMError):
    """Every usable address of the node's pod range is taken. The message is meant for
    the Pod's status and a Warning Event as is."""

    def __init__(self, pod: str, cidr: str) -> None:
        self.pod = pod
        self.cidr = cidr
        super().__init__(f"failed to allocate an IP for pod {pod}: the node's pod range "
                         f"{cidr} is exhausted")


class IPAMStateError(IPAMError):
    """The state file exists but cannot be read. The agent must not guess: handing out
    IPs that running pods still hold would break them."""


@dataclass(frozen=True)
class Allocations:
    """The allocation state of one pod range: uid -> (ip, "ns/name"), and the last IP
    handed out (where the next search starts)."""

    cidr: str
    pods: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    last: str = ""

    def ip_of(self, uid: str) -> str | None:
        entry = self.pods.get(uid)
        return entry[0] if entry else None

    def used(self) -> set[str]:
        return {ip for ip, _ in self.pods.values()}


def usable_range(cidr: str) -> tuple[IPAddress, IPAddress] | None:
    """(first, last) assignable pod address of `cidr`, or None if it has none."""
    net = ipaddress.ip_network(cidr, strict=False)
    first = int(net.network_address) + 2  # skip the network address and the gateway
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    if first > last:
        return None
    return ipaddress.ip_address(first), ipaddress.ip_address(last)


def _within(ip: str, bounds: tuple[IPAddress, IPAddress] | None) -> bool:
    return bounds is not None and int(bounds[0]) <= int(ipaddress.ip_address(ip)) <= \
        int(bounds[1])


def gateway(cidr: str) -> str:
    """The range's first address: the node bridge's, every pod's default gateway."""
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + 1)


def allocate(state: Allocations, uid: str, pod: str) -> tuple[Allocations, str]:
    """Give pod `uid` ("ns/name" in `pod`, for messages and the state file) an IP.
    Idempotent per uid. Raises PodCIDRExhausted when no address is free."""
    have = state.ip_of(uid)
    if have is not None:
        return state, have
    bounds = usable_range(state.cidr)
    if bounds is None:
        raise PodCIDRExhausted(pod, state.cidr)
    lo, hi = int(bounds[0]), int(bounds[1])
    size = hi - lo + 1
    used = state.used()
    start = lo
    if state.last:
        last = int(ipaddress.ip_address(state.last))
        if lo <= last <= hi:
            start = last + 1 if last < hi else lo
    # Walk at most the whole range once from `start`, wrapping around.
    for step in range(min(size, len(used) + 1)):
        candidate = str(ipaddress.ip_address(lo + (start - lo + step) % size))
        if candidate not in used:
            pods = dict(state.pods)
            pods[uid] = (candidate, pod)
            return replace(state, pods=pods, last=candidate), candidate
    raise PodCIDRExhausted(pod, state.cidr)


def reserve(state: Allocations, uid: str, ip: str, pod: str) -> Allocations:
    """Record an IP a pod already has (re-adopting a running sandbox after the state
    was lost). Raises ValueError if the IP is outside the range or held by another uid."""
    if not _within(ip, usable_range(state.cidr)):
        raise ValueError(f"{ip} is not an assignable address of {state.cidr}")
    for other, (held, _) in state.pods.items():
        if held == ip and other != uid:
            raise ValueError(f"{ip} is already allocated to pod uid {other}")
    pods = dict(state.pods)
    pods[uid] = (ip, pod)
    return replace(state, pods=pods)


def release(state: Allocations, uid: str) -> Allocations:
    """Free the IP of `uid` (no-op if it has none)."""
    if uid not in state.pods:
        return state
    return replace(state, pods={k: v for k, v in state.pods.items() if k != uid})


def retain(state: Allocations, uids: Iterable[str]) -> Allocations:
    """Keep only the allocations of `uids` (garbage-collects pods that are gone)."""
    keep = set(uids)
    return replace(state, pods={k: v for k, v in state.pods.items() if k in keep})


def to_json(state: Allocations) -> str:
    pods = {uid: {"ip": ip, "pod": pod} for uid, (ip, pod) in sorted(state.pods.items())}
    return json.dumps({"cidr": state.cidr, "last": state.last, "pods": pods}, indent=1)


def from_json(text: str, cidr: str) -> Allocations:
    """Parse a state file for range `cidr`. Allocations outside `cidr` (the node's range
    changed) are dropped; so is `last`, if outside."""
    raw = json.loads(text)
    bounds = usable_range(cidr)
    pods: dict[str, tuple[str, str]] = {}
    for uid, entry in (raw.get("pods") or {}).items():
        ip = str(entry["ip"])
        if _within(ip, bounds):
            pods[str(uid)] = (ip, str(entry.get("pod", "")))
    last = str(raw.get("last") or "")
    if last and not _within(last, bounds):
        last = ""
    return Allocations(cidr=cidr, pods=pods, last=last)


class PodIPAM:
    """The node's allocations, persisted in `<state_dir>/ipam.json` after every change."""

    FILE = "ipam.json"

    def __init__(self, node: NodeConfig) -> None:
        self.path = Path(node.state_dir) / self.FILE
        self._state = self._load(node.pod_cidr)

    @property
    def state(self) -> Allocations:
        return self._state

    def allocate(self, uid: str, namespace: str, name: str) -> str:
        """The pod's IP, allocating and persisting one if it has none yet."""
        state, ip = allocate(self._state, uid, f"{namespace}/{name}")
        self._commit(state)
        return ip

    def reserve(self, uid: str, ip: str, namespace: str, name: str) -> None:
        self._commit(reserve(self._state, uid, ip, f"{namespace}/{name}"))

    def release(self, uid: str) -> None:
        self._commit(release(self._state, uid))

    def retain(self, uids: Iterable[str]) -> None:
        self._commit(retain(self._state, uids))

    def ip_of(self, uid: str) -> str | None:
        return self._state.ip_of(uid)

    def _load(self, cidr: str) -> Allocations:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Allocations(cidr=cidr)
        try:
            return from_json(text, cidr)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise IPAMStateError(f"cannot read {self.path}: {e}") from e

    def _commit(self, state: Allocations) -> None:
        if state == self._state and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.FILE}.tmp")
        with open(tmp, "w") as f:
            f.write(to_json(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._state = state
