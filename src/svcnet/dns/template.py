"""Precompiled replies: render an `Answer` once with dnspython, patch it per query.

A `Template` is a reply rendered for the lower-cased question, cut around the question
name: `flags | counts | <qname> | tail`. Serving a query copies in its ID, its RD and CD
bits, and its question name bytes as sent. Every answer record whose owner is the query
name was compressed by dnspython into a pointer to offset 12 (dnspython, like every
server, compresses case-insensitively), so once the client's spelling of the name sits
at offset 12, the whole reply - answer owners, the SOA owner (a suffix of the question),
SRV targets sharing its suffix - reads in the client's case, as CoreDNS replies do.
Nothing else in the reply depends on the query, which is why one rendering serves all
queries with the same (lower-cased name, type, EDNS variant).

A template whose answer has several A or AAAA records also holds up to
`MAX_ROTATIONS` renderings with those records rotated, served in turn: round-robin
across clients, as the `loadbalance` plugin in the kubeadm Corefile does for CoreDNS, so
clients that take the first address spread over a headless Service's pods. Rotations
change no sizes (the records are all the same length), only the tail bytes.

Each template also holds its truncated form for UDP: the same header with TC set and no
records but the OPT, so a client whose buffer is too small retries over TCP
(RFC 7766 §5, RFC 6891 §7). A reply too large even for TCP (65535 bytes) is served
truncated on both transports rather than cut in the middle of an RRset.
"""

from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from svcnet.dns import wire
from svcnet.dns.answers import Answer
from svcnet.dns.index import DepKey
from svcnet.dns.reply import Action

_COUNTS = struct.Struct(">HHHH")
_TYPE_CLASS = struct.Struct(">HH")
_ECHO_VARIANTS = (0, wire.RD, wire.CD, wire.RD | wire.CD)
_TOO_BIG = 1 << 30
MAX_ROTATIONS = 8
_ROTATABLE = (dns.rdatatype.A, dns.rdatatype.AAAA)


def _flag_bytes(flags: int) -> dict[int, bytes]:
    return {echo: (flags | echo).to_bytes(2, "big") for echo in _ECHO_VARIANTS}


class Template:
    """One rendered reply (and its truncated form); see the module docstring.

    `action` and `target` are what `Reply` reports ("answer", or "chase" with the
    ExternalName target); `deps` are the index keys it was built from.
    """

    __slots__ = ("flag_bytes", "head", "tail", "rotations", "turn", "size", "tc_flag_bytes",
                 "tc_head", "tc_tail", "qname", "action", "rcode", "target", "deps", "negative")

    def __init__(self, *, flags: int, head: bytes, tails: tuple[bytes, ...], size: int,
                 tc_head: bytes, tc_tail: bytes, qname: str, action: Action, rcode: int,
                 target: str | None, deps: frozenset[DepKey], negative: bool) -> None:
        self.flag_bytes = _flag_bytes(flags)
        self.tc_flag_bytes = _flag_bytes(flags | wire.TC)
        self.head = head
        self.tail = tails[0]
        self.rotations = tails if len(tails) > 1 else None
        self.turn = len(tails) - 1  # patch() advances first, so turn 0 is served first
        self.size = size
        self.tc_head = tc_head
        self.tc_tail = tc_tail
        self.qname = qname
        self.action = action
        self.rcode = rcode
        self.target = target
        self.deps = deps
        self.negative = negative


def render(qname: dns.name.Name, qtype: int, qclass: int, answer: Answer, *, variant: int,
           edns_payload: int, qname_text: str, action: Action) -> Template:
    """Render `answer` for the question (`qname` lower-cased) in one EDNS variant."""
    msg = dns.message.Message(id=0)
    msg.flags = dns.flags.QR | (dns.flags.AA if answer.authoritative else 0)
    if variant:
        msg.use_edns(0, wire.EDNS_DO if variant == 2 else 0, edns_payload)
    msg.set_rcode(dns.rcode.Rcode.make(answer.rcode))
    msg.question = [dns.rrset.RRset(qname, dns.rdataclass.RdataClass.make(qclass),
                                    dns.rdatatype.RdataType.make(qtype))]
    msg.authority = list(answer.authority)
    msg.additional = list(answer.additional)
    qlen = len(qname.to_wire() or b"")
    tails = []
    full = b""
    for answers in _rotations(answer.answer):
        msg.answer = answers
        try:
            full = msg.to_wire(max_size=wire.MAX_TCP_MESSAGE, want_shuffle=False)
        except dns.exception.TooBig:
            full = b""
            break
        tails.append(full[12 + qlen:])
    flags = int.from_bytes(full[2:4], "big") if full else (
        wire.QR | (wire.AA if answer.authoritative else 0) | answer.rcode)
    opt = wire.opt_record(edns_payload, do=variant == 2) if variant else b""
    tc_head = _COUNTS.pack(1, 0, 0, 1 if variant else 0)
    tc_tail = _TYPE_CLASS.pack(qtype, qclass) + opt
    target = answer.chase.to_text() if answer.chase is not None else None
    return Template(flags=flags, head=full[4:12] if full else tc_head,
                    tails=tuple(tails) if full else (tc_tail,),
                    size=len(full) if full else _TOO_BIG, tc_head=tc_head, tc_tail=tc_tail,
                    qname=qname_text, action=action, rcode=answer.rcode, target=target,
                    deps=frozenset(answer.deps), negative=answer.negative)


def _rotations(rrsets: list[dns.rrset.RRset]) -> list[list[dns.rrset.RRset]]:
    """The answer section as served in turn: address RRsets rotated, evenly spread."""
    longest = max((len(r) for r in rrsets if r.rdtype in _ROTATABLE), default=1)
    count = min(longest, MAX_ROTATIONS)
    if count <= 1:
        return [list(rrsets)]
    out = []
    for turn in range(count):
        section = []
        for rrset in rrsets:
            if rrset.rdtype in _ROTATABLE and len(rrset) > 1:
                rdatas = list(rrset)
                shift = turn * len(rdatas) // count
                rrset = dns.rrset.from_rdata_list(rrset.name, rrset.ttl,
                                                  rdatas[shift:] + rdatas[:shift])
            section.append(rrset)
        out.append(section)
    return out


def patch(template: Template, query: wire.Query, limit: int) -> bytes:
    """The reply to `query`: its ID, RD/CD and name in the template; truncated if over
    `limit` bytes. Templates with rotations advance to the next one."""
    echo = query.flags & wire.ECHOED_FLAGS
    if template.size <= limit:
        tail = template.tail
        if template.rotations is not None:
            turn = template.turn + 1
            if turn == len(template.rotations):
                turn = 0
            template.turn = turn
            tail = template.rotations[turn]
        return b"".join((query.ident, template.flag_bytes[echo], template.head, query.qname,
                         tail))
    return b"".join((query.ident, template.tc_flag_bytes[echo], template.tc_head,
                     query.qname, template.tc_tail))
