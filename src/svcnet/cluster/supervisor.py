"""Run a local cluster's processes and record them: the edge behind `svcnet up` / `down`.

`up(plan)` writes `DIR/cluster.json` (the settings, the layout and, as they start, the
processes) *before* it creates anything, so a `down` after a crash or Ctrl-C still knows
what to remove. It then makes the network (`network.setup`), starts the server in the
root namespace and waits for its ready line, creates a token per node, starts each agent
inside its node's namespace, and waits until every Node is Ready. Processes run in their
own sessions (setsid) with output in `DIR/logs/*.log`, so they outlive `up`.

`up` on a cluster that is already up checks and repairs it: the network is re-ensured,
processes that are still running (same pid *and* same start time, so a reused pid is never
mistaken for ours) are kept, dead ones restarted. Different settings for the same data dir
are refused. If an `up` that created the cluster fails, it removes what it made (the logs
stay) unless told to retain it.

`down(data_dir)` stops the agents and every process inside the cluster's namespaces
(node and pod namespaces, found through /proc/<pid>/ns/net, so pod processes and shims
are found whoever started them), then the server, each with SIGTERM then SIGKILL after a
grace period; then tears the network down, and removes cluster.json. `down` with nothing
up says so and succeeds.

Only one `up`/`down` runs per data dir at a time (an flock on `DIR/.lock`). Finding,
starting and stopping processes is `processes`' job.
"""

from __future__ import annotations

import base64
import fcntl
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from svcnet.cluster import network
from svcnet.cluster.plan import ClusterPlan, NodePlan, ProcessSpec, plan_from_settings
from svcnet.cluster.processes import (
    ProcRecord,
    Say,
    log_size,
    processes_in,
    spawn,
    stop_processes,
    tail,
)
from svcnet.privatefile import write_private

STATE_VERSION = 1
READY_LINE = "svcnet server ready"
POLL = 0.25


class ClusterError(Exception):
    """`up` or `down` could not do its job. `str()` is one line; `details` (possibly
    empty) holds what helps fix it, e.g. the tail of a log."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass
class ClusterState:
    """The content of DIR/cluster.json."""

    plan: ClusterPlan
    phase: str = "starting"
    agents: bool = True
    forward_rule: bool = False
    processes: dict[str, ProcRecord] = field(default_factory=dict)
    pod_namespaces: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "phase": self.phase, "agents": self.agents,
                "forwardRule": self.forward_rule, "settings": self.plan.settings,
                "layout": self.plan.layout(),
                "processes": {k: v.to_json() for k, v in self.processes.items()},
                "podNamespaces": self.pod_namespaces}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ClusterState":
        return cls(plan=plan_from_settings(d["settings"]), phase=str(d.get("phase", "")),
                   agents=bool(d.get("agents", True)),
                   forward_rule=bool(d.get("forwardRule", False)),
                   processes={k: ProcRecord.from_json(v)
                              for k, v in d.get("processes", {}).items()},
                   pod_namespaces=list(d.get("podNamespaces", [])))

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename): a reader sees the old or the new
        state, never half of one."""
        write_private(self.plan.state_file, json.dumps(self.to_json(), indent=2) + "\n",
                      durable=True)


