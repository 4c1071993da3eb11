"""What `ClusterDNS.handle` hands the server edge, and how the edge finishes a chase.

The edge does all I/O; the core only says what to do with one query:

    answer   send `wire` back to the client
    forward  not ours: send the client's original bytes upstream, relay the reply
    chase    an ExternalName outside the zone: `wire` is the CNAME-only reply; resolve
             (`target`, `qtype`) upstream and send `append_chase(wire, upstream_reply,
             max_size=reply.max_size)`, or `wire` as it is if upstream fails
    drop     send nothing (not a query: too short, or a response)

CoreDNS behaves the same way for an outside target: the CNAME, then whatever the
upstream answer section holds, rcode NOERROR even if upstream said NXDOMAIN.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message

from svcnet.dns.wire import MAX_TCP_MESSAGE, MIN_UDP_PAYLOAD


class Action(StrEnum):
    ANSWER = "answer"
    FORWARD = "forward"
    CHASE = "chase"
    DROP = "drop"


class Reply(NamedTuple):
    """The verdict on one query (see the module docstring).

    `qname` is the lower-cased question name with a trailing dot ("" when the packet had
    no readable question), for logs and metrics; `rcode` is the rcode of `wire` (0 for
    forward and drop). `max_size` is the largest reply this client takes on its transport
    (65535 over TCP, else its EDNS payload size, at least 512), for `append_chase`.
    """

    action: Action
    wire: bytes | None
    qname: str
    qtype: int
    rcode: int
    target: str | None = None
    max_size: int = MIN_UDP_PAYLOAD


def append_chase(cname_response: bytes, upstream_response: bytes, *,
                 max_size: int = MAX_TCP_MESSAGE) -> bytes:
    """`cname_response` with the answer records of `upstream_response` appended.

    The ID, flags, question (in the client's case) and rcode of `cname_response` are
    kept. If the result exceeds `max_size` it is returned truncated (TC, no records) so
    the client retries over TCP. Never raises: an upstream reply that does not parse
    leaves `cname_response` unchanged.
    """
    try:
        reply = dns.message.from_wire(cname_response)
        upstream = dns.message.from_wire(upstream_response, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError):
        return cname_response
    reply.answer.extend(upstream.answer)
    try:
        return reply.to_wire(max_size=max(max_size, MIN_UDP_PAYLOAD))
    except dns.exception.TooBig:
        reply.answer.clear()
        reply.authority.clear()
        reply.additional.clear()
        reply.flags |= dns.flags.TC
        return reply.to_wire()
