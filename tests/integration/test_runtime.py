"""PodRuntime with real processes: shims, restarts, back-off, probes, logs, kills, re-adoption.

Pods run in the test's own network namespace: the fake sandbox has netns "" and an empty
exec prefix, and the pod IP is 127.0.0.1. Every process a test causes is found again from
the state directory and killed in the fixture's finalizer, even when the test fails, and
the finalizer then checks that nothing mentioning the test's directory is left running.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from conftest import free_port, pids_mentioning

from svcnet.node import containers
from svcnet.node.logs import LogsError
from svcnet.node.probe_state import ContainerProbes, ExecAction, HTTPGetAction, ProbeSpec
from svcnet.node.runtime import PodEvent, PodRuntime
from svcnet.node.shim import proc_start_ticks
from svcnet.node.types import ContainerPlan, NodeConfig, PodPlan, Sandbox

BACKOFF = 1.0
IS_ROOT = os.geteuid() == 0


class FakeSandboxes:
    """Sandboxes that are the test's own namespaces: no prefix at all."""

    def netns_exec_prefix(self, sandbox: Sandbox) -> list[str]:
        return []


@dataclass
class Env:
    node: NodeConfig
    tmp: Path
    events: list[PodEvent] = field(default_factory=list)
    changes: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    runtimes: list[PodRuntime] = field(default_factory=list)

    def runtime(self) -> PodRuntime:
        def changed(uid: str) -> None:  # when, which pod, and its status at that moment
            self.changes.append((time.monotonic(), uid, rt.status(uid) or {}))
        rt = PodRuntime(self.node, FakeSandboxes(), backoff_initial=BACKOFF, backoff_max=4.0,
                        on_event=self.events.append, on_change=changed)
        self.runtimes.append(rt)
        return rt

    def reasons(self, uid: str) -> list[str]:
        return [e.reason for e in self.events if e.pod_uid == uid]


def _all_attempts(root: Path, uid: str = "*") -> list[containers.Attempt]:
    found = []
    for state in root.glob(f"{uid}/*/*/state.json"):
        record = containers.read_attempt(state.parent, int(state.parent.name))
        if record is not None:
            found.append(record)
    return found




def _alive(pid: int, start: int | None) -> bool:
    return bool(pid) and start is not None and proc_start_ticks(pid) == start


