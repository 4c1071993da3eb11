"""The container edge: state directories, shim launching, inspection, signals, exit waits.

On-disk layout (under `<NodeConfig.state_dir>/containers`, so it survives the agent):

    <pod uid>/pod.json                       pod facts the runtime keeps (startTime, killed,
                                             last reported status)
    <pod uid>/<container>/<attempt>/         one directory per attempt (0 = first start;
        spec.json                            the attempt number is the restartCount)
        state.json                           written only by the shim (see shim.py)
        container.log                        CRI-format log
        shim.log                             the shim's own stderr

Everything the runtime knows about a container is `Attempt` snapshots read from
`state.json`; nothing is kept only in memory, which is what makes re-adoption after an agent
restart the same code path as normal operation. Process identity is always (pid, start
ticks), never a bare pid, so a recycled pid is never signalled.

The shims are children of the agent while it lives (so the agent reaps them: `Shims.reap`),
each in its own session so they outlive it; after an agent restart they are orphans, and
the new agent waits for them through pidfds, which work for any process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.node import fdwait
from svcnet.node import shim as shim_mod
from svcnet.node.shim import proc_start_ticks

POD_FILE = "pod.json"
LAUNCH_TIMEOUT = 30.0


def pods_root(state_dir: Path) -> Path:
    """Where the runtime keeps per-pod container state."""
    return state_dir / "containers"


@dataclass(frozen=True)
class LaunchSpec:
    """What a shim needs: the full argv (sandbox prefix + container argv), where the
    container's own argv starts in it, env, working directory, hostname, and the
    container's stdin/stdinOnce/tty settings (for `kubectl attach`)."""

    argv: tuple[str, ...]
    exec_index: int
    env: tuple[tuple[str, str], ...]
    workdir: str
    hostname: str
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False


@dataclass(frozen=True)
class Attempt:
    """A snapshot of one attempt's `state.json` (see shim.py for who writes what).

    `error` set: the container was never started (`error_reason` is CreateContainerError or
    RunContainerError). `lost`: the shim died before its container, so the exit status is
    unknown (reported as the kubelet's ContainerStatusUnknown)."""

    path: Path
    attempt: int
    shim_pid: int = 0
    shim_start: int | None = None
    pid: int = 0
    pid_start: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int = 0
    error: str = ""
    error_reason: str = ""
    lost: bool = False
    warning: str = ""

    @property
    def running(self) -> bool:
        """Started and not (yet known to be) finished."""
        return self.started_at is not None and self.finished_at is None and not self.error

    @property
    def log_path(self) -> Path:
        """The attempt's CRI log file."""
        return self.path / shim_mod.LOG_FILE


def attempt_dir(root: Path, pod_uid: str, container: str, attempt: int) -> Path:
    """Directory of one attempt."""
    return root / pod_uid / container / str(attempt)


