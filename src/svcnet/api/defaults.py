"""Defaulting: the values Kubernetes fills in when a manifest leaves them out.

Pure functions that mutate the (already decoded, private) object in place, one per kind,
following k8s.io/kubernetes pkg/apis/*/v1/defaults.go as summarised in
reference/apiserver.md §5.3 and §3.4. Users see these values in `kubectl get -o yaml`,
and controllers rely on them (e.g. a Deployment's strategy), so they run on every create
and update before validation. Allocation (cluster IPs, node ports) is not defaulting; the
API server's allocators do it after validation.
"""

from __future__ import annotations

from typing import Any, Callable

Obj = dict[str, Any]


def _service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    stype = spec["type"]
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig") or {}
        if (cfg.get("clientIP") or {}).get("timeoutSeconds") is None:
            # Kubernetes replaces the whole config when any level of it is missing.
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    # service.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs.
    external = stype in ("NodePort", "LoadBalancer") or (
        stype == "ClusterIP" and bool(spec.get("externalIPs")))
    if external:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if stype != "ExternalName":
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])
    for ing in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            ing.setdefault("ipMode", "VIP")


def _container(c: Obj) -> None:
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        c["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("path", "/")
                probe["httpGet"].setdefault("scheme", "HTTP")


def pod_spec(spec: Obj) -> None:
    """Defaults of a PodSpec (shared by Pods and the templates of Deployments/ReplicaSets)."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _container(c)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and isinstance(v.get("configMap"), dict):
            v["configMap"].setdefault("defaultMode", 420)
        if isinstance(v, dict) and isinstance(v.get("secret"), dict):
            v["secret"].setdefault("defaultMode", 420)


def _pod(obj: Obj) -> None:
    pod_spec(obj.setdefault("spec", {}))


def _pod_template_owner(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    template = spec.setdefault("template", {})
    pod_spec(template.setdefault("spec", {}))
    # apps/v1 requires the selector (no defaulting from template labels, unlike the
    # legacy groups); only replicas has a default.
    spec.setdefault("replicas", 1)


def _deployment(obj: Obj) -> None:
    _pod_template_owner(obj)
    spec = obj["spec"]
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)


def _namespace(obj: Obj) -> None:
    name = (obj.get("metadata") or {}).get("name")
    if name:
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name


def _secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")


def _endpoints(obj: Obj) -> None:
    for subset in obj.get("subsets") or []:
        for p in subset.get("ports") or []:
            p.setdefault("protocol", "TCP")


def _endpointslice(obj: Obj) -> None:
    for p in obj.get("ports") or []:
        p.setdefault("protocol", "TCP")
        # kubectl describe dereferences port.name: an unnamed port must read as "".
        p.setdefault("name", "")


def _network_policy(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
        for p in rule.get("ports") or []:
            p.setdefault("protocol", "TCP")
    if "policyTypes" not in spec:
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _ingress(obj: Obj) -> None:
    for rule in (obj.get("spec") or {}).get("rules") or []:
        for p in ((rule.get("http") or {}).get("paths")) or []:
            p.setdefault("pathType", "ImplementationSpecific")


DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "Service": _service,
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _pod_template_owner,
    "Namespace": _namespace,
    "Secret": _secret,
    "Endpoints": _endpoints,
    "EndpointSlice": _endpointslice,
    "NetworkPolicy": _network_policy,
    "Ingress": _ingress,
}


def apply_defaults(kind: str, obj: Obj) -> None:
    """Fill in `obj`'s defaults in place (no-op for kinds without defaults)."""
    fn = DEFAULTERS.get(kind)
    if fn is not None:
        fn(obj)
