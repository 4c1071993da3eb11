"""Cluster DNS served by an in-process API server: real sockets, real queries (dnspython).

The API server runs with `dns=` as `svcnet server --dns-listen` runs it; outside names go
to a StaticUpstream on loopback (never the machine's resolver).
"""

from __future__ import annotations

import asyncio
import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from conftest import eventually, free_port

from svcnet.api.kinds import kind_for
from svcnet.apiserver.auth import TokenFile
from svcnet.apiserver.server import ApiServer
from svcnet.dns.app import DnsConfig
from svcnet.dns.fake_upstream import StaticUpstream
from svcnet.store.factory import open_store

SERVICES = kind_for("", "services")
SLICES = kind_for("discovery.k8s.io", "endpointslices")
ENDPOINTS = kind_for("", "endpoints")



class Dns:
    def __init__(self, api: ApiServer, port: int, metrics_port: int,
                 upstream: StaticUpstream) -> None:
        self.api, self.port, self.metrics_port, self.upstream = api, port, metrics_port, upstream

    async def ask(self, name: str, rdtype: str = "A", *, tcp: bool = False,
                  edns: bool = False) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, use_edns=0 if edns else None)
        fn = dns.query.tcp if tcp else dns.query.udp
        return await asyncio.to_thread(fn, q, "127.0.0.1", 3, self.port)

    async def create(self, kind: Any, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = await self.api.registry.create(kind, ns, obj)
        return out


@asynccontextmanager
async def serving(tmp_path: Path, config: DnsConfig, **api_kw: Any
                  ) -> AsyncIterator[ApiServer]:
    """An in-process API server with `config`'s DNS, started (bootstrap, DNS sockets,
    informers) and cleaned up afterwards."""
    store = await open_store("memory", str(tmp_path))
    api = ApiServer(store, TokenFile(tmp_path / "tokens.json"), server_address="127.0.0.1:0",
                    dns=config, **api_kw)
    runner = aiohttp.web.AppRunner(api.app())
    await runner.setup()  # runs on_startup
    try:
        assert api.dns is not None
        yield api
    finally:
        await runner.cleanup()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Dns]:
    with StaticUpstream([("www.upstream.test.", "A", "192.0.2.80", 60),
                         ("db.upstream.test.", "A", "192.0.2.33", 60)]) as upstream:
        port, metrics_port = free_port(), free_port()
        config = DnsConfig(listen=[("127.0.0.1", port)], upstreams=[upstream.address],
                           metrics_listen=("127.0.0.1", metrics_port))
        async with serving(tmp_path, config, advertise=("127.0.0.1", 6443),
                           dns_endpoint="127.0.0.1") as api:
            assert api.dns is not None
            await eventually(lambda: api.dns is not None and api.dns.core.synced, timeout=2)
            yield Dns(api, port, metrics_port, upstream)


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}], **spec}}


