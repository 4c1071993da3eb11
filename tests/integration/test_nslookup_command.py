"""The busybox image's nslookup command against a real DNS server on loopback."""

from __future__ import annotations

import io

from conftest import free_port

from svcnet.dns.fake_upstream import StaticUpstream
from svcnet.images.nslookup import run

POD_RESOLV = ("nameserver 10.96.0.10\n"
              "search default.svc.cluster.local svc.cluster.local cluster.local\n"
              "options ndots:5\n")


def test_the_command_against_a_real_server_on_loopback() -> None:
    records = [("kubernetes.default.svc.cluster.local.", "A", "10.96.0.1", 30),
               ("1.0.96.10.in-addr.arpa.", "PTR", "kubernetes.default.svc.cluster.local.", 30)]
    with StaticUpstream(records) as server:
        resolv = POD_RESOLV.replace("10.96.0.10", server.address[0]) + "options timeout:1\n"
        out, err = io.StringIO(), io.StringIO()
        assert run(["kubernetes.default"], resolv, out, err, port=server.address[1]) == 0
        assert out.getvalue().endswith("Name:      kubernetes.default\nAddress 1: 10.96.0.1 "
                                       "kubernetes.default.svc.cluster.local\n\n")
        assert out.getvalue().startswith(f"Server:    {server.address[0]}\n")
        out, err = io.StringIO(), io.StringIO()
        assert run(["nothere.default"], resolv, out, err, port=server.address[1]) == 1
        assert err.getvalue() == "nslookup: can't resolve 'nothere.default'\n"
    # nobody answering: a clear failure after the resolver's timeout, not a hang
    out, err = io.StringIO(), io.StringIO()
    silent = "nameserver 127.0.0.1\noptions timeout:1 attempts:1 ndots:1\n"
    assert run(["x.example."], silent, out, err, port=free_port()) == 1
    assert "can't resolve 'x.example.'" in err.getvalue()
