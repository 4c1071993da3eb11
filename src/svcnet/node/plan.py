"""Pod plans (PURE): a Pod and the objects it refers to -> a `PodPlan` for the runtime.

Everything here follows what kubelet does, so a Pod behaves on svcnet as on a kubelet
node: /etc/resolv.conf per dnsPolicy (`dnsconf.py`), /etc/hosts as kubelet's managed hosts
file, the hostname, the environment (envFrom, env with `$(VAR)` expansion, valueFrom
ConfigMap/Secret/fieldRef/resourceFieldRef, Service link variables) and the argv (image
ENTRYPOINT/CMD combined with command/args, translated by the image catalog).

No I/O: the caller passes the host's resolv.conf and hosts texts, the Services, the
ConfigMaps and Secrets of the Pod's namespace and the Pod's IP. The IP comes from IPAM
*before* planning (allocation depends only on the pod uid), so the plan is complete: the
hosts file and `status.podIP` env need it, and a plan with holes would push kubelet
logic into the runtime.

A container that cannot start gets `waiting_reason`/`waiting_message` and an empty argv,
as kubelet reports it: `CreateContainerConfigError` (a ConfigMap/Secret or key missing)
or `ErrImagePull` (an image svcnet cannot run without `command:`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from typing import Any, Mapping, Sequence

from svcnet.node.dnsconf import pod_dns
from svcnet.node.envvars import EnvError, expand, resource_field_value, service_env
from svcnet.node.images import ERR_IMAGE_PULL, ImageCatalog
from svcnet.node.types import ContainerPlan, NodeConfig, PodPlan

CONFIG_ERROR = "CreateContainerConfigError"
_HOSTNAME_MAX = 63

_HOSTS_LOCAL = ("127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "fe00::0\tip6-mcastprefix\n"
                "fe00::1\tip6-allnodes\n"
                "fe00::2\tip6-allrouters\n")


def pod_hostname(pod: Mapping[str, Any], cluster_domain: str) -> tuple[str, str]:
    """(hostname, domain) as kubelet derives them: spec.hostname or the pod name, cut to
    63 characters without a trailing '-' or '.'; the domain is
    `<subdomain>.<ns>.svc.<cluster domain>` when spec.subdomain is set, else ""."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    name = str(meta.get("name", ""))
    hostname = str(spec.get("hostname") or name)
    if len(hostname) > _HOSTNAME_MAX:
        hostname = hostname[:_HOSTNAME_MAX].rstrip("-.")
    sub = spec.get("subdomain") or ""
    domain = f"{sub}.{meta.get('namespace', 'default')}.svc.{cluster_domain}" if sub else ""
    return hostname, domain


def _aliases_block(aliases: Sequence[Mapping[str, Any]]) -> str:
    if not aliases:
        return ""
    lines = "".join(f"{a.get('ip', '')}\t{chr(9).join(a.get('hostnames') or [])}\n"
                    for a in aliases)
    return "\n# Entries added by HostAliases.\n" + lines


def hosts_file(hostname: str, domain: str, pod_ips: Sequence[str],
               host_aliases: Sequence[Mapping[str, Any]] = ()) -> str:
    """kubelet's managed /etc/hosts for a pod on the pod network: header, localhost
    lines, one line per pod IP (`ip\\tfqdn\\thostname` with a subdomain, else
    `ip\\thostname`), then the hostAliases block."""
    out = ["# Kubernetes-managed hosts file.\n", _HOSTS_LOCAL]
    for ip in pod_ips:
        out.append(f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain
                   else f"{ip}\t{hostname}\n")
    out.append(_aliases_block(host_aliases))
    return "".join(out)


def host_network_hosts_file(node_hosts: str,
                            host_aliases: Sequence[Mapping[str, Any]] = ()) -> str:
    """kubelet's /etc/hosts for a hostNetwork pod: the node's file plus hostAliases."""
    return "# Kubernetes-managed hosts file (host network).\n" + node_hosts + \
        _aliases_block(host_aliases)


