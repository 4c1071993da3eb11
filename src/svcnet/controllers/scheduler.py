"""The default scheduler: which Node an unscheduled Pod runs on, and the runner that binds it.

`schedule(pod, nodes, pods_by_node)` is pure. It runs, per Node and in kube-scheduler's
filter order, the checks of the plugins that matter here (the first failing check decides
a Node's reason, as in the framework):
  NodeUnschedulable  spec.unschedulable, unless the Pod tolerates the unschedulable taint
  TaintToleration    NoSchedule/NoExecute taints the Pod does not tolerate; a Node whose
                     Ready condition is not True counts as tainted not-ready (False) or
                     unreachable (Unknown/missing), as the node lifecycle controller taints it
  NodeAffinity       spec.nodeSelector and requiredDuringScheduling node affinity
  NodePorts          hostPort clashes with Pods already on the Node
  NodeResourcesFit   requests against status.allocatable (skipped for Nodes that report no
                     allocatable at all), and the pod count
Among the Nodes left it prefers, in this order: more weight of matching preferred node
affinity, fewer untolerated PreferNoSchedule taints, fewer Pods of the same controller
(spreading a ReplicaSet), fewer Pods, then the name. kube-scheduler adds weighted scores
and breaks ties at random; an ordered comparison keeps the choice explainable and tests
deterministic. When nothing fits, the message is kube-scheduler's FitError text, with
the preemption summary (svcnet has no priorities, so preemption never finds victims).

`Scheduler` binds through the pods/binding subresource (apiserver/binding.py), assumes
its own bindings until the Pod informer shows them (so replicas scheduled back to back
spread), records Scheduled/FailedScheduling Events and retries unschedulable Pods when
Nodes or bound Pods change.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient, Obj
from svcnet.client.informer import object_key
from svcnet.controllers.base import Controller, SharedInformers
from svcnet.controllers.events import EventRecorder

log = logging.getLogger("svcnet.scheduler")
PODS = kind_for("", "pods")
NODES = kind_for("", "nodes")

SCHEDULER_NAME = "default-scheduler"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# Reasons as the v1.32 plugins word them.
NO_NODES = "no nodes available to schedule pods"
ERR_UNSCHEDULABLE = "node(s) were unschedulable"
ERR_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
ERR_PORTS = "node(s) didn't have free ports for the requested pod ports"
ERR_TOO_MANY_PODS = "Too many pods"
PREEMPT_NOT_HELPFUL = "Preemption is not helpful for scheduling"
PREEMPT_NO_VICTIMS = "No preemption victims found for incoming pod"
_FIXED_RESOURCES = ("cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class Decision:
    """The outcome for one Pod: `node` to bind to, or None and `message` saying why not."""

    node: str | None
    message: str = ""


# --- predicates --------------------------------------------------------------------------

def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """core/v1 Toleration.ToleratesTaint: an empty effect matches all effects, an empty key
    (only valid with Exists) matches all keys, Equal (the default) compares values."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(pod: Obj, taint: Mapping[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or [])


