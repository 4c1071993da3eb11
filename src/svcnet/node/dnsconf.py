"""A pod's /etc/resolv.conf (PURE), as kubelet computes it and containerd writes it.

kubelet parses the node's resolv.conf (its `--resolv-conf`): `nameserver` lines
accumulate, the last `search` line wins (trailing dots trimmed), the last `options` line
wins. Then per dnsPolicy:

* ClusterFirst (not hostNetwork) and ClusterFirstWithHostNet: the cluster DNS IP is the
  only nameserver, search is `<ns>.svc.<domain> svc.<domain> <domain>` followed by the
  host's search domains (duplicates dropped), options are exactly `ndots:5`. Without a
  cluster DNS IP: a `MissingClusterDNS` warning and Default behaviour.
* ClusterFirst on a hostNetwork pod, and Default: the host's settings.
* None: nothing but what dnsConfig says.

`dnsConfig` then merges for every policy: nameservers and searches appended without
duplicates, options merged by name (the pod's value wins). Limits: 3 nameservers, 32
search domains / 2048 characters, no domain over 253 characters; cutting emits a
`DNSConfigForming` warning with kubelet's wording.

The file is written in containerd's layout: `search`, then one `nameserver` line each,
then `options`. kubelet merges options through a Go map, so its option order is not
stable; here it is first-seen order, with a redefined option keeping its place.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN_LEN = 253
DEFAULT_OPTIONS = ("ndots:5",)


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, searches, options) of a resolv.conf text, by kubelet's rules."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            options = fields[1:]
    return servers, searches, options


def render_resolv_conf(servers: Sequence[str], searches: Sequence[str],
                       options: Sequence[str]) -> str:
    """The file text in containerd's layout (empty parts omitted)."""
    out = []
    if searches:
        out.append("search " + " ".join(searches) + "\n")
    out.extend(f"nameserver {s}\n" for s in servers)
    if options:
        out.append("options " + " ".join(options) + "\n")
    return "".join(out)


def _dedup(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(base: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> list[str]:
    merged: dict[str, str] = {}
    for op in base:
        name, _, value = op.partition(":")
        merged[name] = value
    for pod_op in extra:
        raw = pod_op.get("value")
        merged[str(pod_op.get("name", ""))] = "" if raw is None else str(raw)
    return [f"{k}:{v}" if v else k for k, v in merged.items()]


def _fit_search(searches: list[str], warnings: list[tuple[str, str]]) -> list[str]:
    exceeded = False
    if len(searches) > MAX_SEARCH_PATHS:
        searches, exceeded = searches[:MAX_SEARCH_PATHS], True
    kept = [s for s in searches if len(s) <= MAX_DOMAIN_LEN]
    exceeded = exceeded or len(kept) != len(searches)
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
        exceeded = True
    if exceeded:
        warnings.append(("DNSConfigForming", "Search Line limits were exceeded, some search "
                         "paths have been omitted, the applied search line is: "
                         + " ".join(kept)))
    return kept


def pod_dns(pod: Mapping[str, Any], cluster_dns: str, cluster_domain: str,
            host_resolv: str) -> tuple[str, list[tuple[str, str]]]:
    """(resolv.conf text, warnings) for `pod`. `cluster_dns` may be "" (no cluster DNS
    configured) and `cluster_domain` "" (no cluster search domains), as with kubelet."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    warnings: list[tuple[str, str]] = []
    servers, searches, options = parse_resolv_conf(host_resolv)
    if policy == "None":
        servers, searches, options = [], [], []
    elif policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network):
        if cluster_dns:
            servers = [cluster_dns]
            if cluster_domain:
                ns = meta.get("namespace") or "default"
                searches = _dedup([f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                                   cluster_domain, *searches])
            options = list(DEFAULT_OPTIONS)
        else:
            pod_ref = f"{meta.get('name', '')}_{meta.get('namespace', 'default')}" \
                f"({meta.get('uid', '')})"
            warnings.append(("MissingClusterDNS", f'pod: "{pod_ref}". kubelet does not have '
                             'ClusterDNS IP configured and cannot create Pod using '
                             '"ClusterFirst" policy. Falling back to "Default" policy.'))
    cfg = spec.get("dnsConfig")
    if cfg:
        servers = _dedup([*servers, *(cfg.get("nameservers") or [])])
        searches = _dedup([*searches, *(cfg.get("searches") or [])])
        options = _merge_options(options, cfg.get("options") or [])
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append(("DNSConfigForming", "Nameserver limits were exceeded, some "
                         "nameservers have been omitted, the applied nameserver line is: "
                         + " ".join(servers)))
    searches = _fit_search(searches, warnings)
    return render_resolv_conf(servers, searches, options), warnings
