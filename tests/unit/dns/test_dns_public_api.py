"""The surface the server edge is written against (bench/dns.py and the UDP/TCP server)."""

from __future__ import annotations

import inspect

import svcnet.dns
from svcnet.dns import Action, ClusterDNS, Reply, append_chase


def test_exports() -> None:
    assert sorted(svcnet.dns.__all__) == ["Action", "CacheInfo", "ClusterDNS", "PodMode",
                                          "Reply", "append_chase"]


def test_signatures() -> None:
    handle = inspect.signature(ClusterDNS.handle)
    assert str(handle) == "(self, wire: 'bytes', *, tcp: 'bool') -> 'Reply'"
    assert list(inspect.signature(ClusterDNS.apply).parameters) == ["self", "kind", "old", "new"]
    assert list(inspect.signature(append_chase).parameters)[:2] == ["cname_response",
                                                                    "upstream_response"]
    assert Reply._fields == ("action", "wire", "qname", "qtype", "rcode", "target", "max_size")
    assert {a.value for a in Action} == {"answer", "forward", "chase", "drop"}
    assert Action.ANSWER == "answer"
