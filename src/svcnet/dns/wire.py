"""DNS messages on the hot path: a query's header, question and OPT, parsed by hand.

`parse_query` reads only what the server needs to decide and to answer: the ID, the flags,
the question (name bytes exactly as sent, type, class) and the EDNS0 OPT record, if any.
It never raises: any input gives either a `Query` or one of the verdicts `DROP`, `FORMERR`
and `NOTIMP`, which is what a DNS server does with such packets:

- fewer than 12 bytes, or the QR bit set (a response, possibly a reflection or a loop):
  `DROP`, there is nothing sensible to reply to;
- an opcode other than QUERY (NOTIFY, UPDATE, ...): `NOTIMP`;
- QDCOUNT != 1, a name that runs past the packet, a label over 63 bytes, a compression
  pointer or extended label type in the question, a name over 255 bytes, records that do
  not parse, or two OPT records (RFC 6891 §6.1.1): `FORMERR`.

dnspython is deliberately not used here: `dns.message.from_wire` costs ~30 µs per query,
three times the whole budget of a cached answer. The question name is kept as raw wire
bytes, so the cache key is `qname.lower()` (DNS case-insensitivity is ASCII-only, and
length bytes are at most 63, below 'A', so `bytes.lower` touches only letters) and the
reply can carry the name back in the client's case (0x20 randomisation, RFC 4343).

`simple_reply` builds the replies that carry no records (REFUSED, BADVERS), and
`header_reply` the bare-header ones (FORMERR, NOTIMP), both without dnspython.
"""

from __future__ import annotations

import struct

# Verdicts of parse_query for packets that are not answerable queries.
DROP = 0
FORMERR = 1
NOTIMP = 4

# Response codes the edge may see in Reply.rcode (RFC 1035 §4.1.1, RFC 6891 §9).
NOERROR = 0
SERVFAIL = 2
NXDOMAIN = 3
REFUSED = 5
BADVERS = 16

# Header flag bits (RFC 1035 §4.1.1).
QR = 0x8000
OPCODE_MASK = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
CD = 0x0010
# Bits a reply copies from the query: RD (RFC 1035) and CD (RFC 4035 §3.1.6).
ECHOED_FLAGS = RD | CD
EDNS_DO = 0x8000

TYPE_OPT = 41
CLASS_IN = 1
MAX_NAME = 255
MIN_UDP_PAYLOAD = 512
MAX_TCP_MESSAGE = 65535

_HEADER = struct.Struct(">HHHHHH")
_TYPE_CLASS = struct.Struct(">HH")
# An RR's fixed part after its owner name: type, class, ttl, rdlength.
_RR_FIXED = struct.Struct(">HHIH")
# A reply's flags and counts, after the copied ID.
_REPLY_HEADER = struct.Struct(">HHHHH")


class Query:
    """A parsed query. `qname` is the question name in wire form, as sent (case kept).

    `edns_payload` is -1 when the query had no OPT record; otherwise the advertised UDP
    payload size as sent (the server applies the 512 floor). `variant` tells templates
    apart by what the reply's OPT must echo: 0 = no EDNS, 1 = EDNS, 2 = EDNS with DO.
    """

    __slots__ = ("ident", "flags", "qname", "qtype", "qclass", "edns_payload",
                 "edns_version", "variant")

    def __init__(self, ident: bytes, flags: int, qname: bytes, qtype: int, qclass: int,
                 edns_payload: int, edns_version: int, variant: int) -> None:
        self.ident = ident
        self.flags = flags
        self.qname = qname
        self.qtype = qtype
        self.qclass = qclass
        self.edns_payload = edns_payload
        self.edns_version = edns_version
        self.variant = variant

    def udp_limit(self) -> int:
        """The largest UDP reply this client accepts (RFC 6891 §6.2.5: never below 512)."""
        if self.edns_payload < MIN_UDP_PAYLOAD:
            return MIN_UDP_PAYLOAD
        return self.edns_payload


def _skip_name(wire: bytes, pos: int, end: int) -> int:
    """Offset just past a (possibly compressed) name in a record, or -1 if malformed."""
    while pos < end:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2 if pos + 2 <= end else -1
        if length > 63:
            return -1
        pos += length + 1
    return -1