def plan_pod(pod: Mapping[str, Any], node: NodeConfig, *, services: Sequence[Mapping[str, Any]],
             configmaps: Mapping[str, Mapping[str, Any]],
             secrets: Mapping[str, Mapping[str, Any]], images: ImageCatalog,
             host_resolv: str = "", host_hosts: str = "", pod_ip: str = "",
             node_allocatable: Mapping[str, str] | None = None) -> PodPlan:
    """Plan one Pod.

    `services`: all Services the agent knows (any namespace; filtered here as kubelet
    does). `configmaps`/`secrets`: those of the Pod's namespace by name (Secret `data` is
    base64 as in the API object). `host_resolv`/`host_hosts`: the texts of the node's
    /etc/resolv.conf and /etc/hosts (kubelet's `--resolv-conf` base; the hosts text only
    matters for hostNetwork pods). `pod_ip`: the IP IPAM gave the pod; hostNetwork pods
    use the node IP. An empty `pod_ip` plans without one (no hosts line, empty
    status.podIP), which only suits previews. `node_allocatable` (e.g. {"cpu": "2",
    "memory": "8Gi"}) is what a resourceFieldRef to an unset limit reports.
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    host_network = bool(spec.get("hostNetwork"))
    if host_network:
        pod_ip = node.node_ip
    resolv, warnings = pod_dns(pod, node.cluster_dns, node.cluster_domain, host_resolv)
    hostname, domain = pod_hostname(pod, node.cluster_domain)
    aliases = spec.get("hostAliases") or []
    if host_network:
        hosts = host_network_hosts_file(host_hosts, aliases)
        # hostNetwork containers share the node's UTS namespace: their hostname is the
        # node's, whatever spec.hostname says.
        hostname = node.name
    else:
        hosts = hosts_file(hostname, domain, [pod_ip] if pod_ip else [], aliases)
        if spec.get("setHostnameAsFQDN") and domain:
            hostname = f"{hostname}.{domain}"
    links = spec.get("enableServiceLinks")
    svc_env = service_env(services, namespace, links is None or bool(links))
    ctx = _Context(pod, node, pod_ip, svc_env, configmaps, secrets, images,
                   node_allocatable or {})
    grace = spec.get("terminationGracePeriodSeconds")
    return PodPlan(
        uid=str(meta.get("uid", "")), namespace=namespace, name=str(meta.get("name", "")),
        hostname=hostname, host_network=host_network, resolv_conf=resolv, hosts=hosts,
        containers=tuple(ctx.container(c) for c in spec.get("containers") or []),
        restart_policy=str(spec.get("restartPolicy") or "Always"),
        termination_grace_seconds=30 if grace is None else int(grace),
        init_containers=tuple(ctx.container(c) for c in spec.get("initContainers") or []),
        warnings=tuple(warnings))


class _Context:
    """The inputs every container of one pod is planned against."""

    def __init__(self, pod: Mapping[str, Any], node: NodeConfig, pod_ip: str,
                 svc_env: Mapping[str, str], configmaps: Mapping[str, Mapping[str, Any]],
                 secrets: Mapping[str, Mapping[str, Any]], images: ImageCatalog,
                 allocatable: Mapping[str, str]) -> None:
        self.pod, self.node, self.pod_ip, self.allocatable = pod, node, pod_ip, allocatable
        self.svc_env, self.configmaps, self.secrets, self.images = (
            svc_env, configmaps, secrets, images)
        self.namespace = str((pod.get("metadata") or {}).get("namespace") or "default")

    def container(self, c: Mapping[str, Any]) -> ContainerPlan:
        name, image = str(c.get("name", "")), str(c.get("image", ""))
        base = ContainerPlan(name=name, argv=(), env=(), image=image,
                             stdin=bool(c.get("stdin")), stdin_once=bool(c.get("stdinOnce")),
                             tty=bool(c.get("tty")))
        try:
            env = self.environment(c)
        except EnvError as e:
            return _replace(base, waiting_reason=CONFIG_ERROR, waiting_message=str(e))
        env_map = dict(env)
        command = [expand(s, env_map.get) for s in c.get("command") or []]
        args = [expand(s, env_map.get) for s in c.get("args") or []]
        ref = self.images.resolve(image)
        workdir = str(c.get("workingDir") or (ref.workdir if ref else ""))
        if ref is None:
            if not command:
                return _replace(base, env=env, workdir=workdir, waiting_reason=ERR_IMAGE_PULL,
                                waiting_message=self.images.unknown_image_message(image))
            image_argv = (*command, *args)
        elif command:
            # command replaces ENTRYPOINT and drops CMD; args replace CMD.
            image_argv = (*command, *args)
        else:
            image_argv = (*ref.entrypoint, *(args if args else ref.default_args))
        uid = str((self.pod.get("metadata") or {}).get("uid", ""))
        scratch = str(self.node.state_dir / "scratch" / uid / name)
        res = self.images.node_argv(image, image_argv, scratch_dir=scratch)
        if not res.ok:
            return _replace(base, env=env, workdir=workdir, waiting_reason=res.reason,
                            waiting_message=res.message)
        if res.path and not any(k == "PATH" for k, _ in env):
            env = (*env, ("PATH", res.search_path))
        return _replace(base, argv=res.argv, env=env, workdir=workdir,
                        scratch_dir=res.scratch_dir)

    def environment(self, c: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        """kubelet's makeEnvironmentVariables, in a deterministic order: envFrom sources
        in order (keys sorted within each), then `env` in declaration order (a name
        defined twice keeps its first position and takes the later value), then the
        Service variables not defined by either. kubelet itself returns a Go map order."""
        tmp: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            prefix = str(src.get("prefix") or "")
            if src.get("configMapRef") is not None:
                data = self._source("configmap", src["configMapRef"])
            elif src.get("secretRef") is not None:
                data = self._source("secret", src["secretRef"])
            else:
                continue
            if data is None:  # optional and missing
                continue
            for k in sorted(data):
                tmp[prefix + k] = data[k]
        lookup = _chain(tmp, self.svc_env)
        for e in c.get("env") or []:
            name, value = str(e.get("name", "")), e.get("value") or ""
            if value:
                value = expand(str(value), lookup)
            elif e.get("valueFrom"):
                resolved = self._value_from(e["valueFrom"], c)
                if resolved is None:  # optional and missing: the variable is not set
                    continue
                value = resolved
            tmp[name] = value
        for k in sorted(self.svc_env):
            tmp.setdefault(k, self.svc_env[k])
        return tuple(tmp.items())

    def _source(self, kind: str, ref: Mapping[str, Any]) -> dict[str, str] | None:
        """The string data of a ConfigMap or Secret (None if missing and optional)."""
        name = str(ref.get("name", ""))
        obj = (self.configmaps if kind == "configmap" else self.secrets).get(name)
        if obj is None:
            if ref.get("optional"):
                return None
            raise EnvError(f'{kind} "{name}" not found')
        if kind == "configmap":
            return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        out = {str(k): _b64(str(v)) for k, v in (obj.get("data") or {}).items()}
        # stringData is write-only in the API; honour it for objects built by hand.
        out.update({str(k): str(v) for k, v in (obj.get("stringData") or {}).items()})
        return out

    def _value_from(self, vf: Mapping[str, Any], c: Mapping[str, Any]) -> str | None:
        for kind, field, label in (("configmap", "configMapKeyRef", "ConfigMap"),
                                   ("secret", "secretKeyRef", "Secret")):
            ref = vf.get(field)
            if ref is None:
                continue
            data = self._source(kind, ref)
            if data is None:
                return None
            key = str(ref.get("key", ""))
            if key not in data:
                if ref.get("optional"):
                    return None
                raise EnvError(f"couldn't find key {key} in {label} "
                               f"{self.namespace}/{ref.get('name', '')}")
            return data[key]
        if vf.get("fieldRef") is not None:
            return self._field(str(vf["fieldRef"].get("fieldPath", "")))
        if vf.get("resourceFieldRef") is not None:
            return resource_field_value(vf["resourceFieldRef"], self.pod, c, self.allocatable)
        return ""

    def _field(self, path: str) -> str:
        """Downward API field values for env (kubelet's podFieldSelectorRuntimeValue)."""
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        simple = {"metadata.name": meta.get("name"), "metadata.namespace": self.namespace,
                  "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName")
                  or self.node.name, "spec.serviceAccountName": spec.get("serviceAccountName"),
                  "status.hostIP": self.node.node_ip, "status.hostIPs": self.node.node_ip,
                  "status.podIP": self.pod_ip, "status.podIPs": self.pod_ip}
        if path in simple:
            return str(simple[path] or "")
        for field in ("labels", "annotations"):
            values = meta.get(field) or {}
            if path == f"metadata.{field}":
                return "\n".join(f'{k}="{values[k]}"' for k in sorted(values))
            head = f"metadata.{field}["
            if path.startswith(head) and path.endswith("]"):
                return str(values.get(path[len(head):-1].strip("'\""), ""))
        raise EnvError(f"unsupported fieldPath: {path}")


def _chain(*maps: Mapping[str, str]) -> Any:
    def lookup(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None
    return lookup


def _b64(value: str) -> str:
    try:
        return base64.b64decode(value, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return value


def _replace(plan: ContainerPlan, **changes: Any) -> ContainerPlan:
    return replace(plan, **changes)