def load_state(data_dir: Path) -> ClusterState | None:
    """The recorded cluster of `data_dir`, or None if there is none."""
    try:
        raw = json.loads((data_dir / "cluster.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ClusterError(f"cannot read {data_dir / 'cluster.json'}: {e}") from None
    return ClusterState.from_json(raw)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(f"another svcnet up/down is running on {data_dir}") from None
        yield


# --- up ----------------------------------------------------------------------------------

@dataclass
class UpResult:
    plan: ClusterPlan
    created: bool
    started: list[str]
    kept: list[str]


def up(plan: ClusterPlan, *, agents: bool = True, timeout: float = 120.0,
       retain_on_failure: bool = False, python: str = sys.executable,
       say: Say = lambda s: None) -> UpResult:
    """Bring the cluster of `plan` up (or check and repair it). Raises `ClusterError`
    (or `network.NetworkError`) with a one-line reason; a cluster this call created is
    removed again first, unless `retain_on_failure`."""
    with _locked(plan.data_dir):
        existing = load_state(plan.data_dir)
        if existing is not None and existing.plan.settings != plan.settings:
            raise ClusterError(f"a cluster with other settings is already up in "
                               f"{plan.data_dir} ({_describe(existing.plan)}); run `svcnet "
                               f"down --data-dir {plan.data_dir}` first")
        created = existing is None
        # Refuse conflicts before recording anything: a refused `up` leaves no trace.
        network.check_host(plan, adopt_unowned=not created)
        state = existing or ClusterState(plan, agents=agents)
        state.agents = state.agents or agents
        state.phase = "starting"
        plan.log_dir.mkdir(parents=True, exist_ok=True)
        state.save()
        try:
            return _up(state, created=created, agents=agents, timeout=timeout,
                       python=python, say=say)
        except BaseException:
            if created and not retain_on_failure:
                say("failed; removing what this run created "
                    f"(logs stay in {plan.log_dir})")
                undone = _down(state, purge=False, say=lambda s: None)
                for problem in undone.problems:
                    say(f"could not remove {problem}; run `svcnet down --data-dir "
                        f"{plan.data_dir}`")
            raise


def _up(state: ClusterState, *, created: bool, agents: bool, timeout: float, python: str,
        say: Say) -> UpResult:
    plan = state.plan
    deadline = time.monotonic() + timeout
    say(f"network: bridge {plan.naming.bridge} {plan.host_prefix}, "
        f"{len(plan.nodes)} node namespace(s)")
    state.forward_rule = network.setup(plan, adopt_unowned=not created) or state.forward_rule
    state.save()
    started: list[str] = []
    kept: list[str] = []
    server = state.processes.get("server")
    if server is not None and server.alive():
        kept.append("server")
        _wait_api(plan, deadline, server)
    else:
        spec = plan.server_process(python)
        offset = log_size(spec.log_file)
        rec, proc = spawn(spec)
        state.processes["server"] = rec
        state.save()
        started.append("server")
        say(f"server: pid {rec.pid}, log {spec.log_file}")
        _wait_ready_line(spec, proc, offset, deadline)
        _wait_api(plan, deadline, rec)
    if agents:
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for node in plan.nodes:
            key = f"agent-{node.name}"
            rec0 = state.processes.get(key)
            if rec0 is not None and rec0.alive():
                kept.append(key)
                continue
            token = _create_token(plan, node, python)
            node.state_dir.mkdir(parents=True, exist_ok=True)
            write_private(node.token_file, token + "\n")
            spec = plan.agent_process(node, python)
            rec, procs[key] = spawn(spec)
            state.processes[key] = rec
            state.save()
            started.append(key)
            say(f"agent {node.name}: pid {rec.pid} in netns {node.netns}, log {spec.log_file}")
        _wait_nodes_ready(state, procs, deadline)
    state.phase = "up"
    state.save()
    return UpResult(plan, created, started, kept)


def _describe(plan: ClusterPlan) -> str:
    s = plan.settings
    return (f"{s.get('nodes')} node(s), node CIDR {s.get('node_cidr')}, pod CIDR "
            f"{s.get('pod_cidr')}, service CIDR {s.get('service_cidr')}, proxy mode "
            f"{s.get('proxy_mode')}")


def _wait_ready_line(spec: ProcessSpec, proc: subprocess.Popen[bytes], offset: int,
                     deadline: float) -> None:
    """Wait for the server's `svcnet server ready` line in its log (after `offset`)."""
    while True:
        try:
            with open(spec.log_file, "rb") as f:
                f.seek(offset)
                if READY_LINE.encode() in f.read():
                    return
        except FileNotFoundError:
            pass
        rc = proc.poll()
        if rc is not None:
            raise ClusterError(f"svcnet server exited ({rc}) before it was ready; see "
                               f"{spec.log_file}", tail(spec.log_file))
        if time.monotonic() > deadline:
            raise ClusterError(f"svcnet server was not ready in time; see {spec.log_file}",
                               tail(spec.log_file))
        time.sleep(POLL)


def _create_token(plan: ClusterPlan, node: NodePlan, python: str) -> str:
    """A fresh node token (`svcnet token create`); replaces the node's previous one,
    which only a dead agent was using."""
    argv = plan.token_argv(node, python)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    token = res.stdout.strip()
    if res.returncode != 0 or not token:
        raise ClusterError(f"`svcnet token create --node {node.name}` failed: "
                           f"{(res.stderr.strip() or 'no output').splitlines()[-1]}")
    return token


class _Api:
    """Just enough of an API client for `up` to poll: admin token and CA from the
    kubeconfig the server wrote. Synchronous on purpose: `up` waits, it does nothing else."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        cluster = cfg["clusters"][0]["cluster"]
        self.server = str(cluster["server"]).rstrip("/")
        self.token = str(cfg["users"][0]["user"]["token"])
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.ctx = ssl.create_default_context(cadata=ca)

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.server + path,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Accept": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=5) as r:
            return json.loads(r.read())


def _wait_api(plan: ClusterPlan, deadline: float, rec: ProcRecord) -> None:
    """Wait until the API answers an authenticated request through the kubeconfig (the
    same path kubectl takes)."""
    last = ""
    while True:
        try:
            _Api(plan.kubeconfig).get("/api/v1/namespaces/default")
            return
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as e:
            last = str(e)
        if not rec.alive():
            raise ClusterError(f"svcnet server (pid {rec.pid}) is not running; see {rec.log}",
                               tail(rec.log))
        if time.monotonic() > deadline:
            raise ClusterError(f"the API at {plan.server_url} did not answer in time: {last}",
                               tail(rec.log))
        time.sleep(POLL)


def node_readiness(nodes: list[dict[str, Any]], names: list[str]) -> dict[str, str]:
    """For each wanted node name, "" if Ready, else why not (pure)."""
    by_name = {str(n.get("metadata", {}).get("name")): n for n in nodes}
    out: dict[str, str] = {}
    for name in names:
        node = by_name.get(name)
        if node is None:
            out[name] = "not registered"
            continue
        conds = node.get("status", {}).get("conditions") or []
        ready = next((c for c in conds if c.get("type") == "Ready"), None)
        if ready is None:
            out[name] = "no Ready condition"
        elif ready.get("status") == "True":
            out[name] = ""
        else:
            out[name] = (f"Ready={ready.get('status')}"
                         + (f" ({ready.get('reason')})" if ready.get("reason") else ""))
    return out


def _wait_nodes_ready(state: ClusterState, procs: dict[str, subprocess.Popen[bytes]],
                      deadline: float) -> None:
    plan = state.plan
    names = [n.name for n in plan.nodes]
    api = _Api(plan.kubeconfig)
    why = {n: "not registered" for n in names}
    while True:
        try:
            why = node_readiness(api.get("/api/v1/nodes").get("items", []), names)
        except (OSError, ValueError, urllib.error.URLError) as e:
            why = {n: f"API error: {e}" for n in names}
        if not any(why.values()):
            return
        for node in plan.nodes:
            rec = state.processes.get(f"agent-{node.name}")
            proc = procs.get(f"agent-{node.name}")
            rc = proc.poll() if proc is not None else None
            if rec is not None and (rc is not None or not rec.alive()):
                raise ClusterError(f"the agent of {node.name} exited"
                                   + (f" ({rc})" if rc is not None else "")
                                   + f"; see {node.log_file}", tail(node.log_file))
        if time.monotonic() > deadline:
            waiting = [f"{n} ({w})" for n, w in why.items() if w]
            details = "\n".join(f"--- {plan.node(n).log_file} ---\n{tail(plan.node(n).log_file)}"
                                for n, w in why.items() if w)
            raise ClusterError(f"nodes not Ready in time: {', '.join(waiting)}", details)
        time.sleep(POLL * 2)


# --- down --------------------------------------------------------------------------------

@dataclass
class DownResult:
    was_up: bool
    stopped: list[str]
    problems: list[str]


def down(data_dir: Path, *, purge: bool = False, say: Say = lambda s: None) -> DownResult:
    """Remove the cluster recorded in `data_dir` (nothing to do is fine). `problems`
    lists whatever could not be removed; the caller reports failure if it is not empty."""
    if not (data_dir / "cluster.json").exists():
        problems = network.remove_stale_etc_netns()
        if purge and data_dir.is_dir():
            shutil.rmtree(data_dir)
        return DownResult(False, [], problems)
    with _locked(data_dir):
        state = load_state(data_dir)
        if state is None:
            return DownResult(False, [], [])
        return _down(state, purge=purge, say=say)


def _down(state: ClusterState, *, purge: bool, say: Say) -> DownResult:
    plan = state.plan
    state.phase = "stopping"
    # Record the pod namespaces before anything goes: once a node namespace is deleted
    # the evidence that ties a pod namespace to this cluster goes with it.
    # If another data dir's cluster owns the bridge now, the namespaces bearing our names
    # are its namespaces: only the processes recorded here are ours to stop.
    foreign = network.foreign_owner(plan) is not None
    pods = [] if foreign else network.find_pod_namespaces(plan)
    state.pod_namespaces = sorted(set(state.pod_namespaces) | set(pods))
    state.save()
    stopped: list[str] = []
    problems: list[str] = []
    namespaces = [] if foreign else [*state.pod_namespaces, *plan.namespaces()]
    # Agents and everything in the cluster's namespaces first, while the server still
    # answers (an agent shutting down may want to talk to it); then the server.
    server = [r for k, r in state.processes.items() if k == "server"]
    others = [r for k, r in state.processes.items() if k != "server"]
    stopped += stop_processes(others, namespaces, plan.data_dir, say=say,
                              exclude={r.pid for r in server if r.alive()})
    stopped += stop_processes(server, [], plan.data_dir, say=say)
    left = processes_in(namespaces) + [r.pid for r in state.processes.values() if r.alive()]
    if left:
        problems.append(f"processes still running: {sorted(set(left))}")
    problems += network.teardown(plan, state.pod_namespaces)
    problems += network.remove_stale_etc_netns()
    problems += network.leftovers(plan, state.pod_namespaces)
    if problems:
        state.save()
        return DownResult(True, stopped, list(dict.fromkeys(problems)))
    plan.state_file.unlink(missing_ok=True)
    if purge:
        shutil.rmtree(plan.data_dir, ignore_errors=True)
    return DownResult(True, stopped, [])