def parse_query(wire: bytes) -> Query | int:
    """Parse a query; a `Query`, or the verdict `DROP` / `FORMERR` / `NOTIMP`."""
    end = len(wire)
    if end < 12:
        return DROP
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & QR:
        return DROP
    if flags & OPCODE_MASK:
        return NOTIMP
    if qdcount != 1:
        return FORMERR
    pos = 12
    while True:
        if pos >= end:
            return FORMERR
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            # 0xC0 pointers (nothing precedes the question to point at) and the
            # obsolete extended label types alike.
            return FORMERR
        pos += length + 1
    if pos - 12 > MAX_NAME or pos + 4 > end:
        return FORMERR
    qname = wire[12:pos]
    qtype, qclass = _TYPE_CLASS.unpack_from(wire, pos)
    pos += 4
    payload = -1
    version = 0
    variant = 0
    # Walk the other sections only to find the OPT record; a plain query has none, and
    # the usual EDNS query has exactly one record here, the OPT.
    for index in range(ancount + nscount + arcount):
        pos = _skip_name(wire, pos, end)
        if pos < 0 or pos + 10 > end:
            return FORMERR
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, pos)
        pos += 10 + rdlength
        if pos > end:
            return FORMERR
        if rtype == TYPE_OPT and index >= ancount + nscount:
            if payload >= 0:
                return FORMERR
            payload = rclass
            version = (ttl >> 16) & 0xFF
            variant = 2 if ttl & EDNS_DO else 1
    return Query(wire[0:2], flags, qname, qtype, qclass, payload, version, variant)


def header_reply(wire: bytes, rcode: int) -> bytes:
    """A header-only reply (no question) for a query we could not parse: FORMERR/NOTIMP.

    The ID, opcode, RD and CD are copied, as from any query; the caller has checked that
    `wire` is at least 12 bytes long.
    """
    flags = (wire[2] << 8) | wire[3]
    out_flags = QR | (flags & (OPCODE_MASK | ECHOED_FLAGS)) | (rcode & 0xF)
    return wire[0:2] + out_flags.to_bytes(2, "big") + bytes(8)


def opt_record(payload: int, *, do: bool, ext_rcode: int = 0) -> bytes:
    """An OPT pseudo-RR with no options: root owner, our payload size, version 0."""
    ttl = ((ext_rcode & 0xFF) << 24) | (EDNS_DO if do else 0)
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, payload, ttl, 0)


def simple_reply(query: Query, rcode: int, *, edns_payload: int) -> bytes:
    """A reply with the question echoed and no records (REFUSED, BADVERS, ...).

    Extended rcodes (above 15) go in the OPT record (RFC 6891 §6.1.3), so BADVERS always
    carries one; otherwise an OPT is echoed when the query had one.
    """
    flags = QR | (query.flags & ECHOED_FLAGS) | (rcode & 0xF)
    has_opt = query.variant != 0 or rcode > 15
    header = query.ident + _REPLY_HEADER.pack(flags, 1, 0, 0, 1 if has_opt else 0)
    body = query.qname + _TYPE_CLASS.pack(query.qtype, query.qclass)
    if has_opt:
        body += opt_record(edns_payload, do=query.variant == 2, ext_rcode=rcode >> 4)
    return header + body


def split_labels(qname: bytes) -> tuple[bytes, ...]:
    """The labels of a wire-form name checked by `parse_query` (root label dropped)."""
    labels: list[bytes] = []
    pos = 0
    length = qname[0]
    while length:
        labels.append(qname[pos + 1:pos + 1 + length])
        pos += length + 1
        length = qname[pos]
    return tuple(labels)


_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")


def name_text(labels: tuple[bytes, ...]) -> str:
    """Presentation form with the trailing dot, for logs; odd bytes escaped as `\\DDD`."""
    if not labels:
        return "."
    parts = []
    for label in labels:
        if all(b in _PLAIN for b in label):
            parts.append(label.decode("ascii"))
        else:
            parts.append("".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in label))
    return ".".join(parts) + "."
