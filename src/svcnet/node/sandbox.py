"""Pod network sandboxes (EDGE: the only node code that runs `ip` or writes sysctls).

Runs inside the node's network namespace (where `svcnet agent` runs). Per node: a bridge
holding the first address of the pod range, forwarding on in *this* namespace. Per pod: a
named network namespace `<prefix><uid[:12]>`, a veth pair (`veth<8 hex>` on the bridge,
hairpin on so a pod reaches itself through a Service; `eth0` in the pod), the pod IP, lo
up, a default route via the bridge, and /etc/netns/<netns>/{resolv.conf,hosts}: `ip netns
exec` bind-mounts those over /etc/resolv.conf and /etc/hosts in a private mount namespace
(checked on Debian 12's iproute2 6.1), which is how every pod process gets its own files.

Two things the environment forces:

* Refusing the root namespace. Turning forwarding on (or adding a bridge) in the machine's
  own namespace would route traffic off the machine. The namespace of PID 1 counts as
  root; where /proc/1/ns is unreadable (some VMs deny it even to root), kthreadd's (PID 2)
  is used; if neither is readable, only a namespace that is mounted under /run/netns is
  trusted to be a node's.
* Pod namespaces are mounted from the init mount namespace. `ip netns exec` (how `svcnet
  up` starts agents) gives the agent a private *slave* mount namespace: a netns the agent
  mounted there would be invisible to `ip netns list` on the host and to `svcnet down`,
  and would vanish with the agent. So `ip netns add/delete` run via `nsenter --mount=` the
  init mount namespace when the agent is elsewhere; the mount propagates back into the
  agent's namespace.

Commands run through asyncio subprocesses; a failure raises CommandError with the argv,
exit status and stderr. State per sandbox lives in <state_dir>/sandboxes/<uid>.json so a
restarted agent can list (and re-adopt or remove) what exists.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import ipaddress
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from svcnet.node.ipam import gateway
from svcnet.node.types import NodeConfig, PodPlan, Sandbox

POD_IFNAME = "eth0"


class SandboxError(Exception):
    """Base of sandbox errors."""


class CommandError(SandboxError):
    """A command failed. Carries the argv, the exit status and stderr; callers log it
    and retry the pod later, they never parse the text."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(self.argv)} failed (exit {returncode}): {self.stderr}")


class RootNamespaceError(SandboxError):
    """Refused: the agent is in the root network namespace (or cannot prove it is not)."""


def _ns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _init_ns_path(kind: str) -> str | None:
    """/proc/<pid>/ns/<kind> of the init namespace: PID 1's if readable, else kthreadd's."""
    if _ns_id(f"/proc/1/ns/{kind}") is not None:
        return f"/proc/1/ns/{kind}"
    try:
        with open("/proc/2/comm") as f:
            if f.read().strip() == "kthreadd" and _ns_id(f"/proc/2/ns/{kind}") is not None:
                return f"/proc/2/ns/{kind}"
    except OSError:
        pass
    return None


def current_netns_is_root(run_netns: Path = Path("/run/netns")) -> bool:
    """True if this thread's network namespace is the init one, or if that cannot be
    told and the namespace is not one mounted under `run_netns` (fail safe)."""
    me = _ns_id("/proc/thread-self/ns/net")
    ref = _init_ns_path("net")
    if ref is not None:
        return me == _ns_id(ref)
    try:
        named = {_ns_id(str(p)) for p in run_netns.iterdir()}
    except OSError:
        named = set()
    return me not in named


