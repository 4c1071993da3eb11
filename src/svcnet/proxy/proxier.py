"""kube-proxy's iptables mode, run by the node agent: informers -> trackers -> one sync.

Data flow. Three informers (Services, EndpointSlices, this Node) feed the change trackers
(`svcnet.proxy.tracker`); every recorded change `request()`s a run of the
`BoundedFrequencyRunner`, which calls `sync()` at most once per `min_sync_period`. `sync()`:

1. refuses to do anything until both Services and EndpointSlices have fully synced
   (DESIGN.md: never act on partial state; rules from a half-filled cache would delete
   the chains of every Service not listed yet);
2. drains the trackers and decides FULL (first sync, after any failure — the drained
   changes are gone, so nothing smaller is known to be right —, after the canary vanished
   or the node's labels changed, and per `needs_full_sync`) or PARTIAL;
3. builds a `Snapshot` from the informer caches: from scratch on a full sync, otherwise
   by replacing only the changed Services in the previous one (`update_snapshot`), and
   compiles it: a partial compile reuses the previous compile of every unchanged Service
   and writes only changed Services' chains and shared chains whose content changed, so
   one endpoint change costs about the same with 10 or 10,000 Services;
4. on full syncs ensures the jump rules from the built-in chains and the canary chains;
5. applies the payload with ONE `iptables-restore` (`IPTables.restore`);
6. after success, deletes UDP conntrack entries that would keep pinning traffic: flows
   to a Service's VIPs when it went from no endpoints to some (they were never NATed),
   and flows NATed to endpoints that went away;
7. records kube-proxy's metrics.

The canary: `KUBE-PROXY-CANARY` exists in mangle, nat and filter after every full sync;
`check_canary()` (every `sync_period` in `run()`) forces a full resync when any of them is
gone, i.e. when someone flushed our tables. All three are checked, not only mangle as
upstream (kubernetes#129128), so flushing only nat is noticed too.

Everything that touches the kernel is injected (`iptables`, `conntrack`: the real edges in
`svcnet.dataplane.iptables` or the fakes in `svcnet.dataplane.testing`), and so is time
(`clock`, `sleep`), so the whole loop is unit-tested without root. The runner calls
`sync_async()`: steps 1-2 and the reading of the informer caches run on the event loop;
steps 3-6 (snapshot, compile, iptables, conntrack) on a worker thread, because the loop
is the node agent's too, and a full sync of a large cluster runs iptables-restore for
minutes. `sync()` does the same work all on the caller's thread (tests, tools).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import AbstractSet, Callable, Iterable, Protocol, Sequence

from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient, Obj
from svcnet.client.informer import Informer
from svcnet.dataplane.errors import ApplyError, DataplaneError
from svcnet.proxy.metrics import Health, ProxyMetrics
from svcnet.proxy.serviceport import ServicePortName
from svcnet.proxy.runner import BoundedFrequencyRunner, Sleep
from svcnet.proxy.endpoints import SERVICE_NAME_LABEL
from svcnet.proxy.snapshot import Snapshot, build_snapshot, update_snapshot
from svcnet.proxy.topology import categorize
from svcnet.proxy.tracker import ProxyChanges
from svcnet.rules import (
    FULL_SYNC_PERIOD_SECONDS,
    IPTablesConfig,
    RuleSet,
    compile_full,
    compile_partial,
    jump_rules,
    needs_full_sync,
    render_restore,
)
from svcnet.rules.iptables_names import KUBE_PROXY_CANARY, SERVICE_CHAIN_PREFIXES

log = logging.getLogger("svcnet.proxy")

SERVICES = kind_for("", "services")
ENDPOINT_SLICES = kind_for("discovery.k8s.io", "endpointslices")
NODES = kind_for("", "nodes")
CANARY_TABLES = ("mangle", "nat", "filter")
BY_SERVICE = "service"  # EndpointSlice informer index: (namespace, service-name label)


def _slice_service(obj: Obj) -> list[tuple[str, str]]:
    meta = obj.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [(str(meta.get("namespace") or "default"), str(svc))] if svc else []


@dataclass(frozen=True)
class _SyncJob:
    """What the event-loop half of a sync hands the kernel half: the decision, and the
    inputs read from the informers (all objects for a full sync; a partial one only the
    changed Services and their slices)."""
    start: float
    full: bool
    changed: AbstractSet[tuple[str, str]]
    triggers: Sequence[float]
    queued: float | None  # when the oldest change in this sync was queued
    previous: RuleSet | None
    previous_snapshot: Snapshot | None
    services: list[Obj] = field(default_factory=list)
    slices: list[Obj] = field(default_factory=list)
    node_labels: dict[str, str] = field(default_factory=dict)
    changed_services: dict[tuple[str, str], Obj | None] = field(default_factory=dict)
    changed_slices: dict[tuple[str, str], list[Obj]] = field(default_factory=dict)


@dataclass(frozen=True)
class _SyncResult:
    snapshot: Snapshot
    ruleset: RuleSet | None  # None: the sync failed
    restored: bool           # a payload was handed to iptables-restore
    end: float


class IPTablesEdge(Protocol):
    """What the proxier needs from iptables (`IPTables` and `FakeIPTables` both fit)."""

    def restore(self, payload: str) -> None: ...

    def ensure_chain(self, table: str, chain: str) -> bool: ...

    def ensure_rule(self, table: str, chain: str, args: Sequence[str], *,
                    position: str = "prepend") -> bool: ...

    def chain_exists(self, table: str, chain: str) -> bool: ...

    def existing_chains(self, table: str, prefixes: Iterable[str] = ()) -> set[str]: ...


class ConntrackEdge(Protocol):
    def delete_udp_to_service(self, ip: str | None, port: int) -> int: ...

    def delete_udp_to_endpoint(self, ip: str, port: int) -> int: ...


def _usable(snapshot: Snapshot | None,
            only: AbstractSet[tuple[str, str]] | None = None) -> dict[ServicePortName, int]:
    """Per UDP service port (of the Services in `only`, default all): how many endpoints
    traffic can reach (0 = rejected/dropped)."""
    out: dict[ServicePortName, int] = {}
    if snapshot is None:
        return out
    for svc in snapshot.service_ports:
        if svc.protocol == "UDP" and (only is None or svc.name.service in only):
            cat = categorize(snapshot.endpoints_for(svc.name), svc, snapshot.node)
            out[svc.name] = len(cat.all_reachable)
    return out


class IPTablesProxier:
    """The iptables proxy of one node (see the module docstring for the contract)."""

    def __init__(self, client: ApiClient, node_name: str, node_ips: Sequence[str],
                 cluster_cidr: str | None, iptables: IPTablesEdge, conntrack: ConntrackEdge,
                 *, clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep,
                 min_sync_period: float = 1.0, sync_period: float = 30.0,
                 masquerade_bit: int = 14, config: IPTablesConfig | None = None,
                 metrics: ProxyMetrics | None = None,
                 full_sync_period: float = FULL_SYNC_PERIOD_SECONDS) -> None:
        self.node_name = node_name
        self.config = config or IPTablesConfig(node_name=node_name, node_ips=tuple(node_ips),
                                               cluster_cidr=cluster_cidr,
                                               masquerade_bit=masquerade_bit)
        self.iptables = iptables
        self.conntrack = conntrack
        self.clock = clock
        self.sleep = sleep
        self.sync_period = sync_period
        self.full_sync_period = full_sync_period
        self.metrics = metrics or ProxyMetrics()
        self.changes = ProxyChanges()
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINT_SLICES)
        self.slices.add_index(BY_SERVICE, _slice_service)
        self.nodes = Informer(client, NODES, field_selector=f"metadata.name={node_name}")
        self.node_labels: dict[str, str] = {}
        # Upstream: (minSyncPeriod, retry = syncPeriod, max = FullSyncPeriod).
        self.runner = BoundedFrequencyRunner(
            "sync-runner", self._run_sync, min_interval=min_sync_period,
            max_interval=max(full_sync_period, min_sync_period), retry_interval=sync_period,
            clock=clock, sleep=sleep)
        # One kernel user at a time: the sync's worker thread or the canary check.
        self._kernel = asyncio.Lock()
        self.previous: RuleSet | None = None
        self.previous_snapshot: Snapshot | None = None
        self.force_full = True
        self.last_sync_failed = False
        self.last_full_sync: float | None = None
        self.last_synced: float | None = None
        self.oldest_queued: float | None = None
        self.syncs = 0
        self.services.add_handler(self._on_service)
        self.slices.add_handler(self._on_slice)
        self.nodes.add_handler(self._on_node)

    # ---- informer handlers ---------------------------------------------------------------

    def _queued(self) -> None:
        now = self.clock()
        if self.oldest_queued is None:
            self.oldest_queued = now
        self.metrics.last_queued_timestamp.set(now)
        self.metrics.service_changes_pending.set(self.changes.services.pending)
        self.metrics.endpoint_changes_pending.set(self.changes.endpoints.pending)
        if self.changes.ready:
            self.runner.request()

    def _on_service(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if self.changes.services.on_event(ev_type, old, new):
            self.metrics.service_changes_total.inc()
            self._queued()

    def _on_slice(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if self.changes.endpoints.on_event(ev_type, old, new):
            self.metrics.endpoint_changes_total.inc()
            self._queued()

    def _on_node(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if new is not None and new["metadata"].get("name") != self.node_name:
            return
        labels = dict((new or {}).get("metadata", {}).get("labels") or {})
        if labels != self.node_labels:
            # Topology (zone) can change every Service's endpoint choice: full sync.
            self.node_labels = labels
            self.force_full = True
            self._queued()

    def mark_synced(self) -> None:
        """Both caches are complete: open the gate and ask for the first (full) sync."""
        self.changes.services.mark_synced()
        self.changes.endpoints.mark_synced()
        self._queued()

    # ---- the sync ------------------------------------------------------------------------

    async def _run_sync(self) -> bool:
        return await self.sync_async()

    def _ensure_jumps_and_canary(self) -> None:
        for rule in jump_rules():
            self.iptables.ensure_chain(rule.table, rule.target)
            self.iptables.ensure_rule(rule.table, rule.chain, rule.args, position="prepend")
        for table in CANARY_TABLES:
            self.iptables.ensure_chain(table, KUBE_PROXY_CANARY)

    def sync(self) -> bool:
        """One sync (module docstring), all on the calling thread. Returns False on failure
        (the runner then retries within sync_period, and the next sync is full); True
        otherwise, including the "not synced yet, nothing done" case."""
        job = self._begin()
        if job is None:
            return True
        try:
            result = self._apply(job)
        except Exception:
            self._failed(job)
            raise
        return self._commit(job, result)

    async def sync_async(self) -> bool:
        """`sync()`, with the kernel work (and the compile) on a worker thread, so the event
        loop it shares with the node agent keeps serving while iptables-restore and
        conntrack run: a full sync of a large cluster takes minutes, and a command may wait
        for the xtables lock."""
        async with self._kernel:
            job = self._begin()
            if job is None:
                return True
            try:
                result = await asyncio.to_thread(self._apply, job)
            except Exception:
                self._failed(job)  # a bug, not a kernel refusal: still, lose no change
                raise
        return self._commit(job, result)

    def _begin(self) -> _SyncJob | None:
        """The event-loop half: drain the trackers, decide full or partial, and take the
        inputs from the informer caches (lists of their objects, which informers replace
        and never mutate, so the worker thread may read them while new events arrive)."""
        if not self.changes.ready:
            log.debug("not syncing: Services or EndpointSlices not synced yet")
            return None
        start = self.clock()
        queued, self.oldest_queued = self.oldest_queued, None
        svc_changes, ep_changes = self.changes.drain()
        self.metrics.service_changes_pending.set(0)
        self.metrics.endpoint_changes_pending.set(0)
        changed = svc_changes.services | ep_changes.services
        full = (self.force_full or self.previous is None or self.previous_snapshot is None
                or needs_full_sync(last_full_sync=self.last_full_sync, now=start,
                                   last_sync_failed=self.last_sync_failed,
                                   period=self.full_sync_period))
        if full:
            return _SyncJob(start, True, changed, ep_changes.trigger_times, queued,
                            self.previous, self.previous_snapshot, services=self.services.list(),
                            slices=self.slices.list(), node_labels=dict(self.node_labels))
        return _SyncJob(start, False, changed, ep_changes.trigger_times, queued,
                        self.previous, self.previous_snapshot,
                        changed_services={key: self.services.get(*key) for key in changed},
                        changed_slices={key: self.slices.by_index(BY_SERVICE, key)
                                        for key in changed})

    def _apply(self, job: _SyncJob) -> _SyncResult:
        """The kernel half (may run on a worker thread; touches no proxier state): build the
        snapshot, compile, apply with one iptables-restore, then clean UDP conntrack."""
        if job.full or job.previous_snapshot is None:
            snapshot = build_snapshot(job.services, job.slices, node_name=self.node_name,
                                      node_labels=job.node_labels)
        else:
            snapshot = update_snapshot(job.previous_snapshot, job.changed_services,
                                       job.changed_slices)
        payload = ""
        try:
            if job.full:
                # Ensured before the restore, as upstream: the built-in chains must jump
                # into ours, and the canary marks "our tables are intact".
                self._ensure_jumps_and_canary()
                existing = self.iptables.existing_chains("nat", SERVICE_CHAIN_PREFIXES)
                ruleset = compile_full(snapshot, self.config, existing_chains=existing)
            else:
                assert job.previous is not None
                ruleset = compile_partial(snapshot, self.config, job.changed, job.previous)
            payload = render_restore(ruleset)
            if payload:  # a partial sync may find nothing to write
                self.iptables.restore(payload)
        except (ApplyError, DataplaneError, OSError) as e:
            if isinstance(e, ApplyError) and payload:
                log.error("sync failed (%s sync): %s\n%s", "full" if job.full else "partial",
                          e, e.context(payload))
            else:
                log.error("sync failed (%s sync): %s", "full" if job.full else "partial", e)
            return _SyncResult(snapshot, None, bool(payload), self.clock())
        end = self.clock()
        self._clean_conntrack(job.previous_snapshot, snapshot,
                              None if job.full else job.changed)
        return _SyncResult(snapshot, ruleset, bool(payload), end)

    def _commit(self, job: _SyncJob, result: _SyncResult) -> bool:
        """The event-loop half after the kernel work: remember what is now programmed (or
        that the next sync must be full) and record the metrics."""
        self.syncs += 1
        if result.ruleset is None:
            if result.restored:
                self.metrics.restore_failures.inc()
                if not job.full:
                    self.metrics.partial_restore_failures.inc()
            self._failed(job)
            return False
        self.previous = result.ruleset
        self.previous_snapshot = result.snapshot
        self.force_full = False
        self.last_sync_failed = False
        if job.full:
            self.last_full_sync = job.start
        self.last_synced = result.end
        self._record_metrics(result.ruleset, job.full, job.start, result.end,
                             job.triggers)
        return True

    def _clean_conntrack(self, old: Snapshot | None, new: Snapshot,
                         only: AbstractSet[tuple[str, str]] | None) -> None:
        """Delete stale UDP flows (module docstring, step 6) of the Services in `only`
        (None: all; a partial sync knows nothing else changed). Failures are logged only:
        the rules are already right; stale entries merely age out."""
        before = _usable(old, only)
        gone: set[tuple[str, int]] = set()
        if old is not None:
            for svc in old.service_ports:
                if svc.protocol != "UDP" or (only is not None and svc.name.service not in only):
                    continue
                now_eps = {str(ep) for ep in new.endpoints_for(svc.name)}
                for ep in old.endpoints_for(svc.name):
                    if str(ep) not in now_eps:
                        gone.add((ep.ip, ep.port))
        try:
            for svc in new.service_ports:
                if svc.protocol != "UDP" or (only is not None and svc.name.service not in only):
                    continue
                reachable = len(categorize(new.endpoints_for(svc.name), svc, new.node)
                                .all_reachable)
                if reachable and not before.get(svc.name, 0):
                    self.conntrack.delete_udp_to_service(svc.cluster_ip, svc.port)
                    for ip in (*svc.external_ips, *svc.load_balancer_vips):
                        self.conntrack.delete_udp_to_service(ip, svc.port)
                    if svc.node_port:
                        self.conntrack.delete_udp_to_service(None, svc.node_port)
            for ip, port in sorted(gone):
                self.conntrack.delete_udp_to_endpoint(ip, port)
        except (DataplaneError, OSError) as e:
            log.warning("conntrack clean-up failed: %s", e)

    def _record_metrics(self, ruleset: RuleSet, full: bool, start: float, end: float,
                        triggers: Sequence[float]) -> None:
        m = self.metrics
        elapsed = max(0.0, end - start)
        m.sync_duration.observe(elapsed)
        (m.sync_full_duration if full else m.sync_partial_duration).observe(elapsed)
        for t in triggers:
            m.network_programming.observe(max(0.0, end - t))
        m.last_timestamp.set(end)
        m.iptables_total.labels(table="filter").set(ruleset.filter_rules_total)
        m.iptables_total.labels(table="nat").set(ruleset.nat_rules_total)
        m.iptables_last.labels(table="filter").set(len(ruleset.filter_rules))
        m.iptables_last.labels(table="nat").set(len(ruleset.nat_rules))
        m.no_local_endpoints.labels(traffic_policy="internal").set(
            ruleset.no_local_endpoints_internal)
        m.no_local_endpoints.labels(traffic_policy="external").set(
            ruleset.no_local_endpoints_external)

    # ---- canary and health ---------------------------------------------------------------

    def check_canary(self) -> bool:
        """True if every canary chain is present. If one is missing after a full sync
        (someone flushed or deleted our tables), force a full resync and request it."""
        if self.last_full_sync is None:
            return True  # nothing programmed yet: the first sync is full anyway
        return self._canary_verdict(self._canary_present())

    def _failed(self, job: _SyncJob) -> None:
        """After a failed sync: its drained changes are gone, so only a full sync is known
        to be right next; they still wait since the first of them was queued (health())."""
        self.force_full = True
        self.last_sync_failed = True
        if job.queued is not None:
            self.oldest_queued = min(job.queued, self.oldest_queued or job.queued)

    def _canary_present(self) -> bool | None:
        """Whether all canary chains exist (None: could not tell). Kernel reads only, so it
        may run on a worker thread."""
        try:
            return all(self.iptables.chain_exists(t, KUBE_PROXY_CANARY) for t in CANARY_TABLES)
        except (DataplaneError, OSError) as e:
            log.warning("canary check failed: %s", e)
            return None

    def _canary_verdict(self, present: bool | None) -> bool:
        if present is False:
            log.warning("canary chain %s missing: iptables were flushed, full resync",
                        KUBE_PROXY_CANARY)
            self.force_full = True
            self._queued()
            return False
        return True

    def health(self) -> Health:
        """kube-proxy's verdict: unhealthy only when a change has waited more than
        2 x sync_period without a successful sync since it was queued."""
        now = self.clock()
        timeout = 2 * self.sync_period
        stale = self.oldest_queued is not None and now - self.oldest_queued > timeout
        return Health(not stale, self.last_synced, now)

    def healthz(self) -> dict[str, float | bool | None]:
        """The same as `health()`, as a dict (logs, debugging)."""
        h = self.health()
        return {"healthy": h.healthy, "last_synced": self.last_synced,
                "oldest_queued": self.oldest_queued, "current_time": h.current_time}

    # ---- running -------------------------------------------------------------------------

    async def start(self) -> list[asyncio.Task[None]]:
        """Start the informers and wait for all three initial lists; then open the gate.
        Returns the informer tasks (cancel them to stop)."""
        tasks = [asyncio.create_task(inf.run())
                 for inf in (self.services, self.slices, self.nodes)]
        await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait(),
                             self.nodes.synced.wait())
        self.mark_synced()
        return tasks

    async def _canary_loop(self) -> None:
        while True:
            await self.sleep(self.sync_period)
            if self.last_full_sync is not None:
                async with self._kernel:
                    present = await asyncio.to_thread(self._canary_present)
                self._canary_verdict(present)

    async def run(self) -> None:
        """Informers, the sync runner and the canary monitor, until cancelled."""
        tasks = await self.start()
        tasks.append(asyncio.create_task(self._canary_loop()))
        try:
            await self.runner.loop()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
