"""IPTablesProxier against FakeIPTables / FakeConntrack and a scripted ApiClient.

The fake client serves a list and then a watch fed by the test, so the real Informer code
fills the caches; time is a fake clock; syncs are called explicitly (the runner's schedule
is tested in test_runner.py).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.defaults import apply_defaults
from svcnet.api.kinds import Kind
from svcnet.client.api import Obj, WatchEvent
from svcnet.dataplane.errors import ApplyError
from svcnet.dataplane.testing import FakeConntrack, FakeIPTables
from svcnet.proxy.metrics import healthz_app, metrics_app
from svcnet.proxy.proxier import IPTablesProxier
from svcnet.rules import iptables_names as n

NODE = "node-a"


def svc(name: str, ip: str, *, protocol: str = "TCP", node_port: int = 0,
        ns: str = "ns1") -> Obj:
    port: dict[str, Any] = {"name": "p", "port": 80, "protocol": protocol}
    spec: dict[str, Any] = {"clusterIP": ip, "ports": [port]}
    if node_port:
        port["nodePort"] = node_port
        spec["type"] = "NodePort"
    obj: Obj = {"kind": "Service", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
                "spec": spec}
    apply_defaults("Service", obj)
    return obj


def eps(service: str, ips: list[str], *, protocol: str = "TCP", rv: str = "1",
        trigger: str | None = None, ns: str = "ns1") -> Obj:
    meta: dict[str, Any] = {"name": f"{service}-x", "namespace": ns, "resourceVersion": rv,
                            "labels": {"kubernetes.io/service-name": service}}
    if trigger:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    obj: Obj = {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "addressType": "IPv4", "metadata": meta,
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                               "nodeName": "node-b"} for ip in ips],
                "ports": [{"name": "p", "port": 8080, "protocol": protocol}]}
    apply_defaults("EndpointSlice", obj)
    return obj


class FakeClient:
    """list() returns the initial objects; watch() yields what the test pushes."""

    def __init__(self, initial: dict[str, list[Obj]]) -> None:
        self.initial = initial
        self.queues: dict[str, asyncio.Queue[WatchEvent]] = {}

    def _q(self, kind: Kind) -> asyncio.Queue[WatchEvent]:
        return self.queues.setdefault(kind.kind, asyncio.Queue())

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "") -> tuple[list[Obj], str]:
        return [copy.deepcopy(o) for o in self.initial.get(kind.kind, [])], "1"

    async def watch(self, kind: Kind, namespace: str | None, resource_version: str, *,
                    label_selector: str = "", field_selector: str = "",
                    timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        q = self._q(kind)
        while True:
            yield await q.get()

    def push(self, kind: str, ev_type: str, obj: Obj) -> None:
        self.queues.setdefault(kind, asyncio.Queue()).put_nowait(WatchEvent(ev_type, obj))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
async def env() -> AsyncIterator[tuple[IPTablesProxier, FakeClient, FakeIPTables,
                                       FakeConntrack, Clock]]:
    client = FakeClient({
        "Service": [svc("a", "172.30.0.10"), svc("b", "172.30.0.20")],
        "EndpointSlice": [eps("a", ["10.244.1.5"]), eps("b", ["10.244.1.6", "10.244.1.7"])],
        "Node": [{"kind": "Node", "metadata": {"name": NODE, "resourceVersion": "1",
                                               "labels": {"topology.kubernetes.io/zone": "z1"}}}],
    })
    ipt, ct, clock = FakeIPTables(), FakeConntrack(), Clock()
    proxier = IPTablesProxier(
        client, NODE, ["192.168.50.2"], "10.244.0.0/16",  # type: ignore[arg-type]
        ipt, ct, clock=clock)
    yield proxier, client, ipt, ct, clock


async def started(proxier: IPTablesProxier) -> list[asyncio.Task[None]]:
    return await asyncio.wait_for(proxier.start(), 5)


def declared(payload: str) -> set[str]:
    return {line[1:].split()[0] for line in payload.splitlines() if line.startswith(":")}


def chains_of(name: str) -> str:
    return n.svc_chain(f"ns1/{name}:p", "TCP")


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_no_rules_before_both_informers_synced(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    assert proxier.sync() is True
    assert ipt.restored == [] and not ipt.tables
    proxier.changes.services.mark_synced()     # only one kind synced: still nothing
    assert proxier.sync() is True and ipt.restored == []
    assert not proxier.runner.pending


async def test_first_sync_is_full_with_jumps_and_canary(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.runner.pending          # the gate opening asks for a sync
        assert proxier.node_labels == {"topology.kubernetes.io/zone": "z1"}
        assert proxier.sync()
        (payload,) = ipt.restored
        assert {chains_of("a"), chains_of("b")} <= declared(payload)
        assert any(r.save("PREROUTING").endswith("-j KUBE-SERVICES")
                   for r in ipt.rules("nat", "PREROUTING"))
        for table in ("mangle", "nat", "filter"):
            assert ipt.has_chain(table, n.KUBE_PROXY_CANARY)
        # Jump rules are idempotent across full syncs.
        before = len(ipt.rules("filter", "INPUT"))
        proxier.force_full = True
        assert proxier.sync()
        assert len(ipt.rules("filter", "INPUT")) == before
        m = proxier.metrics
        assert m.value("kubeproxy_sync_full_proxy_rules_duration_seconds_count") == 2
        assert m.value("kubeproxy_sync_proxy_rules_last_timestamp_seconds") == clock.now
    finally:
        await stop(tasks)


async def test_endpoint_change_gives_partial_sync_of_that_service(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        client.push("EndpointSlice", "MODIFIED",
                    eps("a", ["10.244.1.5", "10.244.1.9"], rv="2",
                        trigger="2023-11-14T22:13:18Z"))
        await settle()
        assert proxier.changes.endpoints.pending == 1 and proxier.runner.pending
        clock.now += 2
        assert proxier.sync()
        payload = ipt.restored[-1]
        names = declared(payload)
        assert chains_of("a") in names and chains_of("b") not in names
        # a keeps endpoints, so its KUBE-SERVICES jump is the same: shared chains whose
        # content did not change are not rewritten, and the filter table is left alone.
        assert n.KUBE_SERVICES not in names and "*filter" not in payload
        assert ipt.rules("nat", n.KUBE_SERVICES)
        # b's chains are still in the kernel, untouched.
        assert ipt.rules("nat", chains_of("b"))
        assert "--probability 0.50000000000" in ipt.save(["nat"])
        m = proxier.metrics
        assert m.value("kubeproxy_sync_partial_proxy_rules_duration_seconds_count") == 1
        assert m.value("kubeproxy_sync_proxy_rules_endpoint_changes_total") == 3
        assert m.value("kubeproxy_network_programming_duration_seconds_count") == 1
        # trigger at 1700000000 - 2 (22:13:18Z is 1699999998) -> 4 s before the sync end
        assert m.value("kubeproxy_network_programming_duration_seconds_sum") == \
            pytest.approx(clock.now - 1_699_999_998.0)
    finally:
        await stop(tasks)


async def test_failed_restore_makes_next_sync_full(env: Any, monkeypatch: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        client.push("Service", "DELETED", svc("b", "172.30.0.20"))
        await settle()
        real = ipt.restore

        def broken(payload: str) -> None:
            raise ApplyError("iptables-restore", 3, "-A X", "injected")
        monkeypatch.setattr(ipt, "restore", broken)
        assert proxier.sync() is False
        m = proxier.metrics
        assert m.value("kubeproxy_sync_proxy_rules_iptables_restore_failures_total") == 1
        assert m.value("kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total") \
            == 1
        monkeypatch.setattr(ipt, "restore", real)
        assert proxier.sync()
        assert proxier.previous is not None and proxier.previous.full_sync
        assert chains_of("b") not in ipt.chain_names("nat")   # stale chain deleted
    finally:
        await stop(tasks)


async def test_canary_removed_forces_full_resync(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.check_canary()            # nothing programmed yet: fine
        assert proxier.sync()
        assert proxier.check_canary()
        # Someone flushes nat by hand (with -X): rules and canary gone.
        ipt.tables.pop("nat")
        assert not proxier.check_canary()
        assert proxier.force_full and proxier.runner.pending
        assert proxier.sync()
        assert proxier.previous is not None and proxier.previous.full_sync
        assert ipt.has_chain("nat", n.KUBE_PROXY_CANARY)
        assert ipt.rules("nat", chains_of("a"))
    finally:
        await stop(tasks)


async def test_udp_conntrack_cleanup(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    client.initial["Service"].append(svc("dns", "172.30.0.53", protocol="UDP",
                                         node_port=30053))
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        assert ct.calls == []                      # no endpoints yet: nothing to clear
        client.push("EndpointSlice", "ADDED", eps("dns", ["10.244.1.53"], protocol="UDP"))
        await settle()
        assert proxier.sync()
        assert ct.calls == [("service", "172.30.0.53", 80), ("service", None, 30053)]
        ct.calls.clear()
        client.push("EndpointSlice", "MODIFIED",
                    eps("dns", ["10.244.1.54"], protocol="UDP", rv="2"))
        await settle()
        assert proxier.sync()
        assert ct.calls == [("endpoint", "10.244.1.53", 8080)]
        ct.calls.clear()
        ct.fail = True                              # conntrack failure never fails a sync
        client.push("EndpointSlice", "DELETED",
                    eps("dns", ["10.244.1.54"], protocol="UDP", rv="3"))
        await settle()
        assert proxier.sync()
    finally:
        await stop(tasks)


async def test_node_label_change_forces_full_sync(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        client.push("Node", "MODIFIED", {"kind": "Node", "metadata": {
            "name": NODE, "resourceVersion": "2",
            "labels": {"topology.kubernetes.io/zone": "z2"}}})
        await settle()
        assert proxier.sync()
        assert proxier.previous is not None and proxier.previous.full_sync
        assert proxier.previous_snapshot is not None
        assert proxier.previous_snapshot.node.zone == "z2"
    finally:
        await stop(tasks)


async def test_metrics_and_health(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        m = proxier.metrics
        assert m.value("kubeproxy_sync_proxy_rules_iptables_total", {"table": "nat"}) == \
            proxier.previous.nat_rules_total  # type: ignore[union-attr]
        assert m.value("kubeproxy_sync_proxy_rules_iptables_total", {"table": "filter"}) > 0
        assert m.value("kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                       {"traffic_policy": "internal"}) == 0
        assert proxier.health().healthy
        client.push("Service", "ADDED", svc("c", "172.30.0.30"))
        await settle()
        assert m.value("kubeproxy_sync_proxy_rules_service_changes_total") == 3
        assert m.value("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds") == clock.now
        clock.now += 61                            # queued > 2 x sync_period ago
        assert not proxier.health().healthy
        async with TestClient(TestServer(healthz_app(proxier.health, m))) as http:
            resp = await http.get("/healthz")
            assert resp.status == 503
            assert set(await resp.json()) == {"lastUpdated", "currentTime"}
        assert proxier.sync() and proxier.health().healthy
        async with TestClient(TestServer(healthz_app(proxier.health, m))) as http:
            assert (await http.get("/healthz")).status == 200
        async with TestClient(TestServer(metrics_app(m))) as http:
            text = await (await http.get("/metrics")).text()
            assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in text
            assert 'kubeproxy_proxy_healthz_total{code="503"} 1.0' in text
    finally:
        await stop(tasks)


async def test_run_loop_syncs_after_start(env: Any) -> None:
    proxier, client, ipt, ct, clock = env
    task = asyncio.create_task(proxier.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.01)
            if ipt.restored:
                break
        assert len(ipt.restored) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_random_changes_by_partial_syncs_leave_what_a_full_sync_writes(env: Any) -> None:
    """Whatever sequence of Service and EndpointSlice events arrives, the kernel state after
    the (incremental) partial syncs equals that of one full sync from scratch."""
    import random

    from svcnet.rules import compile_full, render_restore
    proxier, client, ipt, ct, clock = env
    rng = random.Random(7)

    def ours(save: str) -> list[str]:
        """The KUBE-* chains and their rules (not the canary, not the built-in jumps)."""
        return [line for line in save.splitlines()
                if line.startswith((":KUBE-", "-A KUBE-")) and "CANARY" not in line]
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        partials = 0
        for step in range(60):
            name = rng.choice("abcdef")
            roll = rng.random()
            if roll < 0.2:
                client.push("Service", "DELETED", svc(name, "172.30.0.1"))
            elif roll < 0.4:
                client.push("Service", "ADDED",
                            svc(name, f"172.30.1.{rng.randrange(1, 250)}",
                                node_port=rng.choice([0, 30000 + step])))
            elif roll < 0.55:
                client.push("EndpointSlice", "DELETED", eps(name, []))
            else:
                ips = [f"10.244.{rng.randrange(1, 3)}.{rng.randrange(2, 40)}"
                       for _ in range(rng.randrange(0, 4))]
                client.push("EndpointSlice", "MODIFIED", eps(name, ips, rv=str(step + 2)))
            await settle()
            clock.now += 2
            assert proxier.sync()
            partials += not proxier.previous.full_sync  # type: ignore[union-attr]
            assert proxier.previous_snapshot is not None
            fresh = FakeIPTables()
            fresh.restore(render_restore(compile_full(proxier.previous_snapshot,
                                                      proxier.config)))
            for table in ("nat", "filter"):
                assert ours(ipt.save([table])) == ours(fresh.save([table])), f"step {step}"
        assert partials >= 50
    finally:
        await stop(tasks)


class BlockingIPTables(FakeIPTables):
    """FakeIPTables whose restore waits until the test releases it (a slow kernel)."""

    def __init__(self) -> None:
        super().__init__()
        import threading
        self.entered, self.release = threading.Event(), threading.Event()

    def restore(self, payload: str) -> None:
        self.entered.set()
        assert self.release.wait(5), "never released"
        super().restore(payload)


async def test_a_slow_restore_does_not_stall_the_event_loop(env: Any) -> None:
    """The agent shares its loop with the proxy: while iptables-restore runs (minutes for a
    full sync of a large cluster), heartbeats, pod work and new events must go on."""
    _, client, _, ct, clock = env
    ipt = BlockingIPTables()
    proxier = IPTablesProxier(client, NODE, ["192.168.50.2"], "10.244.0.0/16", ipt, ct,
                              clock=clock)
    tasks = await started(proxier)
    try:
        sync = asyncio.create_task(proxier.sync_async())
        assert await asyncio.to_thread(ipt.entered.wait, 5)
        ticks = 0
        for _ in range(20):  # the loop runs while restore is blocked
            await asyncio.sleep(0.001)
            ticks += 1
        assert ticks == 20 and not sync.done() and proxier.previous is None
        clock.now += 5
        client.push("EndpointSlice", "MODIFIED", eps("a", ["10.244.1.9"], rv="2"))
        await settle()  # a change during the sync: queued for the next one
        assert proxier.changes.endpoints.pending == 1
        ipt.release.set()
        assert await asyncio.wait_for(sync, 5) is True
        assert proxier.previous is not None and proxier.previous.full_sync
        assert "10.244.1.5" in ipt.save(["nat"])
        assert proxier.oldest_queued == clock.now  # the mid-sync change still waits
        assert proxier.sync()  # ...and the next sync writes it
        assert "10.244.1.9" in ipt.save(["nat"]) and proxier.oldest_queued is None
    finally:
        ipt.release.set()
        await stop(tasks)


async def test_a_failed_sync_keeps_the_time_its_changes_were_queued(env: Any,
                                                                  monkeypatch: Any) -> None:
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        queued_at = clock.now
        client.push("EndpointSlice", "MODIFIED", eps("a", ["10.244.1.9"], rv="2"))
        await settle()
        assert proxier.oldest_queued == queued_at
        clock.now += 61
        real = ipt.restore

        def broken(payload: str) -> None:
            raise ApplyError("iptables-restore", 3, "-A X", "boom")
        monkeypatch.setattr(ipt, "restore", broken)
        assert not await proxier.sync_async()
        assert proxier.oldest_queued == queued_at and not proxier.health().healthy
        monkeypatch.setattr(ipt, "restore", real)
        assert await proxier.sync_async() and proxier.health().healthy
    finally:
        await stop(tasks)


async def test_an_unexpected_error_in_a_sync_loses_no_change(env: Any,
                                                             monkeypatch: Any) -> None:
    """A bug in the kernel half (not a refusal by iptables) must still leave the next sync
    full, or the changes it drained would never be written."""
    proxier, client, ipt, ct, clock = env
    tasks = await started(proxier)
    try:
        assert proxier.sync()
        client.push("EndpointSlice", "MODIFIED", eps("a", ["10.244.1.9"], rv="2"))
        await settle()
        real = ipt.restore

        def buggy(payload: str) -> None:
            raise KeyError("bug")
        monkeypatch.setattr(ipt, "restore", buggy)
        with pytest.raises(KeyError):
            await proxier.sync_async()
        assert proxier.force_full and proxier.oldest_queued is not None
        monkeypatch.setattr(ipt, "restore", real)
        assert await proxier.sync_async()
        assert "10.244.1.9" in ipt.save(["nat"]) and proxier.previous.full_sync  # type: ignore[union-attr]
    finally:
        await stop(tasks)
