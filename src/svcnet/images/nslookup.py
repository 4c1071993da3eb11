"""`nslookup` in svcnet's busybox image: the one the Kubernetes DNS tutorials show.

The tutorials debug Services with `kubectl run -it --rm --image=busybox -- nslookup
kubernetes.default` and show the answer. That works with busybox 1.28, whose nslookup asks
the C library, which walks the Pod's search path (`kubernetes.default.default.svc.
cluster.local`, then `kubernetes.default.svc.cluster.local`: found). busybox 1.29 and later
send the queries themselves and apply the search path only to names without a dot, so the
same command fails with NXDOMAIN or SERVFAIL: the well-known trap for which the Kubernetes
DNS-debugging page pins busybox:1.28. svcnet's busybox image provides 1.28's nslookup,
so the tutorials read as written; `svcnet dns explain` shows the walk in detail.

Usage, as busybox 1.28: `nslookup HOST [SERVER]`. Output (stdout), every address with the
name its reverse (PTR) lookup gives, if any:

    Server:    10.96.0.10
    Address 1: 10.96.0.10 kube-dns.kube-system.svc.cluster.local

    Name:      kubernetes.default
    Address 1: 10.96.0.1 kubernetes.default.svc.cluster.local

A name that does not resolve prints `nslookup: can't resolve 'NAME'` on stderr and exits
1. The walk (`lookup`) and the text (`render`) are pure; `main` does the I/O.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TextIO

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename

from svcnet.dns.explain import ResolverConfig, candidates

#: (qname, qtype) -> the record texts of the answer: empty when the server answered
#: without any (NXDOMAIN, NODATA, SERVFAIL), None when no server answered at all.
Query = Callable[[str, str], "list[str] | None"]

USAGE = ("usage: nslookup HOST [SERVER]\n\n"
         "Query the nameserver for the IP address of HOST, optionally using SERVER\n")


@dataclass(frozen=True)
class Answer:
    """One address of a lookup and the name its PTR record gives ("" if none)."""

    address: str
    name: str = ""


def lookup(name: str, config: ResolverConfig, query: Query) -> list[str]:
    """The addresses the C library's getaddrinfo would return for `name`: the candidates
    of the search-path walk in glibc's order, stopping at the first with A or AAAA
    records (IPv4 first). Empty when none has any, or as soon as the server does not
    answer at all (glibc ends the walk there too, rather than time out once per search
    domain)."""
    try:
        ipaddress.ip_address(name)
        return [name]  # an address resolves to itself, with no query
    except ValueError:
        pass
    for candidate in candidates(name, config):
        v4 = query(candidate, "A")
        if v4 is None:
            return []
        v6 = query(candidate, "AAAA")
        if v6 is None:
            return []
        if v4 or v6:
            return [*v4, *v6]
    return []


def reverse(address: str, query: Query) -> str:
    """The first PTR name of `address`, without the final dot ("" if none)."""
    names = query(dns.reversename.from_address(address).to_text(), "PTR")
    return names[0].rstrip(".") if names else ""


def render_host(header: str, name: str, answers: Sequence[Answer]) -> str:
    """One block of busybox 1.28's output: the header line, numbered addresses, a blank
    line."""
    lines = [f"{header:<10} {name}"]
    for i, a in enumerate(answers, 1):
        lines.append(f"Address {i}: {a.address}" + (f" {a.name}" if a.name else ""))
    return "\n".join(lines) + "\n\n"


def udp_query(server: str, port: int, timeout: float, attempts: int) -> Query:
    """A Query asking `server:port` over UDP (TCP when the answer is truncated), `attempts`
    times `timeout` seconds at most. The socket is connected, as the C library's is, so a
    closed port fails at once (ICMP port unreachable) instead of after every timeout."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET

    def exchange(request: dns.message.Message) -> dns.message.Message | None:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect((server, port))
            sock.send(request.to_wire())
            while True:
                try:
                    reply = dns.message.from_wire(sock.recv(65535))
                except dns.exception.DNSException:
                    continue  # garbage: keep waiting for the real answer
                if request.is_response(reply):
                    return reply

    def ask(qname: str, qtype: str) -> list[str] | None:
        request = dns.message.make_query(qname, qtype)
        for _ in range(max(1, attempts)):
            try:
                reply = exchange(request)
                if reply is not None and reply.flags & dns.flags.TC:
                    reply = dns.query.tcp(request, server, port=port, timeout=timeout)
            except (TimeoutError, dns.exception.Timeout):
                continue
            except (OSError, dns.exception.DNSException):
                return None  # refused or unreachable: no server to ask
            if reply is None:
                continue
            if reply.rcode() != dns.rcode.NOERROR:
                return []
            want = dns.rdatatype.from_text(qtype)
            return [rd.to_text() for rrset in reply.answer if rrset.rdtype == want
                    for rd in rrset]
        return None
    return ask


def run(argv: Sequence[str], resolv_conf: str, out: TextIO, err: TextIO,
        port: int = 53) -> int:
    """The command: `argv` without the program name; returns the exit status."""
    if not argv or len(argv) > 2 or argv[0] in ("-h", "--help"):
        err.write(USAGE)
        return 1
    config = ResolverConfig.from_text(resolv_conf)
    server = argv[1] if len(argv) == 2 else (config.nameservers[0] if config.nameservers
                                              else "127.0.0.1")
    try:
        ipaddress.ip_address(server)
    except ValueError:
        err.write(f"nslookup: bad address '{server}'\n")
        return 1
    query = udp_query(server, port, config.timeout, config.attempts)
    out.write(render_host("Server:", server, [Answer(server, reverse(server, query))]))
    try:
        addresses = lookup(argv[0], config, query)
    except ValueError:
        addresses = []
    if not addresses:
        out.flush()
        err.write(f"nslookup: can't resolve '{argv[0]}'\n")
        return 1
    out.write(render_host("Name:", argv[0],
                          [Answer(a, reverse(a, query)) for a in addresses]))
    return 0


def main() -> int:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        text = ""
    return run(sys.argv[1:], text, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
