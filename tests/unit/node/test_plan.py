"""Pod plans: resolv.conf per dnsPolicy, /etc/hosts, hostname, environment (envFrom, env,
valueFrom, `$(VAR)`, Service variables) and argv, each as kubelet produces them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.dnsconf import parse_resolv_conf
from svcnet.node.envvars import expand, parse_quantity, service_env, service_link_vars
from svcnet.node.images import ImageCatalog
from svcnet.node.plan import hosts_file, plan_pod
from svcnet.node.types import ContainerPlan, NodeConfig, PodPlan

NODE = NodeConfig(name="node-1", node_ip="172.30.0.11", pod_cidr="10.244.1.0/24",
                  state_dir=Path("/var/lib/svcnet/nodes/node-1"))
UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
HOST_RESOLV = "nameserver 10.255.255.53\n"
PROGRAMS = {"busybox": "/usr/bin/busybox", "nginx": "/usr/sbin/nginx"}


def catalog(programs: dict[str, str] = PROGRAMS) -> ImageCatalog:
    return ImageCatalog(which=programs.get, applets=lambda _: frozenset({"sh", "wget"}),
                        python="/py")


def make_pod(containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": UID,
                         "labels": {"app": "web", "tier": "front"},
                         "annotations": {"note": "hi"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "default",
                     "containers": containers or [{"name": "c", "image": "busybox"}], **spec}}


def svc(name: str, ip: str, *ports: dict[str, Any], ns: str = "shop") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": list(ports)}}


KUBERNETES = svc("kubernetes", "10.96.0.1", {"name": "https", "port": 443, "protocol": "TCP"},
                 ns="default")


def plan(pod: dict[str, Any], *, services: list[dict[str, Any]] = (),  # type: ignore[assignment]
         configmaps: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None,
         node: NodeConfig = NODE, images: ImageCatalog | None = None, **kw: Any) -> PodPlan:
    kw.setdefault("host_resolv", HOST_RESOLV)
    kw.setdefault("pod_ip", "10.244.1.5")
    return plan_pod(pod, node, services=list(services), configmaps=configmaps or {},
                    secrets=secrets or {}, images=images or catalog(), **kw)


def container(pod: dict[str, Any], **kw: Any) -> ContainerPlan:
    return plan(pod, **kw).containers[0]


# --- resolv.conf -------------------------------------------------------------------------

def test_cluster_first_resolv_conf() -> None:
    assert plan(make_pod()).resolv_conf == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n")


def test_cluster_first_appends_host_search_without_duplicates_and_drops_host_options() -> None:
    host = "nameserver 1.1.1.1\nsearch example.com cluster.local.\noptions rotate timeout:1\n"
    assert plan(make_pod(), host_resolv=host).resolv_conf == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local example.com\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n")


def test_default_policy_uses_the_host_settings_by_kubelet_rules() -> None:
    host = ("# generated\nnameserver 1.1.1.1\n  nameserver 8.8.8.8\nsearch a.com b.com.\n"
            "search c.com.\noptions timeout:2\noptions attempts:3\ndomain x\n")
    assert plan(make_pod(dnsPolicy="Default"), host_resolv=host).resolv_conf == (
        "search c.com\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions attempts:3\n")


def test_none_policy_takes_only_dns_config() -> None:
    cfg = {"nameservers": ["192.0.2.1"],
           "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert plan(make_pod(dnsPolicy="None", dnsConfig=cfg)).resolv_conf == (
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\n"
        "nameserver 192.0.2.1\n"
        "options ndots:2 edns0\n")


def test_dns_config_merges_into_cluster_first() -> None:
    cfg = {"nameservers": ["10.96.0.10", "192.0.2.9"], "searches": ["svc.cluster.local", "x.y"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "single-request-reopen"}]}
    assert plan(make_pod(dnsConfig=cfg)).resolv_conf == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local x.y\n"
        "nameserver 10.96.0.10\nnameserver 192.0.2.9\n"
        "options ndots:2 single-request-reopen\n")


@pytest.mark.parametrize("policy,cluster", [("ClusterFirst", False), ("Default", False),
                                            ("ClusterFirstWithHostNet", True)])
def test_host_network_dns(policy: str, cluster: bool) -> None:
    p = plan(make_pod(hostNetwork=True, dnsPolicy=policy))
    assert ("nameserver 10.96.0.10" in p.resolv_conf) is cluster
    assert ("nameserver 10.255.255.53" in p.resolv_conf) is not cluster


def test_missing_cluster_dns_falls_back_to_default_with_a_warning() -> None:
    node = NodeConfig(name="n", node_ip="172.30.0.10", pod_cidr="10.244.0.0/24",
                      state_dir=Path("/s"), cluster_dns="")
    p = plan(make_pod(), node=node)
    assert p.resolv_conf == "nameserver 10.255.255.53\n"
    assert p.warnings[0][0] == "MissingClusterDNS"
    assert 'cannot create Pod using "ClusterFirst" policy' in p.warnings[0][1]


def test_dns_limits_cut_with_dns_config_forming_warnings() -> None:
    cfg = {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
           "searches": [f"d{i}.example" for i in range(40)]}
    p = plan(make_pod(dnsConfig=cfg))
    servers, searches, _ = parse_resolv_conf(p.resolv_conf)
    assert servers == ["10.96.0.10", "192.0.2.1", "192.0.2.2"]
    assert len(searches) == 32 and searches[:3] == ["shop.svc.cluster.local",
                                                     "svc.cluster.local", "cluster.local"]
    assert [w[0] for w in p.warnings] == ["DNSConfigForming", "DNSConfigForming"]
    assert p.warnings[0][1].endswith("the applied nameserver line is: "
                                     "10.96.0.10 192.0.2.1 192.0.2.2")


# --- hosts and hostname ------------------------------------------------------------------

LOCAL = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
         "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


def test_hosts_file_with_pod_ip() -> None:
    p = plan(make_pod())
    assert p.hosts == LOCAL + "10.244.1.5\tweb-0\n"
    assert p.hostname == "web-0"


def test_hosts_file_with_hostname_subdomain_and_aliases() -> None:
    aliases = [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}]
    p = plan(make_pod(hostname="db-1", subdomain="dbs", hostAliases=aliases))
    assert p.hostname == "db-1"
    assert p.hosts == (LOCAL + "10.244.1.5\tdb-1.dbs.shop.svc.cluster.local\tdb-1\n"
                       "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n")


def test_hostname_as_fqdn_and_truncation() -> None:
    p = plan(make_pod(hostname="db-1", subdomain="dbs", setHostnameAsFQDN=True))
    assert p.hostname == "db-1.dbs.shop.svc.cluster.local"
    pod = make_pod()
    pod["metadata"]["name"] = "a" * 61 + "-.b"
    assert plan(pod).hostname == "a" * 61


def test_hosts_file_without_ip_has_no_pod_line() -> None:
    assert hosts_file("x", "", []) == LOCAL


def test_host_network_pod() -> None:
    p = plan(make_pod([{"name": "c", "image": "busybox", "env": [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}],
        hostNetwork=True), host_hosts="127.0.0.1 localhost\n")
    assert p.host_network and p.hostname == "node-1"
    assert p.hosts == "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
    assert dict(p.containers[0].env)["IP"] == "172.30.0.11"


# --- environment -------------------------------------------------------------------------

def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CM = {"cfg": {"data": {"B_KEY": "b", "A_KEY": "a", "MODE": "cm"}}}
SECRET = {"creds": {"data": {"PASSWORD": b64("s3cr3t"), "USER": b64("admin")}}}


def test_env_order_envfrom_then_env_then_services() -> None:
    c = {"name": "c", "image": "busybox", "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}}],
         "env": [{"name": "Z", "value": "z"}, {"name": "USER", "value": "root"},
                 {"name": "A", "value": "a"}]}
    env = container(make_pod([c]), configmaps=CM, secrets=SECRET, services=[KUBERNETES]).env
    names = [k for k, _ in env]
    assert names[:7] == ["CFG_A_KEY", "CFG_B_KEY", "CFG_MODE", "PASSWORD", "USER", "Z", "A"]
    assert names[7:] == sorted(names[7:]) and names[7] == "KUBERNETES_PORT"
    assert dict(env)["USER"] == "root" and dict(env)["PASSWORD"] == "s3cr3t"


def test_env_expansion_rules() -> None:
    c = {"name": "c", "image": "busybox", "envFrom": [{"configMapRef": {"name": "cfg"}}],
         "env": [{"name": "BASE", "value": "/srv"},
                 {"name": "PATHS", "value": "$(BASE)/a:$(MODE):$(LATER):$(NOPE)"},
                 {"name": "ESC", "value": "$$(BASE) $$ $x $(unterminated"},
                 {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):"
                                          "$(KUBERNETES_SERVICE_PORT)"},
                 {"name": "LATER", "value": "later"}, {"name": "EMPTY", "value": ""}]}
    env = dict(container(make_pod([c]), configmaps=CM, services=[KUBERNETES]).env)
    assert env["PATHS"] == "/srv/a:cm:$(LATER):$(NOPE)"
    assert env["ESC"] == "$(BASE) $ $x $(unterminated"
    assert env["API"] == "https://10.96.0.1:443"
    assert env["EMPTY"] == ""


def test_expand_edge_cases() -> None:
    look = {"A": "1"}.get
    assert expand("$", look) == "$"
    assert expand("a$", look) == "a$"
    assert expand("$(A)$(A)", look) == "11"
    assert expand("$()", look) == "$()"


def test_value_from_refs() -> None:
    c = {"name": "c", "image": "busybox", "env": [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope",
                                                          "optional": True}}},
        {"name": "OPT2", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                        "optional": True}}}]}
    env = dict(container(make_pod([c]), configmaps=CM, secrets=SECRET).env)
    assert env["MODE"] == "cm" and env["PW"] == "s3cr3t"
    assert "OPT" not in env and "OPT2" not in env


@pytest.mark.parametrize("env,message", [
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}],
     'configmap "gone" not found'),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
     "couldn't find key k in ConfigMap shop/cfg"),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}],
     "couldn't find key k in Secret shop/creds"),
])
def test_missing_references_are_create_container_config_errors(env: list[Any],
                                                               message: str) -> None:
    c = container(make_pod([{"name": "c", "image": "busybox", "env": env}]),
                  configmaps=CM, secrets=SECRET)
    assert (c.waiting_reason, c.waiting_message, c.argv) == (
        "CreateContainerConfigError", message, ())


def test_missing_envfrom_source() -> None:
    c = {"name": "c", "image": "busybox", "envFrom": [{"secretRef": {"name": "gone"}}]}
    assert container(make_pod([c])).waiting_message == 'secret "gone" not found'
    c["envFrom"][0]["secretRef"]["optional"] = True  # type: ignore[index]
    assert container(make_pod([c])).waiting_reason == ""


def test_field_refs() -> None:
    paths = {"N": "metadata.name", "NS": "metadata.namespace", "U": "metadata.uid",
             "L": "metadata.labels['app']", "AN": "metadata.annotations['note']",
             "LS": "metadata.labels", "NODE": "spec.nodeName", "SA": "spec.serviceAccountName",
             "IP": "status.podIP", "IPS": "status.podIPs", "HOST": "status.hostIP",
             "MISSING": "metadata.labels['none']"}
    c = {"name": "c", "image": "busybox", "env": [
        {"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()]}
    env = dict(container(make_pod([c])).env)
    assert env == {"N": "web-0", "NS": "shop", "U": UID, "L": "web", "AN": "hi",
                   "LS": 'app="web"\ntier="front"', "NODE": "node-1", "SA": "default",
                   "IP": "10.244.1.5", "IPS": "10.244.1.5", "HOST": "172.30.0.11",
                   "MISSING": ""}


def test_resource_field_refs() -> None:
    c = {"name": "c", "image": "busybox",
         "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                       "limits": {"memory": "128Mi"}},
         "env": [{"name": "CPU_M", "valueFrom": {"resourceFieldRef": {
                     "resource": "requests.cpu", "divisor": "1m"}}},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                     "resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "LCPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                     "containerName": "c"}}}]}
    env = dict(container(make_pod([c]), node_allocatable={"cpu": "2"}).env)
    assert (env["CPU_M"], env["CPU"], env["MEM"], env["LCPU"]) == ("250", "1", "128", "2")
    assert parse_quantity("1.5Gi") == 1536 * 2**20 and parse_quantity("1e3") == 1000


# --- Service variables -------------------------------------------------------------------

def test_service_link_vars_exact() -> None:
    s = svc("redis-primary", "10.96.0.11", {"port": 6379},
            {"name": "metrics", "port": 9121, "protocol": "UDP"})
    assert service_link_vars(s) == [
        ("REDIS_PRIMARY_SERVICE_HOST", "10.96.0.11"),
        ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
        ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
        ("REDIS_PRIMARY_PORT", "tcp://10.96.0.11:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.96.0.11:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.96.0.11"),
        ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.96.0.11:9121"),
        ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
        ("REDIS_PRIMARY_PORT_9121_UDP_PORT", "9121"),
        ("REDIS_PRIMARY_PORT_9121_UDP_ADDR", "10.96.0.11"),
    ]


def test_kubernetes_service_vars() -> None:
    env = service_env([KUBERNETES], "shop", True)
    assert env == {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
                   "KUBERNETES_SERVICE_PORT_HTTPS": "443",
                   "KUBERNETES_PORT": "tcp://10.96.0.1:443",
                   "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
                   "KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443",
                   "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1"}


def test_service_selection() -> None:
    services = [KUBERNETES, svc("web", "10.96.0.20", {"port": 80}),
                svc("other", "10.96.0.21", {"port": 80}, ns="elsewhere"),
                svc("headless", "None", {"port": 80}),
                {"metadata": {"name": "ext", "namespace": "shop"},
                 "spec": {"type": "ExternalName", "externalName": "example.com"}}]
    env = service_env(services, "shop", True)
    assert {k.split("_")[0] for k in env} == {"KUBERNETES", "WEB"}
    assert {k.split("_")[0] for k in service_env(services, "shop", False)} == {"KUBERNETES"}
    # enableServiceLinks: false in the pod spec
    pod = make_pod(enableServiceLinks=False)
    assert {k.split("_")[0] for k, _ in container(pod, services=services).env} == {"KUBERNETES"}


def test_ipv6_service_vars() -> None:
    env = dict(service_link_vars(svc("v6", "fd00::10", {"port": 80})))
    assert env["V6_PORT"] == "tcp://[fd00::10]:80" and env["V6_SERVICE_HOST"] == "fd00::10"


# --- argv --------------------------------------------------------------------------------

def test_unknown_image_without_command_is_err_image_pull() -> None:
    c = container(make_pod([{"name": "c", "image": "foo:1"}]))
    assert c.argv == () and c.waiting_reason == "ErrImagePull"
    assert c.waiting_message == ('image "foo:1" is not in svcnet\'s catalog; give the container '
                                 "a command: to run a program installed on the node (see svcnet "
                                 "docs: images)")
    c = container(make_pod([{"name": "c", "image": "foo:1", "args": ["x"]}]))
    assert c.waiting_reason == "ErrImagePull"


def test_command_and_args_with_expansion() -> None:
    c = {"name": "c", "image": "myapp:2", "command": ["/opt/app", "--name=$(POD)"],
         "args": ["$(GREETING) world", "$$(POD)"], "workingDir": "/tmp",
         "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "GREETING", "value": "hello"}]}
    cp = container(make_pod([c]))
    assert cp.argv == ("/opt/app", "--name=web-0", "hello world", "$(POD)")
    assert cp.workdir == "/tmp" and cp.image == "myapp:2" and cp.waiting_reason == ""


@pytest.mark.parametrize("spec,argv", [
    ({}, ("/usr/bin/busybox", "sh")),
    ({"args": ["sh", "-c", "echo hi"]}, ("/usr/bin/busybox", "sh", "-c", "echo hi")),
    ({"command": ["/bin/sh", "-c", "x"]}, ("/usr/bin/busybox", "sh", "-c", "x")),
    ({"command": ["python3", "-V"]}, ("python3", "-V")),
])
def test_busybox_argv(spec: dict[str, Any], argv: tuple[str, ...]) -> None:
    assert container(make_pod([{"name": "c", "image": "busybox:1.36", **spec}])).argv == argv


@pytest.mark.parametrize("image,spec,argv", [
    ("registry.k8s.io/e2e-test-images/agnhost:2.39", {"args": ["netexec", "--http-port=8080"]},
     ("/py", "-m", "svcnet.images.netexec", "--http-port=8080")),
    ("registry.k8s.io/e2e-test-images/agnhost:2.39",
     {"command": ["/agnhost", "serve-hostname"], "args": ["--port", "$(PORT)"],
      "env": [{"name": "PORT", "value": "9000"}]},
     ("/py", "-m", "svcnet.images.serve_hostname", "--port", "9000")),
    ("registry.k8s.io/serve_hostname", {}, ("/py", "-m", "svcnet.images.serve_hostname")),
    ("serve-hostname", {"args": ["--port=1234"]},
     ("/py", "-m", "svcnet.images.serve_hostname", "--port=1234")),
    ("netexec", {}, ("/py", "-m", "svcnet.images.netexec")),
])
def test_builtin_images(image: str, spec: dict[str, Any], argv: tuple[str, ...]) -> None:
    assert container(make_pod([{"name": "c", "image": image, **spec}])).argv == argv


def test_nginx_uses_a_scratch_dir() -> None:
    c = container(make_pod([{"name": "web", "image": "nginx:1.25"}]))
    scratch = f"/var/lib/svcnet/nodes/node-1/scratch/{UID}/web"
    assert c.scratch_dir == scratch
    assert c.argv[0] == "/bin/sh" and "/usr/sbin/nginx" in c.argv
    assert c.argv[-2:] == ("-g", "daemon off;")


def test_missing_program_is_err_image_pull_with_install_hint() -> None:
    c = container(make_pod([{"name": "c", "image": "redis:7"}]))
    assert c.waiting_reason == "ErrImagePull"
    assert "apt-get install redis-server" in c.waiting_message
    # an explicit command does not need the image's program
    c = container(make_pod([{"name": "c", "image": "redis:7", "command": ["sleep", "1"]}]))
    assert c.argv == ("sleep", "1")


def test_pod_level_fields_and_init_containers() -> None:
    pod = make_pod([{"name": "main", "image": "busybox", "stdin": True, "tty": True}],
                   initContainers=[{"name": "init", "image": "busybox",
                                    "command": ["sh", "-c", "true"]}],
                   restartPolicy="Never", terminationGracePeriodSeconds=0)
    p = plan(pod)
    assert (p.uid, p.namespace, p.name, p.restart_policy, p.termination_grace_seconds) == (
        UID, "shop", "web-0", "Never", 0)
    assert p.init_containers[0].argv == ("/usr/bin/busybox", "sh", "-c", "true")
    assert p.containers[0].stdin and p.containers[0].tty
    assert not p.host_network and p.warnings == ()


def test_busybox_containers_find_applets_first_on_path(tmp_path: Path) -> None:
    cat = ImageCatalog(which=PROGRAMS.get, applets=lambda _: frozenset({"sh", "nc"}),
                       python="/py", bin_dir=str(tmp_path))
    pod = make_pod([{"name": "c", "image": "busybox", "command": ["sh", "-c", "nc -h"]},
                    {"name": "d", "image": "busybox", "command": ["sh"],
                     "env": [{"name": "PATH", "value": "/opt/bin"}]}])
    env_c, env_d = (dict(c.env) for c in plan(pod, images=cat).containers)
    assert env_c["PATH"] == f"{tmp_path}/busybox:/usr/local/sbin:/usr/local/bin:/usr/sbin:" \
        "/usr/bin:/sbin:/bin"
    assert env_d["PATH"] == "/opt/bin"  # the Pod's own PATH wins
