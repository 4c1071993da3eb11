"""The processes of a local cluster: identity, start, lookup by namespace, stop.

A process `up` starts is recorded as pid + start time (field 22 of /proc/<pid>/stat), so a
pid reused after a reboot or a crash is never taken for ours. `down` finds processes two
more ways, because pods and shims are started by agents, not by `up`: by network
namespace (/proc/<pid>/ns/net against /run/netns/<name>, which finds every process inside
the cluster's node and pod namespaces whoever started it), and by command line (svcnet
processes naming a path under the data dir, for helpers that stay in the root namespace).
Stopping is SIGTERM, a grace period, then SIGKILL, rescanning so late-born processes go
too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from svcnet.cluster import network
from svcnet.cluster.plan import ProcessSpec

STOP_GRACE = 10.0
LOG_TAIL = 12

Say = Callable[[str], None]


def proc_start(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class ProcRecord:
    """A process `up` started: pid plus its start time in clock ticks since boot (field 22
    of /proc/<pid>/stat), which together identify it even if the pid is reused."""

    name: str
    pid: int
    start: int
    log: str
    netns: str = ""

    def alive(self) -> bool:
        return proc_start(self.pid) == self.start

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "start": self.start, "log": self.log,
                "netns": self.netns}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ProcRecord":
        return cls(str(d["name"]), int(d["pid"]), int(d["start"]), str(d.get("log", "")),
                   str(d.get("netns", "")))


def _netns_ids(names: list[str]) -> set[tuple[int, int]]:
    ids: set[tuple[int, int]] = set()
    for name in names:
        try:
            st = os.stat(network.NETNS_DIR / name)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def processes_in(namespaces: list[str]) -> list[int]:
    """Pids of live processes whose network namespace is one of `namespaces`."""
    ids = _netns_ids(namespaces)
    if not ids:
        return []
    me = os.getpid()
    out: list[int] = []
    for pid in _all_pids():
        if pid == me:
            continue
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in ids and proc_start(pid) is not None:
            out.append(pid)
    return out


def _ancestors() -> set[int]:
    out: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            pid = int(stat[stat.rfind(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def svcnet_processes_of(data_dir: Path) -> list[int]:
    """Pids of svcnet processes (a `-m svcnet...` module or the `svcnet` script) whose
    command line names a path under `data_dir`: children of agents that live in the root
    namespace (a shim, say) but work for this cluster. This process and its ancestors
    (e.g. the `svcnet down` running now) are never included."""
    root = str(data_dir)
    skip = _ancestors()
    out: list[int] = []
    for pid in _all_pids():
        if pid in skip:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        is_svcnet = any(a.startswith("svcnet.") for a in argv) or \
            any(os.path.basename(a) == "svcnet" for a in argv[:2])
        if is_svcnet and any(a == root or a.startswith(root + "/") for a in argv):
            out.append(pid)
    return out


def _signal(pid: int, sig: int, *, group: bool) -> None:
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_processes(records: list[ProcRecord], namespaces: list[str], data_dir: Path, *,
                   exclude: AbstractSet[int] = frozenset(),
                   grace: float = STOP_GRACE, say: Say = lambda s: None) -> list[str]:
    """SIGTERM the recorded processes (their whole process group: each was started as a
    session leader), every process inside `namespaces` and, when `namespaces` is given,
    svcnet processes working on `data_dir` (all but the pids in `exclude`); after
    `grace` seconds SIGKILL whatever is left, rescanning so late-born processes go too.
    Returns what was signalled."""
    live = [r for r in records if r.alive()]
    names = [f"{r.name} (pid {r.pid})" for r in live]
    # never this process or its parents (a shell someone opened inside a node namespace
    # to run `svcnet down` from): its namespace goes once they exit
    spare = set(exclude) | _ancestors()

    def targets() -> set[int]:
        pids = {r.pid for r in live if r.alive()} | set(processes_in(namespaces))
        if namespaces:
            pids |= set(svcnet_processes_of(data_dir))
        return pids - spare

    first = targets()
    if not first:
        return names
    say(f"stopping {', '.join(names) or f'{len(first)} process(es)'}")
    for r in live:
        _signal(r.pid, signal.SIGTERM, group=True)
    for pid in first:
        _signal(pid, signal.SIGTERM, group=False)
    end = time.monotonic() + grace
    while targets() and time.monotonic() < end:
        time.sleep(0.1)
    for _ in range(5):
        rest = targets()
        if not rest:
            break
        for r in live:
            if r.alive():
                _signal(r.pid, signal.SIGKILL, group=True)
        for pid in rest:
            _signal(pid, signal.SIGKILL, group=False)
        end = time.monotonic() + 2.0
        while targets() and time.monotonic() < end:
            time.sleep(0.05)
    extra = first - {r.pid for r in live}
    return names + [f"pid {p}" for p in sorted(extra)]


def spawn(spec: ProcessSpec) -> tuple[ProcRecord, subprocess.Popen[bytes]]:
    """Start `spec` in a new session, output appended to its log file."""
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(spec.log_file, "ab") as log:
        log.write(f"--- svcnet up: starting {spec.name} at "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(spec.argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd="/",
                                env=env, close_fds=True)
    start = proc_start(proc.pid)
    if start is None:  # exited at once; keep a record that can never match a live pid
        start = -1
    return ProcRecord(spec.name, proc.pid, start, str(spec.log_file), spec.netns), proc


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def tail(path: Path | str, lines: int = LOG_TAIL) -> str:
    """The last `lines` lines of a log file ("" if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
