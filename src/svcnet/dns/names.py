"""Query names of the cluster zone and the reverse zones, parsed into typed requests.

Grammar of the cluster zone (CoreDNS `kubernetes` plugin, read right to left after the
zone; reference/dns.md §2.1), with `<zone>` the cluster domain:

    <zone>                                       Apex
    dns-version.<zone>                           Version (the TXT schema record)
    ns.dns.<zone>                                DefaultNS (the nameserver's address)
    svc.<zone> | pod.<zone>                      EmptyNonTerminal
    <ns>.svc.<zone> | <ns>.pod.<zone>            NamespaceName
    <svc>.<ns>.svc.<zone>                        ServiceName
    <endpoint>.<svc>.<ns>.svc.<zone>             ServiceName(endpoint=...)
    _<port>._<proto>.<svc>.<ns>.svc.<zone>       ServiceName(port=..., protocol=...)
    <a-b-c-d>.<ns>.pod.<zone>                    PodName
    anything else                                Invalid (NXDOMAIN)

As in CoreDNS, with two labels left of the service they are port and protocol, a leading
underscore stripped from each (so `http.tcp.web...` is the same question), and an empty
remainder matches any port or protocol. Wildcards (`*`, `any`) were removed from CoreDNS
in 1.9.0 and are not supported. Reverse names are `ReverseName`, carrying the packed
address when the name is a complete one (4 octets under in-addr.arpa, 32 nibbles under
ip6.arpa) and None otherwise (a partial name: not ours to answer).

Labels arrive lower-cased (case-insensitive matching, spec §2.1) and are decoded as
latin-1, which never fails, so a name with odd bytes simply matches no object.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SVC = "svc"
POD = "pod"
VERSION_LABEL = "dns-version"
_IN_ADDR = (b"in-addr", b"arpa")
_IP6 = (b"ip6", b"arpa")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Apex:
    """The cluster domain itself."""


@dataclass(frozen=True, slots=True)
class Version:
    """`dns-version.<zone>`: the spec's schema-version TXT record (spec §2.2)."""


@dataclass(frozen=True, slots=True)
class DefaultNS:
    """`ns.dns.<zone>`: the name the SOA MNAME points at."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """A name in the zone that can never exist (wrong shape): NXDOMAIN."""


@dataclass(frozen=True, slots=True)
class EmptyNonTerminal:
    """`svc.<zone>` or `pod.<zone>`: exists (NODATA) but owns no records."""

    space: str


@dataclass(frozen=True, slots=True)
class NamespaceName:
    """`<ns>.svc.<zone>` / `<ns>.pod.<zone>`: NODATA if the namespace exists."""

    space: str
    namespace: str


@dataclass(frozen=True, slots=True)
class ServiceName:
    """A name at or under one Service: the Service, one endpoint, or one named port."""

    namespace: str
    service: str
    endpoint: str | None = None
    port: str | None = None
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class PodName:
    """`<label>.<ns>.pod.<zone>`; the label should be an IP with '-' for '.' or ':'."""

    namespace: str
    label: str


@dataclass(frozen=True, slots=True)
class ReverseName:
    """A name under in-addr.arpa / ip6.arpa; `ip` is the packed address if complete."""

    ip: bytes | None
    v6: bool


ClusterName = (Apex | Version | DefaultNS | Invalid | EmptyNonTerminal | NamespaceName
               | ServiceName | PodName)


def classify(labels: tuple[bytes, ...], zone: tuple[bytes, ...]
             ) -> ClusterName | ReverseName | None:
    """What a lower-cased name asks for; None when it is outside every zone we serve."""
    nzone = len(zone)
    if len(labels) >= nzone and labels[len(labels) - nzone:] == zone:
        return parse_cluster([lab.decode("latin-1") for lab in labels[:len(labels) - nzone]])
    if labels[-2:] == _IN_ADDR:
        return ReverseName(_reverse_v4(labels[:-2]), False)
    if labels[-2:] == _IP6:
        return ReverseName(_reverse_v6(labels[:-2]), True)
    return None


def parse_cluster(rel: list[str]) -> ClusterName:
    """Parse the labels left of the zone (leftmost first) by the grammar above."""
    if not rel:
        return Apex()
    if len(rel) == 1 and rel[0] == VERSION_LABEL:
        return Version()
    if rel == ["ns", "dns"]:
        return DefaultNS()
    space = rel[-1]
    if space not in (SVC, POD):
        return Invalid()
    n = len(rel)
    if n == 1:
        return EmptyNonTerminal(space)
    if n == 2:
        return NamespaceName(space, rel[0])
    if space == POD:
        return PodName(rel[1], rel[0]) if n == 3 else Invalid()
    if n == 3:
        return ServiceName(rel[1], rel[0])
    if n == 4:
        return ServiceName(rel[2], rel[1], endpoint=rel[0])
    if n == 5:
        return ServiceName(rel[3], rel[2], port=_strip_underscore(rel[0]),
                           protocol=_strip_underscore(rel[1]))
    return Invalid()


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def _reverse_v4(labels: tuple[bytes, ...]) -> bytes | None:
    if len(labels) != 4:
        return None
    octets = []
    for label in reversed(labels):
        # Canonical decimal only: "01" or "256" name no address (Go's ParseIP agrees).
        if not label.isdigit() or len(label) > 3 or (len(label) > 1 and label[0] == 0x30):
            return None
        value = int(label)
        if value > 255:
            return None
        octets.append(value)
    return bytes(octets)


def _reverse_v6(labels: tuple[bytes, ...]) -> bytes | None:
    if len(labels) != 32:
        return None
    nibbles = []
    for label in reversed(labels):
        text = label.decode("latin-1")
        if len(text) != 1 or text not in _HEX:
            return None
        nibbles.append(text)
    return bytes.fromhex("".join(nibbles))


def reverse_name_labels(packed: bytes) -> tuple[bytes, ...]:
    """The reverse-lookup name of an address, as labels (spec §2.3.3)."""
    if len(packed) == 4:
        return tuple(str(octet).encode() for octet in reversed(packed)) + _IN_ADDR
    nibbles = packed.hex()
    return tuple(ch.encode() for ch in reversed(nibbles)) + _IP6


def pod_ip(label: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a pod label spells, or None (then the name does not exist).

    CoreDNS rule: exactly three dashes and no "--" is IPv4 (dashes for dots); anything
    else is read as IPv6 with dashes for colons (`fd00-10-244--5`).
    """
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    if "%" in text:
        # Python would accept a scoped IPv6 address ("fe80::1%eth0"); no pod has one.
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def dashed_ip(ip: str) -> str:
    """The endpoint label CoreDNS makes from an address when there is no hostname.

    `10.0.0.2` -> `10-0-0-2`; `2001:db8::1` -> `2001-db8--1`; a trailing '-' gets a '0'
    so the label does not end in a dash (`2001:db8::` -> `2001-db8--0`).
    """
    if "." in ip and ":" not in ip:
        return ip.replace(".", "-")
    label = ip.replace(":", "-")
    return label + "0" if label.endswith("-") else label
