"""One line per answered query, in the format of CoreDNS's `log` plugin (whose lines
start with `[INFO] `; ours go through Python logging, which adds its own level):

    10.244.1.5:47915 - 52301 "A IN hostnames.default.svc.cluster.local. udp 53 false 512" NOERROR qr,aa,rd 106 0.000157s

(client, query ID, "type class name proto request-size DO-bit buffer-size", rcode,
response flags, response size, duration). People debugging DNS in Kubernetes read these
lines from CoreDNS's logs; `svcnet server --dns-log` prints the same, so the search-path
walk of a Pod (`mysql.default.svc.cluster.local.svc.cluster.local` NXDOMAIN, then ...)
can be watched as it happens. Only runs when enabled: it parses both messages.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

_FLAG_ORDER = (("qr", dns.flags.QR), ("aa", dns.flags.AA), ("tc", dns.flags.TC),
               ("rd", dns.flags.RD), ("ra", dns.flags.RA), ("ad", dns.flags.AD),
               ("cd", dns.flags.CD))


def _flags(flags: int) -> str:
    return ",".join(name for name, bit in _FLAG_ORDER if flags & bit)


def query_log_line(peer: str, proto: str, query: bytes, response: bytes | None,
                   seconds: float) -> str:
    """The log line for one exchange (`response` None: dropped, no answer sent)."""
    try:
        q = dns.message.from_wire(query, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError):
        return f'{peer} - ? "malformed {proto} {len(query)}" ' \
               f"{'-' if response is None else len(response)} {seconds:.6f}s"
    if q.question:
        qs = q.question[0]
        what = (f"{dns.rdatatype.to_text(qs.rdtype)} {dns.rdataclass.to_text(qs.rdclass)} "
                f"{qs.name.to_text()}")
    else:
        what = "- - -"
    do = "true" if q.ednsflags & dns.flags.DO else "false"
    size = q.payload if q.edns >= 0 else 512
    head = f'{peer} - {q.id} "{what} {proto} {len(query)} {do} {size}"'
    if response is None:
        return f"{head} DROPPED - - {seconds:.6f}s"
    try:
        r = dns.message.from_wire(response, ignore_trailing=True)
        rcode, flags = dns.rcode.to_text(r.rcode()), _flags(r.flags)
    except (dns.exception.DNSException, ValueError):
        rcode, flags = "?", "?"
    return f"{head} {rcode} {flags} {len(response)} {seconds:.6f}s"
