"""Discovery documents: /version, /api, /apis (aggregated v2 and legacy), /api/v1, /apis/G/V.

kubectl decides aggregated vs legacy from the response Content-Type, uses resources from
aggregated discovery only when both /api and /apis are aggregated, and the scale client
still reads legacy /apis/apps/v1 for `deployments/scale` (reference/apiserver.md §1). All
documents are derived from the kinds registry and built once.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from svcnet.api.kinds import KINDS, SUB_VERBS, Kind, group_versions

AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBE_VERSION = "v1.32.0"

Doc = dict[str, Any]
_STREAM_KINDS = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
                 "portforward": "PodPortForwardOptions"}


def version_info(git_version: str = KUBE_VERSION) -> Doc:
    return {"major": "1", "minor": "32", "gitVersion": git_version + "+svcnet",
            "gitCommit": "svcnet", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "python3.11", "compiler": "cpython", "platform": "linux/amd64"}


def _sub_kind(kind: Kind, sub: str) -> dict[str, str]:
    if sub == "binding":
        return {"group": "", "version": "v1", "kind": "Binding"}
    if sub == "scale":
        return {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    if sub == "finalize":
        return {"group": "", "version": "v1", "kind": "Namespace"}
    if sub in _STREAM_KINDS:
        return {"group": "", "version": "v1", "kind": _STREAM_KINDS[sub]}
    return {"group": kind.group, "version": kind.version, "kind": kind.kind}


def _sub_verbs(sub: str) -> list[str]:
    if sub == "binding":
        return ["create"]
    if sub == "log":
        return ["get"]
    if sub in _STREAM_KINDS:
        return ["create", "get"]
    return ["update"] if sub == "finalize" else list(SUB_VERBS)


def _aggregated_resource(kind: Kind) -> Doc:
    res: Doc = {
        "resource": kind.resource, "singularResource": kind.singular,
        "scope": "Namespaced" if kind.namespaced else "Cluster",
        "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        res["shortNames"] = list(kind.short_names)
    if kind.categories:
        res["categories"] = list(kind.categories)
    subs = list(kind.subresources) + list(kind.create_subresources) + \
        list(kind.get_subresources)
    if subs:
        res["subresources"] = [
            {"subresource": s, "responseKind": _sub_kind(kind, s), "verbs": _sub_verbs(s)}
            for s in subs]
    return res


@cache
def aggregated(core: bool) -> Doc:
    """The APIGroupDiscoveryList for /api (core=True) or /apis."""
    items = []
    for group, version in group_versions():
        if (group == "") != core:
            continue
        resources = [_aggregated_resource(k) for k in KINDS
                     if k.group == group and k.version == version]
        item: Doc = {"metadata": {"name": group} if group else {},
                     "versions": [{"version": version, "freshness": "Current",
                                   "resources": resources}]}
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def legacy_api(server_address: str) -> Doc:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group(group: str, version: str) -> Doc:
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


@cache
def legacy_apis() -> Doc:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, v) for g, v in group_versions() if g]}


def legacy_group(group: str) -> Doc | None:
    for g, v in group_versions():
        if g and g == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(g, v)}
    return None


@cache
def resource_list(group: str, version: str) -> Doc | None:
    """APIResourceList for /api/v1 or /apis/G/V; None if the group-version is not served."""
    kinds = [k for k in KINDS if k.group == group and k.version == version]
    if not kinds:
        return None
    resources: list[Doc] = []
    for k in kinds:
        r: Doc = {"name": k.resource, "singularName": k.singular, "namespaced": k.namespaced,
                  "kind": k.kind, "verbs": list(k.verbs)}
        if k.short_names:
            r["shortNames"] = list(k.short_names)
        if k.categories:
            r["categories"] = list(k.categories)
        resources.append(r)
        for s in k.subresources + k.create_subresources + k.get_subresources:
            sk = _sub_kind(k, s)
            sub: Doc = {"name": f"{k.resource}/{s}", "singularName": "",
                        "namespaced": k.namespaced, "kind": sk["kind"], "verbs": _sub_verbs(s)}
            if s == "scale":
                sub["group"], sub["version"] = "autoscaling", "v1"
            resources.append(sub)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}
