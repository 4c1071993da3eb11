"""Answers: a typed name and a query type -> the sections of an authoritative reply.

`Answerer.answer` follows the CoreDNS `kubernetes` handler (reference/dns.md §2):

- A/AAAA: the addresses of the family asked for; an ExternalName gives its CNAME, and
  then the target's addresses when the target is in the cluster zone (a chain of at
  most 8 CNAMEs, loops cut), or a *chase* of the target upstream when it is not.
- SRV: one record per distinct (target, port), priority 0, weight floor(100 / number of
  (address, port) entries) but at least 1; the targets' addresses go in the additional
  section. ExternalName has no SRV (NODATA), nor has a sentinel port -1.
- CNAME: the ExternalName target alone. TXT: only `dns-version.<zone>` ("1.1.0", TTL
  28800). SOA and NS: only at the apex; NS names the `kube-dns` Service (glue = its
  ClusterIPs), or `ns.dns.<zone>` when that Service is unknown.
- PTR on a reverse name: the names `DNSIndex.ptr_targets` gives; an address nobody
  publishes, a partial reverse name, or any other type there is *forwarded* (CoreDNS
  with `fallthrough in-addr.arpa ip6.arpa`, as kubeadm configures it).
- AXFR/IXFR: REFUSED. Any other type (ANY, MX, HINFO, ...), and every type above that
  finds no record: NODATA if the name exists, else NXDOMAIN.

Negative answers carry the zone's SOA in the authority section: `<zone> SOA ns.dns.<zone>
hostmaster.<zone> <serial> 7200 1800 86400 <ttl>`, TTL min(ttl, 300); its minimum field
is the TTL, so negative caching lasts as long as a positive answer.

Deliberate differences from CoreDNS's code (not its documented behaviour): TXT and SOA
on a name that does not exist are NXDOMAIN (CoreDNS answers NODATA for any TXT/SOA
without looking), and non-TXT types at `dns-version.<zone>` are NODATA (CoreDNS says
NXDOMAIN for a name whose TXT it serves). Existence alone decides the rcode here, so a
negative cache never holds an NXDOMAIN for a name that exists (RFC 8020).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

from svcnet.dns import names, wire
from svcnet.dns.index import DepKey
from svcnet.dns.lookup import Entry, Lookup

SCHEMA_VERSION = "1.1.0"
VERSION_TTL = 28800
MAX_CNAME_CHAIN = 8
_IN = dns.rdataclass.IN
_T = dns.rdatatype
# dnspython's rdata constructors are unannotated; typed aliases keep mypy --strict useful.
_Make = Callable[..., dns.rdata.Rdata]
A: _Make = dns.rdtypes.IN.A.A
AAAA: _Make = dns.rdtypes.IN.AAAA.AAAA
CNAME: _Make = dns.rdtypes.ANY.CNAME.CNAME
NS: _Make = dns.rdtypes.ANY.NS.NS
PTR: _Make = dns.rdtypes.ANY.PTR.PTR
SOA: _Make = dns.rdtypes.ANY.SOA.SOA
SRV: _Make = dns.rdtypes.IN.SRV.SRV
TXT: _Make = dns.rdtypes.ANY.TXT.TXT


@dataclass(slots=True)
class Answer:
    """Sections and rcode of one reply, before rendering.

    `forward` means "not ours": the edge sends the query upstream. `chase` is an outside
    CNAME target the edge must resolve and append (`append_chase`). `authority` holds
    the zone's SOA in every negative answer.
    """

    rcode: int = wire.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    chase: dns.name.Name | None = None
    forward: bool = False
    authoritative: bool = True
    deps: set[DepKey] = field(default_factory=set)

    @property
    def negative(self) -> bool:
        return self.rcode != wire.NOERROR or not self.answer


def _name(labels: tuple[str, ...], zone: dns.name.Name) -> dns.name.Name:
    return dns.name.Name(tuple(label.encode("latin-1") for label in labels) + zone.labels)


def _rrset(owner: dns.name.Name, ttl: int, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, ttl, rdatas)


class Answerer:
    """Builds `Answer`s from a `Lookup`, for one cluster zone."""

    def __init__(self, lookup: Lookup, *, zone: str, ttl: int) -> None:
        self.lookup = lookup
        self.zone = dns.name.from_text(zone)
        self.zone_labels = tuple(label.lower() for label in self.zone.labels[:-1])
        self.ttl = ttl
        # The SOA serial; ClusterDNS moves it on every change (CoreDNS: the time of the
        # last change to its API cache).
        self.serial = 0
        self._soa_memo: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}

    # --- entry points ------------------------------------------------------------------

    def cluster(self, qname: dns.name.Name, name: names.ClusterName, qtype: int) -> Answer:
        """The answer for a name in the cluster zone (`qname` lower-cased)."""
        out = Answer()
        if qtype in (_T.AXFR, _T.IXFR):
            # Zone transfers belong to CoreDNS's `transfer` plugin, not this one.
            return Answer(rcode=wire.REFUSED, authoritative=False)
        if isinstance(name, names.Apex) and qtype in (_T.SOA, _T.NS):
            if qtype == _T.SOA:
                out.answer.append(self.soa(self.zone, owner=qname))
            else:
                self._apex_ns(qname, out)
            return out
        if isinstance(name, names.Version) and qtype == _T.TXT:
            out.answer.append(_rrset(qname, VERSION_TTL,
                                     [TXT(_IN, _T.TXT, [SCHEMA_VERSION.encode()])]))
            return out
        entries = self.lookup.entries(name, out.deps)
        if entries is None:
            out.rcode = wire.NXDOMAIN
        elif qtype in (_T.A, _T.AAAA):
            self._addresses(qname, entries, qtype, out, depth=0)
        elif qtype == _T.SRV:
            self._srv(qname, entries, out)
        elif qtype == _T.CNAME:
            for entry in entries[:1]:
                if entry.cname is not None:
                    target = self._target(entry.cname)
                    if target is not None:
                        out.answer.append(_rrset(qname, self.ttl, [CNAME(_IN, _T.CNAME,
                                                                         target)]))
        if out.negative:
            out.authority.append(self.soa(self.zone))
        return out

    def reverse(self, qname: dns.name.Name, name: names.ReverseName, qtype: int) -> Answer:
        """PTR for an address the index publishes; everything else is forwarded."""
        out = Answer()
        if qtype != _T.PTR or name.ip is None:
            out.forward = True
            return out
        targets = self.lookup.index.ptr_targets(name.ip, out.deps)
        if not targets:
            out.forward = True
            return out
        out.answer.append(_rrset(qname, self.ttl, [PTR(_IN, _T.PTR, _name(t, self.zone))
                                                   for t in targets]))
        return out

    def soa(self, zone: dns.name.Name, *, owner: dns.name.Name | None = None
            ) -> dns.rrset.RRset:
        """The zone's SOA as CoreDNS writes it (see the module docstring)."""
        owner = owner or zone
        key = (owner, self.serial)
        rrset = self._soa_memo.get(key)
        if rrset is None:
            # Every negative answer needs one, and building it costs more than rendering
            # the rest of the reply (dnspython hashes rdata on insertion): keep the few
            # current ones.
            if len(self._soa_memo) > 16:
                self._soa_memo.clear()
            rdata = SOA(_IN, _T.SOA, dns.name.Name((b"ns", b"dns") + zone.labels),
                        dns.name.Name((b"hostmaster",) + zone.labels),
                        self.serial & 0xFFFFFFFF, 7200, 1800, 86400, self.ttl)
            rrset = self._soa_memo[key] = _rrset(owner, min(self.ttl, 300), [rdata])
        return rrset

    # --- record kinds ------------------------------------------------------------------

    def _addresses(self, owner: dns.name.Name, entries: list[Entry], qtype: int,
                   out: Answer, depth: int) -> None:
        version = 4 if qtype == _T.A else 6
        rdatas: list[dns.rdata.Rdata] = []
        seen: set[str] = set()
        for entry in entries:
            if entry.cname is not None:
                self._follow(owner, entry.cname, qtype, out, depth)
                return  # an ExternalName holds nothing but its CNAME
            if entry.version == version and entry.ip not in seen:
                assert entry.ip is not None
                seen.add(entry.ip)
                rdatas.append(A(_IN, _T.A, entry.ip) if version == 4
                              else AAAA(_IN, _T.AAAA, entry.ip))
        if rdatas:
            out.answer.append(_rrset(owner, self.ttl, rdatas))

    def _follow(self, owner: dns.name.Name, cname: str, qtype: int, out: Answer,
                depth: int) -> None:
        target = self._target(cname)
        if target is None or depth >= MAX_CNAME_CHAIN or target == owner or any(
                rrset.name == target for rrset in out.answer):
            return  # unusable target, or a loop: stop where we are
        out.answer.append(_rrset(owner, self.ttl, [CNAME(_IN, _T.CNAME, target)]))
        labels = tuple(label.lower() for label in target.labels[:-1])
        parsed = names.classify(labels, self.zone_labels)
        if isinstance(parsed, names.ReverseName) or parsed is None:
            out.chase = target
            return
        # In our own zone: answer the target ourselves. A target that does not exist
        # leaves the CNAME alone with NOERROR, as an upstream NXDOMAIN would in a chase.
        entries = self.lookup.entries(parsed, out.deps)
        if entries:
            self._addresses(target, entries, qtype, out, depth + 1)

    def _target(self, text: str) -> dns.name.Name | None:
        try:
            return dns.name.from_text(text)
        except dns.exception.DNSException:
            return None

    def _srv(self, owner: dns.name.Name, entries: list[Entry], out: Answer) -> None:
        hosts = [entry for entry in entries if entry.cname is None]
        if not hosts:
            return
        weight = max(1, 100 // len(hosts))
        records: dict[tuple[tuple[str, ...], int], dns.rdata.Rdata] = {}
        extra: dict[tuple[tuple[str, ...], int], list[dns.rdata.Rdata]] = {}
        seen_ips: set[tuple[tuple[str, ...], str]] = set()
        for entry in hosts:
            if entry.port < 0:
                continue
            target = _name(entry.owner, self.zone)
            key = (entry.owner, entry.port)
            if key not in records:
                records[key] = SRV(_IN, _T.SRV, 0, weight, entry.port, target)
            assert entry.ip is not None
            if (entry.owner, entry.ip) not in seen_ips:
                seen_ips.add((entry.owner, entry.ip))
                rdata = (A(_IN, _T.A, entry.ip) if entry.version == 4
                         else AAAA(_IN, _T.AAAA, entry.ip))
                extra.setdefault((entry.owner, entry.version), []).append(rdata)
        if records:
            out.answer.append(_rrset(owner, self.ttl, list(records.values())))
            for (target_labels, _), rdatas in extra.items():
                out.additional.append(_rrset(_name(target_labels, self.zone), self.ttl,
                                             rdatas))

    def _apex_ns(self, qname: dns.name.Name, out: Answer) -> None:
        service = self.lookup.nameserver_service(out.deps)
        if service is None:
            target = dns.name.Name((b"ns", b"dns") + self.zone.labels)
            out.answer.append(_rrset(qname, self.ttl, [NS(_IN, _T.NS, target)]))
            return
        target = _name((service.name, service.namespace, names.SVC), self.zone)
        out.answer.append(_rrset(qname, self.ttl, [NS(_IN, _T.NS, target)]))
        v4: list[dns.rdata.Rdata] = [A(_IN, _T.A, ip) for ip in service.cluster_ips
                                     if ":" not in ip]
        v6: list[dns.rdata.Rdata] = [AAAA(_IN, _T.AAAA, ip) for ip in service.cluster_ips
                                     if ":" in ip]
        for rdatas in (v4, v6):
            if rdatas:
                out.additional.append(_rrset(target, self.ttl, rdatas))
