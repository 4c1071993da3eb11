"""The busybox image's nslookup command against a real DNS server on loopback."""

from __future__ import annotations

import io
import socket
import time

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



def test_a_dead_server_fails_fast_and_a_silent_one_after_one_timeout() -> None:
    # a closed port: refused at once (connected socket), as the C library sees it
    out, err = io.StringIO(), io.StringIO()
    closed = "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n" + \
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    t0 = time.monotonic()
    assert run(["kubernetes.default"], closed, out, err, port=free_port()) == 1
    assert time.monotonic() - t0 < 2
    assert err.getvalue() == "nslookup: can't resolve 'kubernetes.default'\n"
    # a server that never answers: one timeout for the Server line, one for the lookup,
    # not one per search domain
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        silent = POD_RESOLV.replace("10.96.0.10", "127.0.0.1") + \
            "options timeout:1 attempts:1 ndots:5\n"
        t0 = time.monotonic()
        out, err = io.StringIO(), io.StringIO()
        assert run(["kubernetes.default"], silent, out, err,
                   port=mute.getsockname()[1]) == 1
        assert time.monotonic() - t0 < 3.5
        assert "can't resolve" in err.getvalue()