class SandboxManager:
    """Creates and removes the pod sandboxes of one node. Idempotent per pod uid;
    operations on one uid are serialized, different uids run concurrently."""

    def __init__(self, node: NodeConfig, *, allow_root_namespace: bool = False,
                 etc_netns: Path = Path("/etc/netns"),
                 run_netns: Path = Path("/run/netns")) -> None:
        self.node = node
        self.allow_root_namespace = allow_root_namespace
        self.etc_netns = etc_netns
        self.run_netns = run_netns
        self.state_dir = Path(node.state_dir) / "sandboxes"
        net = ipaddress.ip_network(node.pod_cidr, strict=False)
        self.gateway = gateway(node.pod_cidr)
        self.prefixlen = net.prefixlen
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_root: bool | None = None

    # --- names -------------------------------------------------------------------------

    def netns_name(self, pod_uid: str) -> str:
        return f"{self.node.netns_prefix}{pod_uid[:12]}"

    @staticmethod
    def veth_name(netns: str) -> str:
        """`veth<8 hex>` derived from the netns name, so it can be found again from the
        namespace alone (orphans, restarts)."""
        return "veth" + hashlib.sha256(netns.encode()).hexdigest()[:8]

    def netns_exec_prefix(self, sandbox: Sandbox) -> builtins.list[str]:
        """The argv prefix that runs a program in the pod's network namespace with its
        own /etc/resolv.conf and /etc/hosts; [] for a hostNetwork pod. `ip` is found on
        the agent's PATH now: the shim looks programs up on the *container's* PATH, where
        an image's own `ip` (busybox's applet, which has no `netns exec`) may come first."""
        if not sandbox.netns:
            return []
        return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", sandbox.netns]

    # --- node --------------------------------------------------------------------------

    def _check_namespace(self) -> bool:
        """True if pod networking may be set up here; raises if refused."""
        if self._in_root is None:
            self._in_root = current_netns_is_root(self.run_netns)
        if not self._in_root:
            return True
        if self.allow_root_namespace:
            return False
        raise RootNamespaceError(
            "svcnet agent is in the root network namespace (or cannot tell): it sets up "
            "pod networking (bridge, forwarding) only inside a node namespace made by "
            "`svcnet up`; run hostNetwork-only with allow_root_namespace")

    async def ensure_node_network(self) -> None:
        """Bridge `node.bridge` up with `<gateway>/<prefix>`, br_netfilter calls on for
        it (kube-proxy must see bridged pod-to-pod replies of DNATed flows) and IPv4
        forwarding on, all in the current namespace. In the root namespace with
        allow_root_namespace this does nothing: only hostNetwork pods can run there."""
        if not self._check_namespace():
            return
        br = self.node.bridge
        if not await self._link_exists(br):
            # A fixed MAC: a bridge otherwise takes the lowest port MAC, which changes as
            # pods come and go and leaves stale gateway ARP entries in the pods.
            mac = "02:" + ":".join(hashlib.sha256(br.encode() + self.node.name.encode())
                                   .hexdigest()[i:i + 2] for i in range(0, 10, 2))
            await self._ip("link", "add", br, "address", mac, "type", "bridge")
        await self._ip("link", "set", br, "type", "bridge", "nf_call_iptables", "1")
        want = f"{self.gateway}/{self.prefixlen}"
        have = await self._addresses(br)
        if have != [want]:
            await self._ip("addr", "flush", "dev", br, "scope", "global")
            await self._ip("addr", "add", want, "dev", br)
        await self._ip("link", "set", br, "up")
        await self._ip("link", "set", "lo", "up")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")

    # --- pods --------------------------------------------------------------------------

    async def create(self, plan: PodPlan, ip: str) -> Sandbox:
        """Make (or complete) the sandbox of `plan` with address `ip`. A hostNetwork pod
        gets Sandbox(netns="", ip=node IP) and nothing is created. If this call created
        the namespace and then fails, it removes what it made before raising."""
        if plan.host_network:
            return Sandbox(pod_uid=plan.uid, netns="", ip=self.node.node_ip,
                           labels={"namespace": plan.namespace, "name": plan.name})
        if not self._check_namespace():
            raise RootNamespaceError(f"pod {plan.namespace}/{plan.name} needs the pod "
                                     "network, which is not set up in the root namespace")
        try:
            valid = ipaddress.ip_address(ip) in ipaddress.ip_network(self.node.pod_cidr,
                                                                     strict=False)
        except ValueError:
            valid = False
        if not valid:
            raise SandboxError(f"pod {plan.namespace}/{plan.name}: IP {ip!r} is not in the "
                               f"node's pod range {self.node.pod_cidr}")
        async with self._lock(plan.uid):
            ns = self.netns_name(plan.uid)
            created = not self._netns_usable(ns)
            try:
                return await self._create(plan, ip, ns, created)
            except BaseException:
                if created:
                    await self._remove(plan.uid)
                raise

    async def _create(self, plan: PodPlan, ip: str, ns: str, fresh: bool) -> Sandbox:
        veth = self.veth_name(ns)
        if fresh:
            if (self.run_netns / ns).exists():  # dangling entry of a dead mount
                await self._netns_cmd("delete", ns)
            await self._netns_cmd("add", ns)
        await self._ip("-n", ns, "link", "set", "lo", "up")
        if not await self._link_exists(veth):
            if await self._link_exists(POD_IFNAME, ns):  # half of a broken pair
                await self._ip("-n", ns, "link", "del", POD_IFNAME)
            await self._ip("link", "add", veth, "type", "veth", "peer", "name", POD_IFNAME,
                           "netns", ns)
        await self._ip("link", "set", veth, "master", self.node.bridge)
        await self._ip("link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        await self._ip("link", "set", veth, "up")
        want = f"{ip}/{self.prefixlen}"
        if await self._addresses(POD_IFNAME, ns) != [want]:
            await self._ip("-n", ns, "addr", "flush", "dev", POD_IFNAME, "scope", "global")
            await self._ip("-n", ns, "addr", "add", want, "dev", POD_IFNAME)
        await self._ip("-n", ns, "link", "set", POD_IFNAME, "up")
        await self._ip("-n", ns, "route", "replace", "default", "via", self.gateway, "dev",
                       POD_IFNAME)
        etc = self.etc_netns / ns
        etc.mkdir(parents=True, exist_ok=True)
        _write_atomic(etc / "resolv.conf", plan.resolv_conf)
        _write_atomic(etc / "hosts", plan.hosts)
        sandbox = Sandbox(pod_uid=plan.uid, netns=ns, ip=ip, host_veth=veth,
                          labels={"namespace": plan.namespace, "name": plan.name})
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.state_dir / f"{plan.uid}.json", json.dumps(asdict(sandbox)))
        return sandbox

    async def remove(self, pod_uid: str) -> None:
        """Delete the pod's veth pair, namespace, /etc/netns dir and state. Idempotent.
        The veth goes first and explicitly: if pod processes still run, the namespace
        outlives its name, and so would its end of the pair."""
        async with self._lock(pod_uid):
            await self._remove(pod_uid)

    async def _remove(self, pod_uid: str) -> None:
        ns = self.netns_name(pod_uid)
        veth = self.veth_name(ns)
        if await self._link_exists(veth):
            await self._ip("link", "del", veth)
        if (self.run_netns / ns).exists():
            await self._netns_cmd("delete", ns)
        shutil.rmtree(self.etc_netns / ns, ignore_errors=True)
        # by namespace, so removing an orphan by its short uid also drops any record
        for f in self.state_dir.glob(f"{pod_uid[:12]}*.json") if self.state_dir.is_dir() else []:
            f.unlink(missing_ok=True)

    async def list(self) -> builtins.list[Sandbox]:
        """The sandboxes that exist: recorded ones whose namespace is there, plus
        orphans (a `<prefix>*` namespace without state whose veth is on this node) as
        Sandbox(pod_uid=<uid[:12]>) with the IP read from eth0; `remove(pod_uid)` works
        for both."""
        found: dict[str, Sandbox] = {}
        if self.state_dir.is_dir():
            for f in sorted(self.state_dir.glob("*.json")):
                try:
                    sb = Sandbox(**json.loads(f.read_text()))
                except (OSError, ValueError, TypeError):
                    continue
                if self._netns_usable(sb.netns):
                    found[sb.netns] = sb
        try:
            names = sorted(p.name for p in self.run_netns.iterdir())
        except OSError:
            names = []
        for ns in names:
            if ns in found or not ns.startswith(self.node.netns_prefix):
                continue
            if not self._netns_usable(ns) or not await self._link_exists(self.veth_name(ns)):
                continue
            addrs = await self._addresses(POD_IFNAME, ns)
            found[ns] = Sandbox(pod_uid=ns[len(self.node.netns_prefix):], netns=ns,
                                ip=addrs[0].split("/")[0] if addrs else "",
                                host_veth=self.veth_name(ns), labels={"orphan": "true"})
        return list(found.values())

    # --- helpers -----------------------------------------------------------------------

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def _netns_usable(self, ns: str) -> bool:
        """A name under /run/netns that is a mounted namespace (not the empty file a
        mount namespace that died leaves behind)."""
        here, mine = _ns_id(str(self.run_netns / ns)), _ns_id("/proc/thread-self/ns/net")
        return here is not None and mine is not None and here[0] == mine[0]

    async def _netns_cmd(self, verb: str, ns: str) -> None:
        argv = ["ip", "netns", verb, ns]
        init_mnt = _init_ns_path("mnt")
        if init_mnt is not None and _ns_id(init_mnt) != _ns_id("/proc/thread-self/ns/mnt"):
            argv = ["nsenter", f"--mount={init_mnt}", "--", *argv]
        await _run(argv)

    async def _ip(self, *args: str) -> str:
        return await _run(["ip", *args])

    async def _link_exists(self, name: str, netns: str = "") -> bool:
        ns = ["-n", netns] if netns else []
        return bool(await _ip_json(*ns, "link", "show", "dev", name))

    async def _addresses(self, dev: str, netns: str = "") -> builtins.list[str]:
        """Global IPv4 addresses of `dev` as "ip/prefix" ([] if there is no such link)."""
        ns = ["-n", netns] if netns else []
        links = await _ip_json(*ns, "-4", "addr", "show", "dev", dev, "scope", "global")
        return [f"{a['local']}/{a['prefixlen']}" for link in links
                for a in link.get("addr_info", []) if "local" in a]


async def _spawn(argv: Sequence[str]) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as e:  # the program is not installed
        raise CommandError(argv, 127, f"cannot run {argv[0]}: {e.strerror}") from e


async def _run(argv: Sequence[str]) -> str:
    proc = await _spawn(argv)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode or 0, err.decode(errors="replace"))
    return out.decode(errors="replace")


async def _ip_json(*args: str) -> list[dict[str, Any]]:
    """`ip -j <args>` parsed; [] when the device does not exist (exit 1, nothing on
    stdout), so existence checks need no stderr parsing."""
    argv = ["ip", "-j", *args]
    proc = await _spawn(argv)
    out, err = await proc.communicate()
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        if not text:
            return []
        raise CommandError(argv, proc.returncode or 0, err.decode(errors="replace"))
    return list(json.loads(text)) if text else []


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