def list_pod_uids(root: Path) -> list[str]:
    """Pod uids with state under `root`."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def list_containers(root: Path, pod_uid: str) -> list[str]:
    """Container names with state for a pod."""
    base = root / pod_uid
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def list_attempts(root: Path, pod_uid: str, container: str) -> list[int]:
    """Attempt numbers of a container, ascending."""
    base = root / pod_uid / container
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def read_attempt(path: Path, attempt: int) -> Attempt | None:
    """The attempt recorded in `path`, or None when its shim has not written anything."""
    try:
        data: dict[str, Any] = json.loads((path / shim_mod.STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return Attempt(
        path=path, attempt=attempt,
        shim_pid=int(data.get("shimPid") or 0), shim_start=data.get("shimStart"),
        pid=int(data.get("pid") or 0), pid_start=data.get("pidStart"),
        started_at=data.get("startedAt"), finished_at=data.get("finishedAt"),
        exit_code=data.get("exitCode"), signal=int(data.get("signal") or 0),
        error=str(data.get("error") or ""), error_reason=str(data.get("reason") or ""),
        lost=bool(data.get("lost")), warning=str(data.get("warning") or ""),
    )


def latest_attempts(root: Path, pod_uid: str,
                    container: str) -> tuple[Attempt | None, Attempt | None]:
    """The current and previous attempts of a container as recorded on disk.

    An attempt directory without a recorded start (a launch interrupted by an agent crash)
    or with a start error is not a container that ever ran: it is removed, so it neither
    counts as a restart nor shadows the real previous attempt."""
    found: list[Attempt] = []
    for n in reversed(list_attempts(root, pod_uid, container)):
        path = attempt_dir(root, pod_uid, container, n)
        record = read_attempt(path, n)
        if record is None or record.error:
            shutil.rmtree(path, ignore_errors=True)
            continue
        found.append(record)
        if len(found) == 2:
            break
    return (found[0] if found else None), (found[1] if len(found) > 1 else None)


def read_pod_meta(root: Path, pod_uid: str) -> dict[str, Any]:
    """The runtime's facts about a pod ({} when none)."""
    try:
        data = json.loads((root / pod_uid / POD_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_pod_meta(root: Path, pod_uid: str, meta: dict[str, Any]) -> None:
    """Replace the runtime's facts about a pod atomically."""
    (root / pod_uid).mkdir(parents=True, exist_ok=True)
    shim_mod.write_json_atomic(root / pod_uid / POD_FILE, meta)


def remove_pod_state(root: Path, pod_uid: str) -> None:
    """Delete everything kept for a pod (its logs included)."""
    shutil.rmtree(root / pod_uid, ignore_errors=True)


def shim_alive(a: Attempt) -> bool:
    """The attempt's shim process still exists (same pid AND same start time)."""
    return bool(a.shim_pid) and a.shim_start is not None \
        and proc_start_ticks(a.shim_pid) == a.shim_start


def container_alive(a: Attempt) -> bool:
    """The attempt's main process still exists (same pid AND same start time)."""
    return bool(a.pid) and a.pid_start is not None and proc_start_ticks(a.pid) == a.pid_start


class Shims:
    """Starts shims and watches, signals and reaps them. One per runtime."""

    def __init__(self) -> None:
        # Shims this process started: it is their parent and must reap them.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def reap(self) -> None:
        """Collect exited shims that are our children (no zombies while the agent runs)."""
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    async def launch(self, path: Path, attempt: int, spec: LaunchSpec) -> Attempt:
        """Start one attempt in `path` and return once the container runs or failed to start
        (the Attempt then carries `error`). Raises OSError only if the shim itself cannot
        run; a shim that dies before reporting gives an Attempt with a RunContainerError."""
        if path.exists():
            shutil.rmtree(path)  # leftovers of a start that never reported
        path.mkdir(parents=True)
        shim_mod.write_json_atomic(path / shim_mod.SPEC_FILE, {
            "env": [list(kv) for kv in spec.env], "workdir": spec.workdir,
            "hostname": spec.hostname, "execIndex": spec.exec_index, "stdin": spec.stdin,
            "stdinOnce": spec.stdin_once, "tty": spec.tty})
        with open(path / shim_mod.SHIM_LOG_FILE, "ab") as shim_log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "svcnet.node.shim", "--state", str(path), "--",
                 *spec.argv],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=shim_log,
                cwd="/", start_new_session=True)
        self._children[proc.pid] = proc
        assert proc.stdout is not None
        stdout = proc.stdout
        # The shim writes state.json, then one line, then closes the pipe: the pipe becoming
        # readable (data or EOF) means the outcome is on disk. Waited for on the event loop,
        # not by a blocking readline in a thread: closing a pipe another thread is reading
        # blocks until that read returns, which froze a cancelled launch (agent stopping).
        try:
            if not await fdwait.readable(stdout.fileno(), LAUNCH_TIMEOUT):
                os.killpg(proc.pid, signal.SIGKILL)
        finally:
            stdout.close()
        record = read_attempt(path, attempt)
        if record is None:
            tail = (path / shim_mod.SHIM_LOG_FILE).read_text(errors="replace")[-2000:]
            record = Attempt(path=path, attempt=attempt, error_reason="RunContainerError",
                             error=f"container shim failed: {tail.strip() or 'no output'}")
        self.reap()
        return record

    def refresh(self, a: Attempt, now: float) -> Attempt:
        """The latest snapshot of `a`. If the shim vanished without recording an exit (it
        was killed), and the container is gone too, records the attempt as lost at `now`;
        while the orphaned container still runs, it stays running."""
        fresh = read_attempt(a.path, a.attempt) or a
        if not fresh.running or shim_alive(fresh):
            return fresh
        # The shim writes state.json before it exits, so read once more after seeing it gone.
        fresh = read_attempt(a.path, a.attempt) or fresh
        if not fresh.running or container_alive(fresh):
            return fresh
        data = json.loads((a.path / shim_mod.STATE_FILE).read_text())
        data.update(finishedAt=now, exitCode=137, lost=True)
        shim_mod.write_json_atomic(a.path / shim_mod.STATE_FILE, data)
        return read_attempt(a.path, a.attempt) or fresh

    def terminate(self, a: Attempt, sig: int = signal.SIGTERM) -> None:
        """Ask the container to stop: through its shim (which forwards to the container's
        process group), or straight to the group when the shim is gone."""
        try:
            if shim_alive(a):
                os.kill(a.shim_pid, sig)
            elif container_alive(a):
                os.killpg(a.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self, a: Attempt) -> None:
        """SIGKILL the container's process group (the shim stays to record the exit)."""
        if container_alive(a):
            try:
                os.killpg(a.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait_exit(self, a: Attempt, timeout: float | None = None) -> bool:
        """Wait until the attempt is over: its shim has exited (and so has written the exit
        status), or, for an orphaned container, the container has exited. True when over,
        False on timeout. Uses a pidfd, which works for processes that are not our
        children and cannot be fooled by pid reuse once opened."""
        if shim_alive(a):
            pid, start = a.shim_pid, a.shim_start
        elif container_alive(a):
            pid, start = a.pid, a.pid_start
        else:
            self.reap()
            return True
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            if proc_start_ticks(pid) != start:
                return True  # exited (and maybe reused) between the check and the open
            return await fdwait.readable(fd, timeout)  # a pidfd reads ready at exit
        finally:
            os.close(fd)
            self.reap()
