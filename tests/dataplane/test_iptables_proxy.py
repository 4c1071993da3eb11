"""The iptables proxier against the real kernel, inside a network namespace the test makes.

`IPTables(netns=NS)` / `Conntrack(netns=NS)` prefix every command with `ip netns exec NS`,
so nothing runs in the root namespace; the test checks that the root namespace's
iptables-save output is byte-for-byte unchanged (counters aside) and deletes the namespace
in `finally`.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import secrets
import shutil
import subprocess
from typing import Any, AsyncIterator

import pytest

from svcnet.api.defaults import apply_defaults
from svcnet.api.kinds import Kind
from svcnet.client.api import Obj, WatchEvent
from svcnet.dataplane.iptables import Conntrack, IPTables
from svcnet.proxy.proxier import IPTablesProxier
from svcnet.rules import iptables_names as n

pytestmark = [
    pytest.mark.dataplane,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in
                           ("ip", "iptables", "iptables-restore", "iptables-save",
                            "conntrack")),
                       reason="needs ip, iptables(-restore/-save) and conntrack"),
]


def _root_rules() -> str:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in out.splitlines() if not ln.startswith("#")]
    return re.sub(r"\[\d+:\d+\]", "", "\n".join(lines))


def _svc(name: str, ip: str) -> Obj:
    obj: Obj = {"kind": "Service", "metadata": {"name": name, "namespace": "ns1",
                                                "resourceVersion": "1"},
                "spec": {"clusterIP": ip, "ports": [{"name": "p", "port": 80}]}}
    apply_defaults("Service", obj)
    return obj


def _slice(service: str, ips: list[str], rv: str = "1") -> Obj:
    obj: Obj = {"kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"{service}-x", "namespace": "ns1", "resourceVersion": rv,
                             "labels": {"kubernetes.io/service-name": service}},
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
                "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}]}
    apply_defaults("EndpointSlice", obj)
    return obj


class _Client:
    def __init__(self, initial: dict[str, list[Obj]]) -> None:
        self.initial = initial
        self.queues: dict[str, asyncio.Queue[WatchEvent]] = {}

    async def list(self, kind: Kind, namespace: str | None = None, **_: Any
                   ) -> tuple[list[Obj], str]:
        return [copy.deepcopy(o) for o in self.initial.get(kind.kind, [])], "1"

    async def watch(self, kind: Kind, namespace: str | None, resource_version: str,
                    **_: Any) -> AsyncIterator[WatchEvent]:
        q = self.queues.setdefault(kind.kind, asyncio.Queue())
        while True:
            yield await q.get()


def _ns_exec(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          check=True).stdout


async def test_proxier_in_a_namespace() -> None:
    ns = f"svcnet-t{secrets.token_hex(4)}"
    root_before = _root_rules()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    tasks: list[asyncio.Task[None]] = []
    try:
        client = _Client({"Service": [_svc("web", "172.30.0.10"), _svc("db", "172.30.0.20")],
                          "EndpointSlice": [_slice("web", ["10.244.1.5", "10.244.1.6"]),
                                            _slice("db", ["10.244.1.7"])]})
        ipt = IPTables(netns=ns)
        proxier = IPTablesProxier(client, "node-a", ["192.168.50.2"],  # type: ignore[arg-type]
                                  "10.244.0.0/16", ipt, Conntrack(netns=ns))
        tasks = await asyncio.wait_for(proxier.start(), 10)
        web = n.svc_chain("ns1/web:p", "TCP")
        db = n.svc_chain("ns1/db:p", "TCP")

        assert proxier.sync()                      # full
        saved = _ns_exec(ns, "iptables-save", "-t", "nat")
        assert f":{web} - " in saved and f":{db} - " in saved
        assert f"-A {web}" in saved and "--probability 0.50000000000" in saved
        assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" " \
               "-j KUBE-SERVICES" in saved
        for table in ("mangle", "nat", "filter"):
            assert ipt.chain_exists(table, n.KUBE_PROXY_CANARY)

        # Partial: web loses an endpoint; only web's chains are in the payload.
        client.queues["EndpointSlice"].put_nowait(
            WatchEvent("MODIFIED", _slice("web", ["10.244.1.5"], rv="2")))
        for _ in range(10):
            await asyncio.sleep(0)
        assert proxier.changes.endpoints.pending == 1
        assert proxier.sync()
        assert proxier.previous is not None and not proxier.previous.full_sync
        saved = _ns_exec(ns, "iptables-save", "-t", "nat")
        assert "--probability" not in saved
        assert n.sep_chain("ns1/web:p", "TCP", "10.244.1.6:8080") not in saved
        assert f"-A {db}" in saved                 # untouched, still there

        # Someone flushes nat (rules and chains) by hand: the canary notices.
        _ns_exec(ns, "iptables", "-t", "nat", "-F")
        _ns_exec(ns, "iptables", "-t", "nat", "-X")
        assert f"-A {web}" not in _ns_exec(ns, "iptables-save", "-t", "nat")
        assert not proxier.check_canary()
        assert proxier.sync()
        assert proxier.previous is not None and proxier.previous.full_sync
        saved = _ns_exec(ns, "iptables-save", "-t", "nat")
        assert f"-A {web}" in saved and f"-A {db}" in saved
        assert "-j KUBE-SERVICES" in saved and proxier.check_canary()

        # conntrack in the namespace: nothing to delete is not an error.
        assert Conntrack(netns=ns).delete_udp_to_service("172.30.0.10", 80) == 0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert _root_rules() == root_before
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                    text=True).stdout
