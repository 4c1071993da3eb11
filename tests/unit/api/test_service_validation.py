"""Service validation against Kubernetes v1.32's ValidateService / ValidateServiceUpdate.

One table: each case is a Service spec (defaulted first, as the server does, unless the case
is `raw`), an optional old object for updates, and the exact `str(FieldError)` texts that
kube-apiserver 1.32 reports for it (reference/apiserver.md §5.2; upstream
pkg/apis/core/validation/validation.go). The order of errors is not compared.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from svcnet.api.defaults import apply_defaults
from svcnet.api.kinds import by_kind
from svcnet.api.validation import validate

Obj = dict[str, Any]
SERVICE = by_kind("v1", "Service")
DROP = object()  # in a raw spec: leave this field out

# apimachinery's messages, spelled out (note the two spaces after each example comma).
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
           "start with an alphabetic character, and end with an alphanumeric character "
           "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
           "'[a-z]([-a-z0-9]*[a-z0-9])?')")
DNS1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                 "or '-', and must start and end with an alphanumeric character (e.g. "
                 "'my-name',  or '123-abc', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                     "characters, '-' or '.', and must start and end with an alphanumeric "
                     "character (e.g. 'example.com', regex used for validation is "
                     r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QUALIFIED_NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                       "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                       "'my.name',  or '123-abc', regex used for validation is "
                       "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, "
               "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
               "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
               "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
PORT_RANGE = "must be between 1 and 65535, inclusive"
IP_HINT = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_HINT = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
TYPES = 'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
ONLY_LB = "may only be used when `type` is 'LoadBalancer'"
HC_ONLY = ("may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is "
           "'Local'")
NOT_EXTERNAL = "may only be set for externally-accessible services"
NOT_FOR_EXTERNALNAME = "may not be set for ExternalName services"
AFFINITY_RANGE = "must be greater than 0 and less than 86400"
WHEN_CLIENTIP = "when session affinity type is ClientIP"


def dup_port(i: int, port: int, proto: str = "TCP") -> str:
    """Kubernetes prints a duplicate (protocol, port) key as a Go %#v core.ServicePort."""
    return (f'spec.ports[{i}]: Duplicate value: core.ServicePort{{Name:"", Protocol:"{proto}", '
            f"AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, "
            f'IntVal:0, StrVal:""}}, NodePort:0}}')


def target(name: str, *msgs: str) -> list[str]:
    return [f'spec.ports[0].targetPort: Invalid value: "{name}": {m}' for m in msgs]


# --- manifests ---------------------------------------------------------------------------

def svc(**spec: Any) -> Obj:
    """A user's ClusterIP manifest (before defaulting); keyword args override/extend it."""
    base: Obj = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    base.update(spec)
    return base


def port(p: int, name: str | None = None, **extra: Any) -> Obj:
    out: Obj = {"port": p, **extra}
    if name is not None:
        out["name"] = name
    return out


def nodeport(**spec: Any) -> Obj:
    return svc(type="NodePort", **spec)


def lb(**spec: Any) -> Obj:
    return svc(type="LoadBalancer", **spec)


def extname(**spec: Any) -> Obj:
    base: Obj = {"type": "ExternalName", "externalName": "db.example.com"}
    base.update(spec)
    return base


def raw(**spec: Any) -> Obj:
    """A complete, already-defaulted ClusterIP spec; DROP removes a field."""
    base: Obj = {"type": "ClusterIP", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}],
                 "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}
    base.update(spec)
    return {k: v for k, v in base.items() if v is not DROP}


def allocated(spec: Obj, ip: str = "10.96.0.10") -> Obj:
    """`spec` as stored after allocation: clusterIP/clusterIPs filled in."""
    return {**spec, "clusterIP": ip, "clusterIPs": [ip]}


def dual(**spec: Any) -> Obj:
    return svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "fd00::10"],
               ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="PreferDualStack", **spec)


# --- the table ---------------------------------------------------------------------------

