"""Values shared by the node agent's parts: node configuration, pod plans, sandbox facts.

The agent turns a Pod (plus the ConfigMaps, Secrets and Services it refers to) into a
`PodPlan` with a pure function (plan.py); the runtime (runtime.py) makes the plan real:
a sandbox (network namespace, interface, IP, /etc/netns files) and one process per
container, and reports a `PodStatus`-shaped dict back. Keeping these types in one module
lets the planner, the sandbox edge and the container edge be written and tested apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NodeConfig:
    """What a node agent knows about its node.

    `pod_cidr` is the node's pod range (10.244.i.0/24); the bridge `bridge` in the agent's
    network namespace gets its first address and is every pod's default gateway.
    `netns_prefix` names pod namespaces (`<prefix><pod uid[:12]>`) so `svcnet down` can
    find them. `state_dir` holds per-pod state (IP allocations, logs) that lets a
    restarted agent re-adopt running pods.
    """

    name: str
    node_ip: str
    pod_cidr: str
    state_dir: Path
    cluster_dns: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    bridge: str = "cbr0"
    netns_prefix: str = "svcnet-pod-"
    host_resolv_conf: Path = Path("/etc/resolv.conf")


@dataclass(frozen=True)
class ImageRef:
    """How an image runs as a process: the argv prefix that stands for the image's
    entrypoint, and the argv that stands for its default arguments (Docker's CMD)."""

    entrypoint: tuple[str, ...]
    default_args: tuple[str, ...] = ()
    workdir: str = ""


@dataclass(frozen=True)
class ContainerPlan:
    """One container as a process. `argv` empty and `waiting_reason` set means it cannot
    run (e.g. ErrImagePull for an unknown image without command); `waiting_message` says
    how to fix it."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str = ""
    image: str = ""
    waiting_reason: str = ""
    waiting_message: str = ""
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    # A per-container directory the image's program creates and keeps its own files in
    # (nginx: generated config, pid file, temp dirs). The program creates it itself, so
    # the runtime need not do anything for the container to work; the runtime may delete
    # it once the container is gone (all of a pod's are under <state_dir>/scratch/<uid>).
    scratch_dir: str = ""


@dataclass(frozen=True)
class PodPlan:
    """Everything the runtime needs to run one Pod, derived purely from API objects."""

    uid: str
    namespace: str
    name: str
    hostname: str
    host_network: bool
    resolv_conf: str  # file content
    hosts: str  # file content
    containers: tuple[ContainerPlan, ...]
    restart_policy: str = "Always"
    termination_grace_seconds: int = 30
    init_containers: tuple[ContainerPlan, ...] = ()
    # (reason, message) pairs the agent posts as Warning Events on the Pod, as kubelet
    # does: MissingClusterDNS, DNSConfigForming.
    warnings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Sandbox:
    """A pod's network sandbox as it exists on the node (also rebuilt after a restart)."""

    pod_uid: str
    netns: str  # name under /run/netns ("" for hostNetwork pods)
    ip: str
    host_veth: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerTarget:
    """A running container as `kubectl exec`/`attach` reach it: its main process (pid and
    start ticks; its namespaces are the ones to enter), environment and working directory
    (an exec'd command gets them too), image (exec argv is resolved through the image
    catalog like the container's own), and its attach socket directory."""

    pod_uid: str
    pod_name: str
    container: str
    pid: int
    pid_start: int | None
    env: tuple[tuple[str, str], ...]
    workdir: str
    image: str
    scratch_dir: str
    attempt_dir: Path
    hostname: str
    stdin: bool = False
    tty: bool = False