async def test_kube_dns_service_points_at_the_server(served: Dns) -> None:
    kd = await served.api.registry.get(SERVICES, "kube-system", "kube-dns")
    assert kd["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in kd["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    ep = await served.api.registry.get(ENDPOINTS, "kube-system", "kube-dns")
    assert ep["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
    assert {p["port"] for p in ep["subsets"][0]["ports"]} == {served.port, served.metrics_port}
    r = await served.ask("kube-dns.kube-system.svc.cluster.local.")
    assert [rr.to_text() for rr in r.answer[0]] == ["10.96.0.10"]


async def test_created_service_resolves_and_deleted_one_stops_at_once(served: Dns) -> None:
    created = await served.create(SERVICES, "default", svc("web"))
    name = "Web.Default.svc.cluster.local."
    r = await served.ask(name)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert r.answer[0].name.to_text() == name  # the question's case is kept
    assert [rr.to_text() for rr in r.answer[0]] == [created["spec"]["clusterIP"]]
    await served.api.registry.delete(SERVICES, "default", "web")
    t0 = time.monotonic()
    while (await served.ask(name)).rcode() != dns.rcode.NXDOMAIN:
        assert time.monotonic() - t0 < 1.0
        await asyncio.sleep(0.01)
    neg = await served.ask(name)
    assert neg.authority and neg.authority[0].rdtype == dns.rdatatype.SOA


async def test_outside_names_are_forwarded_and_cached(served: Dns) -> None:
    r = await served.ask("www.upstream.test.")
    assert [rr.to_text() for rr in r.answer[0]] == ["192.0.2.80"]
    assert not r.flags & dns.flags.AA
    r2 = await served.ask("WWW.upstream.test.")
    assert r2.answer[0].ttl <= 30 and r2.question[0].name.to_text() == "WWW.upstream.test."
    assert served.upstream.queries[("www.upstream.test.", "A")] == 1
    nx = await served.ask("missing.upstream.test.")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    tcp = await served.ask("www.upstream.test.", tcp=True)
    assert [rr.to_text() for rr in tcp.answer[0]] == ["192.0.2.80"]


async def test_external_name_is_chased_upstream(served: Dns) -> None:
    await served.create(SERVICES, "default", {
        "metadata": {"name": "db"},
        "spec": {"type": "ExternalName", "externalName": "db.upstream.test"}})
    r = await served.ask("db.default.svc.cluster.local.")
    texts = sorted(rr.to_text() for rrset in r.answer for rr in rrset)
    assert texts == ["192.0.2.33", "db.upstream.test."]


async def test_big_udp_answer_is_truncated_and_complete_over_tcp(served: Dns) -> None:
    await served.create(SERVICES, "default", svc("many", clusterIP="None", selector={"a": "b"}))
    await served.create(SLICES, "default", {
        "metadata": {"name": "many-1", "labels": {"kubernetes.io/service-name": "many"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.244.1.{i}"], "conditions": {"ready": True}}
                      for i in range(1, 61)]})
    name = "many.default.svc.cluster.local."
    await asyncio.sleep(0.05)
    udp = await served.ask(name)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = await served.ask(name, tcp=True)
    assert len(tcp.answer[0]) == 60
    edns = await served.ask(name, edns=True)  # 1232 bytes are enough for 60 A records
    assert not edns.flags & dns.flags.TC and len(edns.answer[0]) == 60


async def test_malformed_packets_do_not_disturb_other_queries(served: Dns) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\x01\x00" + b"\x00\x01" * 4,
                     bytes(range(256)), b"\xc0\x0c" * 300):
            sock.sendto(junk, ("127.0.0.1", served.port))
    finally:
        sock.close()
    r = await served.ask("kubernetes.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR
    del loop


async def test_metrics_carry_coredns_names(served: Dns) -> None:
    await served.ask("kubernetes.default.svc.cluster.local.")
    await served.ask("nothing.default.svc.cluster.local.")
    await served.ask("www.upstream.test.")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{served.metrics_port}/metrics") as resp:
            text = await resp.text()
    assert 'coredns_dns_requests_total{family="1",proto="udp"' in text
    assert 'coredns_dns_responses_total{plugin="kubernetes",rcode="NXDOMAIN"' in text
    assert 'coredns_forward_requests_total{to="127.0.0.1:' in text
    assert "coredns_cache_misses_total" in text


async def test_forwarding_loop_is_detected_and_answered_servfail(tmp_path: Path) -> None:
    port = free_port()
    # the upstream is this server itself: every forwarded query would come back to us
    config = DnsConfig(listen=[("127.0.0.1", port)], upstreams=[("127.0.0.1", port)])
    async with serving(tmp_path, config) as api:
        dns_app = api.dns
        assert dns_app is not None
        await eventually(lambda: dns_app.forwarder.looped, timeout=2)
        q = dns.message.make_query("www.example.org.", "A")
        t0 = time.monotonic()
        r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", 3, port)
        assert r.rcode() == dns.rcode.SERVFAIL and time.monotonic() - t0 < 1
        assert dns_app.forwarder.probes_seen <= 3


async def test_query_log_has_a_line_per_query_udp_and_tcp() -> None:
    from svcnet.dns import ClusterDNS
    from svcnet.dns.metrics import DnsMetrics
    from svcnet.dns.server import DnsServer
    from svcnet.dns.testing import populate
    from svcnet.dns.upstream import Forwarder
    core = ClusterDNS()
    names = populate(core, 3)
    lines: list[str] = []
    server = DnsServer(core, Forwarder([("127.0.0.1", 9)], timeout=0.2),
                       DnsMetrics("dns://test"), query_log=lines.append)
    host, port = await server.start("127.0.0.1", 0)
    try:
        q = dns.message.make_query(names[0], "A")
        await asyncio.to_thread(dns.query.udp, q, host, 3, port)
        await asyncio.to_thread(dns.query.tcp, dns.message.make_query("x.invalid.", "A"),
                                host, 3, port)
        await eventually(lambda: len(lines) == 2, timeout=2)
        assert f'"A IN {names[0]} udp' in lines[0] and " NOERROR qr,aa,rd " in lines[0]
        assert lines[0].startswith("127.0.0.1:")
        assert '"A IN x.invalid. tcp' in lines[1] and " SERVFAIL " in lines[1]
    finally:
        await server.close()