def case(id: str, spec: Obj | Callable[[], Obj], expected: list[str], *, old: Obj | None = None,
         raw: bool = False, name: str | None = "web", namespace: str | None = "default",
         marks: Any = ()) -> Any:
    return pytest.param(spec, expected, old, raw, name, namespace, id=id, marks=marks)


CASES = [
    # metadata.name is a DNS-1035 label; the namespace is required.
    case("name-valid", svc(), []),
    case("name-with-digits-and-dash", svc(), [], name="web-1"),
    case("name-uppercase", svc(), [f'metadata.name: Invalid value: "Web": {DNS1035}'],
         name="Web"),
    case("name-starts-with-digit", svc(), [f'metadata.name: Invalid value: "1web": {DNS1035}'],
         name="1web"),
    case("name-ends-with-dash", svc(), [f'metadata.name: Invalid value: "web-": {DNS1035}'],
         name="web-"),
    case("name-63-chars", svc(), [], name="a" * 63),
    case("name-too-long", svc(),
         [f'metadata.name: Invalid value: "{"a" * 64}": must be no more than 63 characters'],
         name="a" * 64),
    case("name-missing", svc(),
         ["metadata.name: Required value: name or generateName is required"], name=None),
    case("namespace-missing", svc(), ["metadata.namespace: Required value"], namespace=None),

    # spec.ports
    case("ports-missing", svc(ports=[]), ["spec.ports: Required value"]),
    case("ports-missing-headless", svc(ports=[], clusterIP="None"), []),
    case("ports-missing-externalname", extname(), []),
    case("port-zero", svc(ports=[port(0)]),
         [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}",
          # defaulting copies port into the empty targetPort, so it is reported as well
          f"spec.ports[0].targetPort: Invalid value: 0: {PORT_RANGE}"]),
    case("port-65536", svc(ports=[port(65536, targetPort=8080)]),
         [f"spec.ports[0].port: Invalid value: 65536: {PORT_RANGE}"]),
    case("port-65535", svc(ports=[port(65535)]), []),
    case("single-port-name-optional", svc(ports=[port(80)]), []),
    case("port-name-required-with-two-ports", svc(ports=[port(80), port(443, "https")]),
         ["spec.ports[0].name: Required value"]),
    case("port-name-uppercase", svc(ports=[port(80, "HTTP")]),
         [f'spec.ports[0].name: Invalid value: "HTTP": {DNS1123_LABEL}']),
    case("port-name-too-long", svc(ports=[port(80, "p" * 64)]),
         [f'spec.ports[0].name: Invalid value: "{"p" * 64}": must be no more than 63 '
          "characters"]),
    case("port-name-duplicate", svc(ports=[port(80, "http"), port(8080, "http")]),
         ['spec.ports[1].name: Duplicate value: "http"']),
    case("port-and-protocol-duplicate", svc(ports=[port(80, "a"), port(80, "b")]),
         [dup_port(1, 80)]),
    case("port-duplicate-udp", svc(ports=[port(53, "a", protocol="UDP"),
                                          port(53, "b", protocol="UDP")]),
         [dup_port(1, 53, "UDP")]),
    case("same-port-tcp-and-udp", svc(ports=[port(53, "dns-tcp"),
                                             port(53, "dns", protocol="UDP")]), []),
    case("protocol-sctp", svc(ports=[port(80, protocol="SCTP")]), []),
    case("protocol-unsupported", svc(ports=[port(80, protocol="ICMP")]),
         ['spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", '
          '"TCP", "UDP"']),
    case("protocol-missing-raw",
         raw(ports=[{"name": "http", "port": 80, "targetPort": 80}]),
         ["spec.ports[0].protocol: Required value"], raw=True),

    # targetPort: a number 1-65535 or an IANA service name
    case("target-port-number", svc(ports=[port(80, targetPort=8080)]), []),
    case("target-port-70000", svc(ports=[port(80, targetPort=70000)]),
         [f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}"]),
    case("target-port-name", svc(ports=[port(80, targetPort="http-alt")]), []),
    case("target-port-name-15-chars", svc(ports=[port(80, targetPort="a" * 15)]), []),
    case("target-port-name-too-long", svc(ports=[port(80, targetPort="metrics-endpoint")]),
         target("metrics-endpoint", "must be no more than 15 characters")),
    case("target-port-name-double-hyphen", svc(ports=[port(80, targetPort="my--port")]),
         target("my--port", "must not contain consecutive hyphens")),
    case("target-port-name-no-letter", svc(ports=[port(80, targetPort="80-80")]),
         target("80-80", "must contain at least one letter (a-z)")),
    case("target-port-numeric-string", svc(ports=[port(80, targetPort="8080")]),
         # a JSON string is a port *name*, even when it is all digits
         target("8080", "must contain at least one letter (a-z)")),
    case("target-port-name-uppercase", svc(ports=[port(80, targetPort="HTTP")]),
         target("HTTP", "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)")),
    case("target-port-name-leading-hyphen", svc(ports=[port(80, targetPort="-web")]),
         target("-web", "must not begin or end with a hyphen")),

    # appProtocol is a qualified name
    case("app-protocol-valid", svc(ports=[port(80, appProtocol="kubernetes.io/h2c")]), []),
    case("app-protocol-invalid", svc(ports=[port(80, appProtocol="my proto")]),
         [f'spec.ports[0].appProtocol: Invalid value: "my proto": {QUALIFIED_NAME_PART}']),

    # type
    case("type-nodeport", nodeport(), []),
    case("type-loadbalancer", lb(), []),
    case("type-unsupported", svc(type="Ingress"),
         [f'spec.type: Unsupported value: "Ingress": {TYPES}']),
    case("type-unsupported-still-checks-ports", svc(type="Ingress", ports=[port(0, targetPort=1)]),
         [f'spec.type: Unsupported value: "Ingress": {TYPES}',
          f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"]),
    case("type-missing-raw", raw(type=DROP), ["spec.type: Required value"], raw=True),

    # nodePort
    case("node-port-on-clusterip", svc(ports=[port(80, nodePort=30080)]),
         ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
    case("node-port-on-nodeport", nodeport(ports=[port(80, nodePort=30080)]), []),
    case("node-port-range-is-the-allocators", nodeport(ports=[port(80, nodePort=70000)]), []),
    case("node-port-duplicate", nodeport(ports=[port(80, "a", nodePort=30080),
                                                port(81, "b", nodePort=30080)]),
         ["spec.ports[1].nodePort: Duplicate value: 30080"]),
    case("node-port-shared-by-tcp-and-udp",
         nodeport(ports=[port(53, "dns-tcp", nodePort=30053),
                         port(53, "dns", protocol="UDP", nodePort=30053)]), []),
    case("node-port-duplicate-on-clusterip", svc(ports=[port(80, "a", nodePort=30080),
                                                        port(81, "b", nodePort=30080)]),
         ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
          "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
          "spec.ports[1].nodePort: Duplicate value: 30080"]),

    # clusterIP / clusterIPs
    case("cluster-ip-only", svc(clusterIP="10.96.0.10"), []),
    case("cluster-ips-consistent", svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"]), []),
    case("cluster-ips-first-differs", svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.11"]),
         ['spec.clusterIPs: Invalid value: []string{"10.96.0.11"}: first value must match '
          "`clusterIP`"]),
    case("cluster-ips-without-cluster-ip", svc(clusterIPs=["10.96.0.10"]),
         ['spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: must be empty when '
          "`clusterIP` is not specified"]),
    case("cluster-ip-missing-cluster-ips-raw", raw(clusterIP="10.96.0.10"),
         ["spec.clusterIPs: Required value"], raw=True),
    case("cluster-ip-invalid", svc(clusterIP="10.96.0.300"),
         [f'spec.clusterIPs[0]: Invalid value: "10.96.0.300": {IP_HINT}']),
    case("cluster-ip-hostname", svc(clusterIP="api.local"),
         [f'spec.clusterIPs[0]: Invalid value: "api.local": {IP_HINT}']),
    case("cluster-ips-none-not-alone",
         svc(clusterIP="None", clusterIPs=["None", "10.96.0.10"]),
         ['spec.clusterIPs: Invalid value: []string{"None", "10.96.0.10"}: \'None\' must be '
          "the first and only value"]),
    case("cluster-ips-none-second",
         svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "None"]),
         [f'spec.clusterIPs[1]: Invalid value: "None": {IP_HINT}']),
    case("cluster-ips-three-values",
         svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "fd00::10", "10.96.0.11"]),
         ['spec.clusterIPs: Invalid value: []string{"10.96.0.10", "fd00::10", "10.96.0.11"}: '
          "may only hold up to 2 values"]),
    case("cluster-ips-same-family",
         svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "10.96.0.11"]),
         ['spec.clusterIPs: Invalid value: []string{"10.96.0.10", "10.96.0.11"}: may specify '
          "no more than one IP for each IP family"]),
    case("cluster-ips-dual-stack", dual(), []),
    case("headless", svc(clusterIP="None"), []),
    case("headless-nodeport", nodeport(clusterIP="None"),
         ['spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for NodePort '
          "services"]),
    case("headless-loadbalancer", lb(clusterIP="None"),
         ['spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for '
          "LoadBalancer services"]),
    case("ip-family-unsupported", svc(ipFamilies=["IPv5"]),
         ['spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"']),
    case("ip-family-duplicate", svc(ipFamilies=["IPv4", "IPv4"]),
         ['spec.ipFamilies[1]: Duplicate value: "IPv4"']),
    case("ip-family-policy-unsupported", svc(ipFamilyPolicy="DualStack"),
         ['spec.ipFamilyPolicy: Unsupported value: "DualStack": supported values: '
          '"PreferDualStack", "RequireDualStack", "SingleStack"']),

    # ExternalName
    case("externalname", extname(), []),
    case("externalname-trailing-dot", extname(externalName="db.example.com."), []),
    case("externalname-single-label", extname(externalName="database"), []),
    case("externalname-missing", extname(externalName=""), ["spec.externalName: Required value"]),
    case("externalname-only-a-dot", extname(externalName="."),
         ["spec.externalName: Required value"]),
    case("externalname-invalid", extname(externalName="db_1.example.com."),
         # reported without the trailing dot that was trimmed before the check
         [f'spec.externalName: Invalid value: "db_1.example.com": {DNS1123_SUBDOMAIN}']),
    case("externalname-cluster-ip", extname(clusterIP="10.96.0.10"),
         [f"spec.clusterIPs: Forbidden: {NOT_FOR_EXTERNALNAME}"]),
    case("externalname-cluster-ips", extname(clusterIPs=["10.96.0.10"]),
         [f"spec.clusterIPs: Forbidden: {NOT_FOR_EXTERNALNAME}"]),
    case("externalname-ip-families", extname(ipFamilies=["IPv4"]),
         [f"spec.ipFamilies: Forbidden: {NOT_FOR_EXTERNALNAME}"]),
    case("externalname-ip-family-policy", extname(ipFamilyPolicy="SingleStack"),
         [f"spec.ipFamilyPolicy: Forbidden: {NOT_FOR_EXTERNALNAME}"]),
    case("externalname-with-ports", extname(ports=[port(5432)]), []),

    # sessionAffinity
    case("affinity-clientip-defaulted", svc(sessionAffinity="ClientIP"), []),
    case("affinity-clientip-86400",
         svc(sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86400}}), []),
    case("affinity-clientip-timeout-zero",
         svc(sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}),
         ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: "
          + AFFINITY_RANGE]),
    case("affinity-clientip-timeout-86401",
         svc(sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}),
         ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: "
          + AFFINITY_RANGE]),
    case("affinity-clientip-timeout-missing-raw",
         raw(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {}}),
         ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Required value: " + WHEN_CLIENTIP],
         raw=True),
    case("affinity-clientip-client-ip-missing-raw",
         raw(sessionAffinity="ClientIP", sessionAffinityConfig={}),
         ["spec.sessionAffinityConfig.clientIP: Required value: " + WHEN_CLIENTIP], raw=True),
    case("affinity-clientip-config-missing-raw", raw(sessionAffinity="ClientIP"),
         ["spec.sessionAffinityConfig: Required value: " + WHEN_CLIENTIP], raw=True),
    case("affinity-unsupported", svc(sessionAffinity="Sticky"),
         ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", '
          '"None"']),
    case("affinity-none-with-config-raw",
         raw(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
         ["spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"],
         raw=True),
    # ...but defaulting drops a config that comes with sessionAffinity None
    case("affinity-none-with-config-defaulted",
         svc(sessionAffinity="None", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
         []),
    case("affinity-missing-raw", raw(sessionAffinity=DROP),
         ["spec.sessionAffinity: Required value"], raw=True),

    # externalTrafficPolicy
    case("etp-on-clusterip", svc(externalTrafficPolicy="Local"),
         [f'spec.externalTrafficPolicy: Invalid value: "Local": {NOT_EXTERNAL}']),
    case("etp-on-clusterip-with-external-ips",
         svc(externalIPs=["203.0.113.10"], externalTrafficPolicy="Local"), []),
    case("etp-on-externalname-with-external-ips",
         extname(externalIPs=["203.0.113.10"], externalTrafficPolicy="Cluster"),
         [f'spec.externalTrafficPolicy: Invalid value: "Cluster": {NOT_EXTERNAL}']),
    case("etp-local-on-nodeport", nodeport(externalTrafficPolicy="Local"), []),
    case("etp-unsupported", nodeport(externalTrafficPolicy="Global"),
         ['spec.externalTrafficPolicy: Unsupported value: "Global": supported values: '
          '"Cluster", "Local"']),
    case("etp-missing-raw", raw(type="NodePort"), ["spec.externalTrafficPolicy: Required value"],
         raw=True),

    # internalTrafficPolicy
    case("itp-local", svc(internalTrafficPolicy="Local"), []),
    case("itp-unsupported", svc(internalTrafficPolicy="Node"),
         ['spec.internalTrafficPolicy: Unsupported value: "Node": supported values: "Cluster", '
          '"Local"']),
    case("itp-unsupported-on-externalname", extname(internalTrafficPolicy="Node"),
         ['spec.internalTrafficPolicy: Unsupported value: "Node": supported values: "Cluster", '
          '"Local"']),
    case("itp-missing-raw", raw(internalTrafficPolicy=DROP),
         ["spec.internalTrafficPolicy: Required value"], raw=True),
    case("itp-missing-on-externalname", extname(), []),

    # healthCheckNodePort
    case("hc-on-lb-local", lb(externalTrafficPolicy="Local", healthCheckNodePort=30100), []),
    case("hc-on-lb-cluster", lb(healthCheckNodePort=30100),
         [f"spec.healthCheckNodePort: Invalid value: 30100: {HC_ONLY}"]),
    case("hc-on-nodeport-local", nodeport(externalTrafficPolicy="Local",
                                          healthCheckNodePort=30100),
         [f"spec.healthCheckNodePort: Invalid value: 30100: {HC_ONLY}"]),
    case("hc-out-of-range", lb(externalTrafficPolicy="Local", healthCheckNodePort=70000),
         [f"spec.healthCheckNodePort: Invalid value: 70000: {PORT_RANGE}"]),

    # trafficDistribution
    case("traffic-distribution-prefer-close", svc(trafficDistribution="PreferClose"), []),
    case("traffic-distribution-unsupported", svc(trafficDistribution="Nearest"),
         ['spec.trafficDistribution: Unsupported value: "Nearest": supported values: '
          '"PreferClose"']),

    # loadBalancerSourceRanges (Kubernetes' field path really has a capital L)
    case("source-ranges-on-lb", lb(loadBalancerSourceRanges=["10.0.0.0/8", "2001:db8::/64"]),
         []),
    case("source-ranges-space-padded", lb(loadBalancerSourceRanges=[" 10.0.0.0/8 "]), []),
    case("source-ranges-on-clusterip", svc(loadBalancerSourceRanges=["10.0.0.0/8"]),
         [f"spec.LoadBalancerSourceRanges: Forbidden: {ONLY_LB}"]),
    case("source-ranges-bad-prefix", lb(loadBalancerSourceRanges=["10.0.0.0/33"]),
         [f'spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": {CIDR_HINT}']),
    case("source-ranges-bare-ip", lb(loadBalancerSourceRanges=["10.0.0.0/8", "10.1.2.3"]),
         [f'spec.LoadBalancerSourceRanges[1]: Invalid value: "10.1.2.3": {CIDR_HINT}']),
    case("source-ranges-reported-trimmed", lb(loadBalancerSourceRanges=[" office "]),
         [f'spec.LoadBalancerSourceRanges[0]: Invalid value: "office": {CIDR_HINT}']),

    # allocateLoadBalancerNodePorts
    case("allocate-node-ports-false-on-lb", lb(allocateLoadBalancerNodePorts=False), []),
    case("allocate-node-ports-on-nodeport", nodeport(allocateLoadBalancerNodePorts=True),
         [f"spec.allocateLoadBalancerNodePorts: Forbidden: {ONLY_LB}"]),
    case("allocate-node-ports-missing-raw",
         raw(type="LoadBalancer", externalTrafficPolicy="Cluster"),
         # Kubernetes reports this path without the `spec.` prefix
         ["allocateLoadBalancerNodePorts: Required value"], raw=True),

    # loadBalancerClass
    case("lb-class", lb(loadBalancerClass="example.com/internal"), []),
    case("lb-class-on-clusterip", svc(loadBalancerClass="example.com/internal"),
         [f"spec.loadBalancerClass: Forbidden: {ONLY_LB}"]),
    case("lb-class-invalid", lb(loadBalancerClass="internal lb"),
         [f'spec.loadBalancerClass: Invalid value: "internal lb": {QUALIFIED_NAME_PART}']),

    # externalIPs
    case("external-ip", svc(externalIPs=["203.0.113.10", "2001:db8::10"]), []),
    case("external-ip-invalid", svc(externalIPs=["203.0.113"]),
         [f'spec.externalIPs[0]: Invalid value: "203.0.113": {IP_HINT}']),
    case("external-ip-loopback", svc(externalIPs=["127.0.0.1"]),
         ['spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range '
          "(127.0.0.0/8, ::1/128)"]),
    case("external-ip-loopback-v6", svc(externalIPs=["203.0.113.10", "::1"]),
         ['spec.externalIPs[1]: Invalid value: "::1": may not be in the loopback range '
          "(127.0.0.0/8, ::1/128)"]),
    case("external-ip-unspecified", svc(externalIPs=["0.0.0.0"]),
         ['spec.externalIPs[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)']),
    case("external-ip-link-local", svc(externalIPs=["169.254.169.254"]),
         ['spec.externalIPs[0]: Invalid value: "169.254.169.254": may not be in the link-local '
          "range (169.254.0.0/16, fe80::/10)"]),
    case("external-ip-link-local-multicast", svc(externalIPs=["224.0.0.251"]),
         ['spec.externalIPs[0]: Invalid value: "224.0.0.251": may not be in the link-local '
          "multicast range (224.0.0.0/24, ff02::/10)"]),
    case("external-ip-other-multicast", svc(externalIPs=["239.1.2.3"]), []),

    # selector
    case("selector-valid", svc(selector={"app.kubernetes.io/name": "web", "tier": ""}), []),
    case("selector-bad-key", svc(selector={"my app": "web"}),
         [f'spec.selector: Invalid value: "my app": {QUALIFIED_NAME_PART}']),
    case("selector-bad-value", svc(selector={"app": "-web"}),
         [f'spec.selector: Invalid value: "-web": {LABEL_VALUE}']),

    # updates (ValidateServiceUpdate)
    case("update-unchanged", allocated(svc()), [], old=allocated(svc())),
    case("update-cluster-ip-changed", allocated(svc(), "10.96.0.20"),
         ['spec.clusterIPs[0]: Invalid value: []string{"10.96.0.20"}: may not change once set'],
         old=allocated(svc())),
    case("update-cluster-ip-unset", svc(),
         ["spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset"],
         old=allocated(svc())),
    case("update-headless-to-cluster-ip", allocated(svc()),
         ['spec.clusterIPs[0]: Invalid value: []string{"10.96.0.10"}: may not change once set'],
         old=svc(clusterIP="None")),
    case("update-headless-to-headless", svc(clusterIP="None", ports=[]), [],
         old=svc(clusterIP="None")),
    case("update-cluster-ip-to-externalname", extname(), [], old=allocated(svc())),
    case("update-externalname-to-cluster-ip", allocated(svc(), "10.96.0.99"), [],
         old=extname()),
    case("update-release-secondary-ip-single-stack",
         svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"], ipFamilies=["IPv4"],
             ipFamilyPolicy="SingleStack"), [], old=dual()),
    case("update-release-secondary-ip-still-dual-stack-policy",
         svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"], ipFamilies=["IPv4"],
             ipFamilyPolicy="PreferDualStack"),
         ['spec.ipFamilyPolicy: Invalid value: "PreferDualStack": must be set to \'SingleStack\' '
          "when releasing the secondary clusterIP",
          'spec.ipFamilyPolicy: Invalid value: "PreferDualStack": must be set to \'SingleStack\' '
          "when releasing the secondary ipFamily"], old=dual()),
    case("update-lb-class-changed",
         allocated(lb(loadBalancerClass="b.example.com/lb")),
         ['spec.loadBalancerClass: Invalid value: "b.example.com/lb": may not change once set'],
         old=allocated(lb(loadBalancerClass="a.example.com/lb"))),
    case("update-lb-class-removed", allocated(lb()),
         ['spec.loadBalancerClass: Invalid value: "null": may not change once set'],
         old=allocated(lb(loadBalancerClass="a.example.com/lb"))),
    case("update-health-check-node-port-changed",
         allocated(lb(externalTrafficPolicy="Local", healthCheckNodePort=30200)),
         ["spec.healthCheckNodePort: Forbidden: field is immutable"],
         old=allocated(lb(externalTrafficPolicy="Local", healthCheckNodePort=30100))),
]


def _service(spec: Obj, name: str | None, namespace: str | None, defaults: bool) -> Obj:
    meta: Obj = {}
    if name is not None:
        meta["name"] = name
    if namespace is not None:
        meta["namespace"] = namespace
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": copy.deepcopy(spec)}
    if defaults:
        apply_defaults("Service", obj)
    return obj


@pytest.mark.parametrize("spec,expected,old,is_raw,name,namespace", CASES)
def test_service_validation(spec: Obj | Callable[[], Obj], expected: list[str],
                            old: Obj | None, is_raw: bool, name: str | None,
                            namespace: str | None) -> None:
    assert SERVICE is not None
    spec = spec() if callable(spec) else spec
    obj = _service(spec, name, namespace, defaults=not is_raw)
    old_obj = None if old is None else _service(old, name, namespace, defaults=True)
    errs = validate(SERVICE, obj, old_obj)
    assert sorted(str(e) for e in errs) == sorted(expected)
    for e in errs:  # the Status cause carries the same text, minus the field path
        assert e.cause()["message"] == str(e).removeprefix(f"{e.field}: ")