def _kill_everything(root: Path, tmp: Path) -> list[int]:
    """Kill every container and shim recorded under `root`, then, as a safety net, any
    process whose command line mentions `tmp`. Returns what the safety net had to kill
    (should be nothing). Containers go first and their shims are given a moment to reap
    them, so no zombie is left to the machine's init."""
    attempts = _all_attempts(root)
    for a in attempts:
        if _alive(a.pid, a.pid_start):
            try:
                os.killpg(a.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 3
    while any(_alive(a.shim_pid, a.shim_start) for a in attempts) and time.monotonic() < deadline:
        time.sleep(0.02)
    for a in attempts:
        if _alive(a.shim_pid, a.shim_start):
            os.kill(a.shim_pid, signal.SIGKILL)
    strays = pids_mentioning(str(tmp))
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in {a.shim_pid for a in attempts if a.shim_pid} | set(strays):
        try:  # shims are children of this process while their runtime lived here
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return strays


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    node = NodeConfig(name="n1", node_ip="127.0.0.1", pod_cidr="10.244.1.0/24",
                      state_dir=tmp_path / "state")
    e = Env(node=node, tmp=tmp_path)
    try:
        yield e
    finally:
        for rt in e.runtimes:
            await rt.close()
        strays = _kill_everything(containers.pods_root(node.state_dir), tmp_path)
        assert strays == [], "stray processes were left behind"


async def eventually(pred: Callable[[], Any], timeout: float = 8.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def container(name: str, *argv: str, **kw: Any) -> ContainerPlan:
    return ContainerPlan(name=name, argv=argv, env=kw.pop("env", (("PATH", os.environ["PATH"]),)),
                         image=kw.pop("image", "busybox"), **kw)


def pod(uid: str, *cs: ContainerPlan, policy: str = "Always", grace: int = 5,
        init: tuple[ContainerPlan, ...] = ()) -> PodPlan:
    return PodPlan(uid=uid, namespace="default", name=f"pod-{uid}", hostname=f"pod-{uid}",
                   host_network=False, resolv_conf="", hosts="", containers=cs,
                   restart_policy=policy, termination_grace_seconds=grace,
                   init_containers=init)


SANDBOX = Sandbox(pod_uid="", netns="", ip="127.0.0.1")


def cstatus(rt: PodRuntime, uid: str, name: str = "app") -> dict[str, Any]:
    st = rt.status(uid) or {}
    for c in st.get("containerStatuses") or []:
        if c["name"] == name:
            return dict(c)
    return {}


def cond(rt: PodRuntime, uid: str, ctype: str) -> str:
    st = rt.status(uid) or {}
    return next((c["status"] for c in st.get("conditions") or [] if c["type"] == ctype), "")


def live_attempts(env: Env, uid: str) -> list[containers.Attempt]:
    return [a for a in _all_attempts(containers.pods_root(env.node.state_dir), uid)
            if containers.container_alive(a)]


def main_pid(env: Env, uid: str) -> int:
    (a,) = live_attempts(env, uid)
    return a.pid


async def read_logs(rt: PodRuntime, uid: str, name: str = "app", **kw: Any) -> list[bytes]:
    return [line async for line in rt.logs(uid, name, **kw)]


# -- running, restarting, back-off ----------------------------------------------------------------

async def test_killed_container_is_restarted_with_backoff(env: Env) -> None:
    rt = env.runtime()
    st = await rt.sync(pod("a1", container("app", "sleep", "60")), SANDBOX)
    assert st["phase"] == "Running"
    assert st["containerStatuses"][0]["state"].keys() == {"running"}
    first = main_pid(env, "a1")

    os.kill(first, signal.SIGKILL)
    # The first restart is immediate (kubelet semantics) and counted.
    await eventually(lambda: cstatus(rt, "a1").get("restartCount") == 1
                     and "running" in cstatus(rt, "a1")["state"])
    c = cstatus(rt, "a1")
    assert c["lastState"]["terminated"]["exitCode"] == 137
    assert c["lastState"]["terminated"]["reason"] == "Error"
    assert c["containerID"].endswith("/a1/app/1")
    second = main_pid(env, "a1")
    assert second != first

    os.kill(second, signal.SIGKILL)
    killed_at = time.monotonic()
    await eventually(lambda: cstatus(rt, "a1").get("state", {}).get("waiting", {})
                     .get("reason") == "CrashLoopBackOff")
    assert rt.status("a1")["phase"] == "Running"  # type: ignore[index]
    await eventually(lambda: cstatus(rt, "a1").get("restartCount") == 2
                     and "running" in cstatus(rt, "a1")["state"])
    assert time.monotonic() - killed_at >= BACKOFF * 0.9
    assert len(live_attempts(env, "a1")) == 1
    assert "BackOff" in env.reasons("a1")
    # sync is idempotent: no second copy, same attempt
    await rt.sync(pod("a1", container("app", "sleep", "60")), SANDBOX)
    assert len(live_attempts(env, "a1")) == 1 and cstatus(rt, "a1")["restartCount"] == 2


async def test_restart_policy_never_and_on_failure(env: Env) -> None:
    rt = env.runtime()
    flag = env.tmp / "tried"
    await rt.sync(pod("ok", container("app", "sh", "-c", "exit 0"), policy="Never"), SANDBOX)
    await rt.sync(pod("bad", container("app", "sh", "-c", "exit 3"), policy="Never"), SANDBOX)
    await rt.sync(pod("retry", container(
        "app", "sh", "-c", f"test -f {flag} || {{ touch {flag}; exit 1; }}"),
        policy="OnFailure"), SANDBOX)
    await eventually(lambda: (rt.status("ok") or {}).get("phase") == "Succeeded")
    await eventually(lambda: (rt.status("bad") or {}).get("phase") == "Failed")
    await eventually(lambda: (rt.status("retry") or {}).get("phase") == "Succeeded")
    ok, bad, retry = cstatus(rt, "ok"), cstatus(rt, "bad"), cstatus(rt, "retry")
    assert ok["state"]["terminated"]["reason"] == "Completed" and ok["restartCount"] == 0
    assert bad["state"]["terminated"]["exitCode"] == 3 and bad["restartCount"] == 0
    assert bad["state"]["terminated"]["reason"] == "Error"
    assert retry["restartCount"] == 1 and retry["lastState"]["terminated"]["exitCode"] == 1
    await asyncio.sleep(BACKOFF * 1.5)  # nothing is restarted later either
    assert cstatus(rt, "ok")["restartCount"] == 0 and cstatus(rt, "bad")["restartCount"] == 0


async def test_init_containers_run_first(env: Env) -> None:
    rt = env.runtime()
    marker = env.tmp / "initialized"
    plan = pod("i1", container("app", "sh", "-c", f"cat {marker}; exec sleep 60"),
               init=(container("setup", "sh", "-c", f"echo from-init > {marker}"),))
    await rt.sync(plan, SANDBOX)
    await eventually(lambda: cond(rt, "i1", "Ready") == "True")
    st = rt.status("i1") or {}
    assert st["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert cond(rt, "i1", "Initialized") == "True"
    await eventually(lambda: _log_has(env, "i1", b"from-init"))
    assert await read_logs(rt, "i1") == [b"from-init\n"]


# -- graceful termination -------------------------------------------------------------------------

TRAP = ("import signal, sys, time\n"
        "def bye(*_):\n    time.sleep({delay})\n    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, {handler})\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")


async def test_kill_sigterm_lets_process_exit_within_grace(env: Env) -> None:
    rt = env.runtime()
    code = TRAP.format(delay=1, handler="bye")
    await rt.sync(pod("g1", container("app", sys.executable, "-c", code)), SANDBOX)
    await eventually(lambda: _log_has(env, "g1", b"ready"))
    pid = main_pid(env, "g1")
    started = time.monotonic()
    await rt.kill("g1", 10)
    took = time.monotonic() - started
    assert 0.9 <= took < 4, took
    assert proc_start_ticks(pid) is None
    term = cstatus(rt, "g1")["state"]["terminated"]
    assert term["exitCode"] == 0  # exited by itself, from its SIGTERM handler
    assert "g1" not in rt.running_pods()
    assert "Killing" in env.reasons("g1")
    # a killed pod is never started again
    await rt.sync(pod("g1", container("app", sys.executable, "-c", code)), SANDBOX)
    assert live_attempts(env, "g1") == []


async def test_kill_sigkills_after_grace_when_sigterm_is_ignored(env: Env) -> None:
    rt = env.runtime()
    code = TRAP.format(delay=0, handler="signal.SIG_IGN")
    await rt.sync(pod("g2", container("app", sys.executable, "-c", code)), SANDBOX)
    await eventually(lambda: _log_has(env, "g2", b"ready"))
    pid = main_pid(env, "g2")
    started = time.monotonic()
    await rt.kill("g2", 1)
    took = time.monotonic() - started
    assert 0.9 <= took < 4, took
    assert proc_start_ticks(pid) is None
    assert cstatus(rt, "g2")["state"]["terminated"]["exitCode"] == 137


def _log_has(env: Env, uid: str, text: bytes) -> bool:
    root = containers.pods_root(env.node.state_dir) / uid
    return any(text in p.read_bytes() for p in root.glob("*/*/container.log"))


# -- probes ---------------------------------------------------------------------------------------

async def test_failing_liveness_exec_probe_restarts_container(env: Env) -> None:
    rt = env.runtime()
    healthy = env.tmp / "healthy"
    healthy.touch()
    probes = {"app": ContainerProbes(liveness=ProbeSpec(
        action=ExecAction(("test", "-f", str(healthy))), period=0.2, failure_threshold=2,
        timeout=2))}
    plan = pod("l1", container("app", "sleep", "60"), grace=2)
    await rt.sync(plan, SANDBOX, probes=probes)
    await asyncio.sleep(0.6)
    assert cstatus(rt, "l1")["restartCount"] == 0  # passing probe: left alone
    healthy.unlink()
    await eventually(lambda: cstatus(rt, "l1").get("restartCount", 0) >= 1)
    healthy.touch()
    await eventually(lambda: "running" in cstatus(rt, "l1").get("state", {}))
    last = cstatus(rt, "l1")["lastState"]["terminated"]
    assert last["exitCode"] == 143  # stopped with SIGTERM by the runtime
    assert "Killing" in env.reasons("l1") and "Unhealthy" in env.reasons("l1")
    killing = [e.message for e in env.events if e.reason == "Killing"]
    assert "Container app failed liveness probe, will be restarted" in killing
    assert len(live_attempts(env, "l1")) == 1


HTTP_SERVER = """
import http.server, os, sys
flag = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if os.path.exists(flag) else 500)
        self.end_headers()
        self.wfile.write(self.headers.get("X-Probe", "").encode())
    def log_message(self, *a):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


async def test_readiness_http_probe_drops_ready_within_threshold(env: Env) -> None:
    rt = env.runtime()
    port, flag = free_port(), env.tmp / "ready"
    flag.touch()
    period, failures = 0.4, 2
    probes = {"app": ContainerProbes(readiness=ProbeSpec(
        action=HTTPGetAction(port=port, path="/healthz", headers=(("X-Probe", "1"),)),
        period=period, failure_threshold=failures))}
    plan = pod("r1", container("app", sys.executable, "-c", HTTP_SERVER, str(port), str(flag)))
    st = await rt.sync(plan, SANDBOX, probes=probes)
    assert st["containerStatuses"][0]["ready"] is False  # not ready until a probe passes
    await eventually(lambda: cond(rt, "r1", "Ready") == "True")
    assert cstatus(rt, "r1")["ready"] is True and cstatus(rt, "r1")["started"] is True

    flag.unlink()
    broke = time.monotonic()
    await eventually(lambda: cond(rt, "r1", "Ready") == "False")

    def ready_of(st: dict[str, Any]) -> str:
        return str(next(c["status"] for c in st["conditions"] if c["type"] == "Ready"))
    flip = next(t for t, uid, st in env.changes
                if uid == "r1" and t >= broke and ready_of(st) == "False")
    # failureThreshold x periodSeconds, plus the time the failing probes themselves take
    assert flip - broke <= failures * period + 0.3, flip - broke
    c = cstatus(rt, "r1")
    assert c["ready"] is False and "running" in c["state"] and c["restartCount"] == 0
    ready = next(x for x in (rt.status("r1") or {})["conditions"] if x["type"] == "Ready")
    assert ready["message"] == "containers with unready status: [app]"
    assert any(e.reason == "Unhealthy" and "statuscode: 500" in e.message for e in env.events)

    flag.touch()
    await eventually(lambda: cond(rt, "r1", "Ready") == "True")


async def test_http_probe_against_closed_port_fails_with_dial_error() -> None:
    from svcnet.node.probes import ExecContext, run_probe
    spec = ProbeSpec(action=HTTPGetAction(port=free_port()), timeout=1)
    outcome = await run_probe(spec, pod_ip="127.0.0.1", exec_ctx=ExecContext(0, ()))
    assert not outcome.success and "connection refused" in outcome.message


# -- logs -----------------------------------------------------------------------------------------

COUNTING = ('n=$(cat {f} 2>/dev/null || echo 0); echo "attempt-$n"; echo $((n+1)) > {f}; '
            "sleep 0.1; echo oops >&2; exec sleep 60")


async def test_logs_current_previous_tail_timestamps(env: Env) -> None:
    rt = env.runtime()
    counter = env.tmp / "count"
    await rt.sync(pod("g", container("app", "sh", "-c", COUNTING.format(f=counter))), SANDBOX)
    await eventually(lambda: _log_has(env, "g", b"oops"))
    with pytest.raises(LogsError, match="previous terminated container"):
        await read_logs(rt, "g", previous=True)
    os.kill(main_pid(env, "g"), signal.SIGKILL)
    await eventually(lambda: cstatus(rt, "g").get("restartCount") == 1)
    await eventually(lambda: len(list((containers.pods_root(env.node.state_dir) / "g")
                                      .glob("app/1/container.log"))) == 1
                     and b"oops" in next((containers.pods_root(env.node.state_dir) / "g")
                                         .glob("app/1/container.log")).read_bytes())
    assert await read_logs(rt, "g") == [b"attempt-1\n", b"oops\n"]
    assert await read_logs(rt, "g", previous=True) == [b"attempt-0\n", b"oops\n"]
    assert await read_logs(rt, "g", tail=1) == [b"oops\n"]
    assert await read_logs(rt, "g", tail=0) == []
    stamped = await read_logs(rt, "g", timestamps=True)
    assert all(re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z .*\n", x) for x in stamped)
    with pytest.raises(LogsError, match="not valid"):
        await read_logs(rt, "g", "nope")
    with pytest.raises(LogsError, match="not found"):
        await read_logs(rt, "unknown-pod")


async def test_logs_follow_streams_until_the_container_exits(env: Env) -> None:
    rt = env.runtime()
    script = "for i in 1 2 3; do echo line-$i; sleep 0.3; done"
    await rt.sync(pod("f", container("app", "sh", "-c", script), policy="Never"), SANDBOX)
    got: list[tuple[float, bytes]] = []
    t0 = time.monotonic()
    async with asyncio.timeout(8):
        async for line in rt.logs("f", "app", follow=True):
            got.append((time.monotonic() - t0, line))
    assert [line for _, line in got] == [b"line-1\n", b"line-2\n", b"line-3\n"]
    assert got[-1][0] - got[0][0] >= 0.4  # lines arrived as they were written


async def test_hostname_env_and_workdir(env: Env) -> None:
    rt = env.runtime()
    work = env.tmp / "work"
    work.mkdir()
    c = container("app", "sh", "-c", "hostname; echo $FOO; pwd",
                  env=(("FOO", "bar"), ("PATH", os.environ["PATH"])), workdir=str(work))
    await rt.sync(pod("h", c, policy="Never"), SANDBOX)
    await eventually(lambda: (rt.status("h") or {}).get("phase") == "Succeeded")
    lines = await read_logs(rt, "h")
    assert lines[1:] == [b"bar\n", f"{work}\n".encode()]
    if IS_ROOT:  # a UTS namespace needs CAP_SYS_ADMIN; without it the hostname is the node's
        assert lines[0] == b"pod-h\n"
        assert socket.gethostname() != "pod-h"


# -- re-adoption ----------------------------------------------------------------------------------

async def test_new_runtime_readopts_running_containers_without_duplicates(env: Env) -> None:
    rt1 = env.runtime()
    plan_a = pod("ra", container("app", "sleep", "60"))
    plan_b = pod("rb", container("app", "sleep", "60"))
    await rt1.sync(plan_a, SANDBOX)
    await rt1.sync(plan_b, SANDBOX)
    pid_a, pid_b = main_pid(env, "ra"), main_pid(env, "rb")
    cid = cstatus(rt1, "ra")["containerID"]
    await rt1.close()
    assert proc_start_ticks(pid_a) is not None  # containers outlive the runtime
    os.kill(pid_b, signal.SIGKILL)  # ... and one exits while no runtime watches
    root = containers.pods_root(env.node.state_dir)
    # wait for the shim to record the exit (not only for the process to be gone)
    await eventually(lambda: not any(a.running for a in _all_attempts(root, "rb")))

    rt2 = env.runtime()
    await rt2.start()
    assert rt2.running_pods() == {"ra", "rb"}
    st = await rt2.sync(plan_a, SANDBOX)
    assert st["containerStatuses"][0]["containerID"] == cid
    assert st["containerStatuses"][0]["restartCount"] == 0
    assert [a.pid for a in live_attempts(env, "ra")] == [pid_a]
    st_b = await rt2.sync(plan_b, SANDBOX)
    assert st_b["containerStatuses"][0]["restartCount"] == 1  # the exit was noticed
    assert len(live_attempts(env, "rb")) == 1
    # the adopted container is still supervised: a kill is noticed and restarted
    os.kill(pid_a, signal.SIGKILL)
    await eventually(lambda: cstatus(rt2, "ra").get("restartCount") == 1
                     and "running" in cstatus(rt2, "ra")["state"])
    await rt2.kill("ra", 2)
    await rt2.kill("rb", 2)
    assert live_attempts(env, "ra") == [] and live_attempts(env, "rb") == []
    await rt2.close()
    rt3 = env.runtime()
    await rt3.start()
    assert rt3.running_pods() == set()  # killed pods are not resurrected (state pruned)


# -- bad input ------------------------------------------------------------------------------------

async def test_bad_command_is_create_container_error_and_others_keep_running(env: Env) -> None:
    rt = env.runtime()
    await rt.sync(pod("good", container("app", "sleep", "60")), SANDBOX)
    good_pid = main_pid(env, "good")
    st = await rt.sync(pod("bad", container("app", "no-such-binary-xyz")), SANDBOX)
    c = st["containerStatuses"][0]
    assert c["state"] == {"waiting": {
        "reason": "CreateContainerError",
        "message": 'exec: "no-such-binary-xyz": executable file not found in $PATH'}}
    assert c["restartCount"] == 0 and "containerID" not in c
    assert st["phase"] == "Pending"
    st = await rt.sync(pod("nowd", container("app", "sleep", "1", workdir="/no/such/dir")),
                       SANDBOX)
    assert st["containerStatuses"][0]["state"]["waiting"]["message"] == \
        'chdir to cwd ("/no/such/dir") set in config.json failed: no such file or directory'
    st = await rt.sync(pod("img", ContainerPlan(
        name="app", argv=(), env=(), image="nosuch", waiting_reason="ErrImagePull",
        waiting_message='image "nosuch" is unknown and has no command')), SANDBOX)
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    # creation is retried with back-off (1 s, then 2 s) ...
    await eventually(lambda: env.reasons("bad").count("Failed") >= 2, timeout=5)
    assert "Failed" in env.reasons("img")
    # ... while the good pod was never disturbed
    assert proc_start_ticks(good_pid) is not None
    assert cstatus(rt, "good")["restartCount"] == 0 and cond(rt, "good", "Ready") == "True"
    assert live_attempts(env, "img") == []
    await rt.forget("bad")
    assert not (containers.pods_root(env.node.state_dir) / "bad").exists()
    assert "bad" not in rt.running_pods()


async def test_long_lines_are_split_in_the_file_and_joined_by_logs(env: Env) -> None:
    rt = env.runtime()
    script = "import sys; sys.stdout.write('x' * 40000 + '\\nshort\\n' + 'tail-without-newline')"
    await rt.sync(pod("ll", container("app", sys.executable, "-c", script), policy="Never"),
                  SANDBOX)
    await eventually(lambda: (rt.status("ll") or {}).get("phase") == "Succeeded")
    assert await read_logs(rt, "ll") == [b"x" * 40000 + b"\n", b"short\n",
                                         b"tail-without-newline\n"]
    raw = next((containers.pods_root(env.node.state_dir) / "ll").glob("app/0/container.log"))
    tags = [line.split(b" ", 3)[2] for line in raw.read_bytes().splitlines()]
    assert tags == [b"P", b"P", b"F", b"F", b"F"]  # 16 KiB parts, as the kubelet writes


async def test_container_outliving_a_killed_shim_is_still_supervised(env: Env) -> None:
    # The container's parent dies with its shim; make this process the reaper of such
    # orphans for the duration of the test so none is left as a zombie.
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    try:
        rt = env.runtime()
        await rt.sync(pod("orph", container("app", "sleep", "60")), SANDBOX)
        (attempt,) = live_attempts(env, "orph")
        os.kill(attempt.shim_pid, signal.SIGKILL)
        os.waitpid(attempt.shim_pid, 0)
        await rt.sync(pod("orph", container("app", "sleep", "60")), SANDBOX)
        assert "running" in cstatus(rt, "orph")["state"]  # the process itself still runs
        assert cstatus(rt, "orph")["restartCount"] == 0
        os.kill(attempt.pid, signal.SIGKILL)
        await eventually(lambda: cstatus(rt, "orph").get("restartCount") == 1
                         and "running" in cstatus(rt, "orph")["state"])
        last = cstatus(rt, "orph")["lastState"]["terminated"]
        assert (last["reason"], last["exitCode"]) == ("ContainerStatusUnknown", 137)
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        try:
            os.waitpid(attempt.pid, 0)
        except (ChildProcessError, UnboundLocalError):
            pass


async def test_a_launch_cancelled_before_the_shim_reports_returns_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent stopping mid-launch must not wait for a shim that has not reported yet
    (closing the pipe under a blocked reader used to freeze the event loop)."""
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 20\n")
    silent.chmod(0o755)
    monkeypatch.setattr(containers.sys, "executable", str(silent))
    shims = containers.Shims()
    launch = asyncio.create_task(shims.launch(
        tmp_path / "attempt", 0, containers.LaunchSpec(("true",), 0, (), "/", "h")))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    launch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await launch
    assert time.monotonic() - started < 1.0
    for proc in shims._children.values():
        proc.kill()
        proc.wait()