def ready_status(node: Obj) -> str:
    """Status of the NodeReady condition: "True", "False" or "Unknown" (also when absent)."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status") or "Unknown")
    return "Unknown"


def node_taints(node: Obj) -> list[dict[str, Any]]:
    """spec.taints plus the NoSchedule taint an unready Node carries in Kubernetes (the node
    lifecycle controller adds it; svcnet derives it, so the scheduler never depends on that
    controller having run and the failure text names the same taint)."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    status = ready_status(node)
    if status != "True":
        key = TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def _requirement_matches(req: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement against labels (or fields); unknown operators fail."""
    key, op, want = req.get("key", ""), req.get("operator"), req.get("values") or []
    if op == "In":
        return key in values and values[key] in want
    if op == "NotIn":
        return key not in values or values[key] not in want
    if op == "Exists":
        return key in values
    if op == "DoesNotExist":
        return key not in values
    if op in ("Gt", "Lt") and key in values and len(want) == 1:
        try:
            have, bound = int(values[key]), int(want[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def term_matches(term: Mapping[str, Any] | None, node: Obj) -> bool:
    """A NodeSelectorTerm: all its expressions (labels) and fields (metadata.name only) hold;
    an empty term matches nothing, as the API documents."""
    term = term or {}
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(_requirement_matches(r, labels) for r in exprs) and \
        all(_requirement_matches(r, node_fields) for r in fields)


def _node_affinity(pod: Obj) -> dict[str, Any]:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def affinity_matches(pod: Obj, node: Obj) -> bool:
    """nodeSelector (every label equal) and the required node affinity (any term)."""
    labels = node["metadata"].get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def preferred_affinity(pod: Obj, node: Obj) -> int:
    """Sum of the weights of the preferred node affinity terms the Node matches."""
    terms = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(int(t.get("weight") or 0) for t in terms if term_matches(t.get("preference"), node))


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def milli(quantity: Any) -> int:
    """A resource.Quantity in thousandths ("100m" -> 100, "1Gi" -> 1073741824000), rounded
    up as Quantity.MilliValue does; malformed text counts as 0 (the API rejects it)."""
    m = _QUANTITY.match(str(quantity).strip())
    if not m:
        return 0
    value = float(m.group(1)) * _SUFFIX[m.group(2)] * 1000
    return int(-(-value // 1))


def pod_requests(pod: Obj) -> dict[str, int]:
    """What the Pod asks for (milli-units): the containers' sum, at least the largest init
    container, plus overhead. A limit without a request counts as the request, as API
    defaulting would have made it."""
    spec = pod.get("spec") or {}

    def of(c: Mapping[str, Any]) -> dict[str, int]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: milli(v) for k, v in merged.items()}
    total: Counter[str] = Counter()
    for c in spec.get("containers") or []:
        total.update(of(c))
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total[k], v)
    total.update({k: milli(v) for k, v in (spec.get("overhead") or {}).items()})
    return dict(total)


def _host_ports(pod: Obj) -> set[tuple[str, str, int]]:
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP",
                         int(p["hostPort"])))
    return out


def _ports_clash(want: set[tuple[str, str, int]], have: set[tuple[str, str, int]]) -> bool:
    return any(wp == hp and wpr == hpr and (wi == hi or "0.0.0.0" in (wi, hi))
               for wi, wpr, wp in want for hi, hpr, hp in have)


def _resource_reasons(pod: Obj, node: Obj, node_pods: Sequence[Obj]) -> list[str]:
    alloc = (node.get("status") or {}).get("allocatable")
    if not alloc:
        return []  # a Node that reports no allocatable is not resource-checked
    reasons = []
    if "pods" in alloc and len(node_pods) + 1 > milli(alloc["pods"]) // 1000:
        reasons.append(ERR_TOO_MANY_PODS)
    want = pod_requests(pod)
    used: Counter[str] = Counter()
    for p in node_pods:
        used.update(pod_requests(p))
    names = [r for r in _FIXED_RESOURCES if r in want] + sorted(
        r for r in want if r not in _FIXED_RESOURCES)
    for r in names:
        if want[r] > 0 and want[r] > milli(alloc.get(r, 0)) - used[r]:
            reasons.append(f"Insufficient {r}")
    return reasons


def filter_node(pod: Obj, node: Obj, node_pods: Sequence[Obj]) -> tuple[list[str], bool]:
    """(reasons the Pod cannot go to `node`, empty if it can; whether evicting Pods could
    help, i.e. only resources or ports are short)."""
    if (node.get("spec") or {}).get("unschedulable") and \
            not tolerated(pod, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}):
        return [ERR_UNSCHEDULABLE], False
    for taint in node_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(pod, taint):
            return [f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                    f"{taint.get('value') or ''}}}"], False
    if not affinity_matches(pod, node):
        return [ERR_AFFINITY], False
    if _ports_clash(_host_ports(pod), set().union(*(_host_ports(p) for p in node_pods))):
        return [ERR_PORTS], True
    reasons = _resource_reasons(pod, node, node_pods)
    return reasons, bool(reasons)


def controller_uid(pod: Obj) -> str | None:
    """uid of the Pod's managing controller (the ownerReference with controller: true)."""
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _histogram(reasons: Iterable[str]) -> str:
    return ", ".join(sorted(f"{n} {r}" for r, n in Counter(reasons).items()))


def schedule(pod: Obj, nodes: Sequence[Obj], pods_by_node: Mapping[str, Sequence[Obj]]) -> Decision:
    """Choose a Node for `pod` among `nodes`; `pods_by_node` holds the Pods already on (or
    assumed on) each Node. Pure and deterministic."""
    if not nodes:
        return Decision(None, NO_NODES)
    owner = controller_uid(pod)
    fits: list[tuple[tuple[int, int, int, int, str], str]] = []
    failed: list[tuple[list[str], bool]] = []
    for node in nodes:
        name = node["metadata"]["name"]
        here = pods_by_node.get(name, ())
        reasons, resolvable = filter_node(pod, node, here)
        if reasons:
            failed.append((reasons, resolvable))
            continue
        soft = sum(1 for t in node_taints(node)
                   if t.get("effect") == "PreferNoSchedule" and not tolerated(pod, t))
        same = sum(1 for p in here if owner is not None and controller_uid(p) == owner)
        fits.append(((-preferred_affinity(pod, node), soft, same, len(here), name), name))
    if fits:
        return Decision(min(fits)[1])
    n = len(nodes)
    msg = f"0/{n} nodes are available: {_histogram(r for rs, _ in failed for r in rs)}."
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        msg += " preemption: not eligible due to preemptionPolicy=Never."
    else:
        pre = (PREEMPT_NO_VICTIMS if ok else PREEMPT_NOT_HELPFUL for _, ok in failed)
        msg += f" preemption: 0/{n} nodes are available: {_histogram(pre)}."
    return Decision(None, msg)


def needs_scheduling(pod: Obj) -> bool:
    """Whether this scheduler owes `pod` a Node: ours by schedulerName, not bound, not being
    deleted and not finished."""
    spec, meta = pod.get("spec") or {}, pod["metadata"]
    return (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME and \
        not spec.get("nodeName") and not meta.get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


# --- runner ------------------------------------------------------------------------------

def _node_facts(node: Obj | None) -> Any:
    """The parts of a Node that decide what fits on it (heartbeats change none of them)."""
    if node is None:
        return None
    spec, status = node.get("spec") or {}, node.get("status") or {}
    return (node["metadata"].get("labels"), spec.get("taints"), spec.get("unschedulable"),
            ready_status(node), status.get("allocatable"))


async def bind_pod(client: ApiClient, pod: Obj, node: str) -> None:
    """POST pods/{name}/binding assigning `pod` to `node`, with the Pod's uid as precondition
    (Kubernetes forbids setting spec.nodeName by update)."""
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    body: Obj = {"apiVersion": "v1", "kind": "Binding",
                 "metadata": {"name": name, "namespace": ns, "uid": meta.get("uid")},
                 "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    await client.create(PODS, ns, body, subresource="binding", name=name)


class Scheduler(Controller):
    """Binds this scheduler's unscheduled Pods; keys are Pod namespace/name."""

    name = SCHEDULER_NAME

    def __init__(self, client: ApiClient, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.pods = informers.get(PODS)
        self.nodes = informers.get(NODES)
        self.recorder = EventRecorder(client, SCHEDULER_NAME)
        # Pod uid -> Node for bindings made but not yet seen by the informer: counted as on
        # that Node, so Pods scheduled before the watch catches up still spread.
        self.assumed: dict[str, str] = {}
        # Pods that fit nowhere; tried again when a Node or a bound Pod changes.
        self.unschedulable: set[str] = set()
        self._last_failure: dict[str, str] = {}  # key -> the message last logged
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    def _retry_unschedulable(self) -> None:
        self.enqueue_all(sorted(self.unschedulable))

    def _on_pod(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            assert old is not None
            self.assumed.pop(old["metadata"].get("uid", ""), None)
            self.unschedulable.discard(object_key(old))
            if (old.get("spec") or {}).get("nodeName"):
                self._retry_unschedulable()  # its Node has room again
            return
        if (new.get("spec") or {}).get("nodeName"):
            self.assumed.pop(new["metadata"].get("uid", ""), None)
            if (new.get("status") or {}).get("phase") in ("Succeeded", "Failed") and \
                    old is not None and (old.get("status") or {}).get("phase") != \
                    (new.get("status") or {}).get("phase"):
                self._retry_unschedulable()  # a finished Pod holds no resources
        key = object_key(new)
        # A status-only change (e.g. our own PodScheduled=False) must not retry a Pod that
        # fits nowhere, or every failure would trigger the next one.
        if needs_scheduling(new) and (key not in self.unschedulable or old is None or
                                      old.get("spec") != new.get("spec")):
            self.queue.add(key)

    def _on_node(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if new is not None and _node_facts(old) != _node_facts(new):
            self._retry_unschedulable()

    def _pods_by_node(self) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for p in self.pods.list():
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            node = (p.get("spec") or {}).get("nodeName") or \
                self.assumed.get(p["metadata"].get("uid", ""))
            if node:
                out.setdefault(node, []).append(p)
        return out

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        pod = self.pods.get(ns, name)
        if pod is None or not needs_scheduling(pod) or pod["metadata"].get("uid") in self.assumed:
            self.unschedulable.discard(key)
            self._last_failure.pop(key, None)
            return
        decision = schedule(pod, self.nodes.list(), self._pods_by_node())
        if decision.node is None:
            self.unschedulable.add(key)
            # Retried on every Node change and freed Pod: log only what is new to read.
            if self._last_failure.get(key) != decision.message:
                self._last_failure[key] = decision.message
                log.info("%s: %s", key, decision.message)
            await self.recorder.record(pod, "Warning", "FailedScheduling", decision.message)
            await self._mark_unschedulable(pod, decision.message)
            return
        uid = pod["metadata"].get("uid", "")
        self.assumed[uid] = decision.node
        try:
            await bind_pod(self.client, pod, decision.node)
        except errors.StatusError as e:
            self.assumed.pop(uid, None)
            if e.code == 404:
                return  # deleted meanwhile
            raise  # 409: bound or changed meanwhile; the retry sees the informer's news
        self.unschedulable.discard(key)
        self._last_failure.pop(key, None)
        await self.recorder.record(pod, "Normal", "Scheduled",
                                   f"Successfully assigned {ns}/{name} to {decision.node}")

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        """Set PodScheduled=False/Unschedulable with the reason (what `kubectl describe pod`
        shows under Conditions), writing only when it changed."""
        conds = (pod.get("status") or {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None) or {}
        if cur.get("status") == "False" and cur.get("reason") == "Unschedulable" and \
                cur.get("message") == message:
            return
        since = cur.get("lastTransitionTime") if cur.get("status") == "False" else None
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": None, "lastTransitionTime": since or now}
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["namespace"], meta["name"],
                                    {"status": {"conditions": [cond]}}, patch_type="strategic",
                                    subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                log.warning("%s/%s: cannot set PodScheduled: %s", meta["namespace"],
                            meta["name"], e.message)
