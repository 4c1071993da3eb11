"""The per-container shim: `python -m svcnet.node.shim --state DIR -- ARGV...`.

One shim runs per container attempt, like containerd-shim. The runtime starts it in a new
session, so the container outlives the agent (an agent restart re-adopts it from DIR), and
the shim is the only process that waits for the container and so the only one that can
learn its exit status. Its contract, in order:

1. Read `DIR/spec.json` ({"env": [[k, v]...], "workdir", "hostname", "execIndex", "stdin",
   "stdinOnce", "tty"}; env is passed in a file rather than argv so Secrets do not show up
   in `ps`).
2. Become a child subreaper, so daemons the container leaves behind are reparented to the
   shim (as they would be to PID 1 of a container) and are reaped and killed with it.
3. Move into a fresh UTS namespace and set the pod's hostname (if the kernel refuses, e.g.
   without CAP_SYS_ADMIN, carry on and record a warning: the hostname is cosmetic).
4. Check what runc would refuse (missing working directory, executable not found in the
   container's PATH) BEFORE starting anything: the netns prefix (`ip netns exec`) would
   otherwise hide those errors behind a generic exit code. A failure is written to
   `state.json` as {"error", "reason": "CreateContainerError"} and reported.
5. Start ARGV (netns prefix + container argv) in its own session and process group:
   with `tty`, on a new pty (its controlling terminal; stdin, stdout and stderr all on the
   pty, 80x24 until a client resizes it); otherwise stdin is a pipe when `stdin` is set
   (else /dev/null) and stdout/stderr are pipes. Write {"pid", "pidStart", "startedAt",
   ...} to `state.json` and report that JSON as one line on the shim's stdout, then close
   stdout.
6. Copy the container's output into `DIR/container.log` in the kubelet's CRI format
   (`<RFC3339Nano> <stdout|stderr> <F|P> <content>`, lines over 16 KiB split into P parts),
   and to the clients attached through `DIR/attach.sock` (shimattach.py), which also feed
   the container's stdin and resize its pty.
7. Forward SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the container's process
   group. (SIGKILL cannot be caught: the runtime sends it to the group directly.)
8. When the main process exits, SIGKILL the rest of its process group (a container's
   processes die with its init), drain the pipes, and write exitCode / signal /
   finishedAt to `state.json` atomically; then exit.

This module imports only the standard library and nothing heavy, because it starts once per
container start and its start-up time is part of every (re)start.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import pty
import selectors
import signal
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any, Callable

from svcnet.node import shimwire
from svcnet.node.shimattach import AttachHub, set_winsize

SPEC_FILE = "spec.json"
STATE_FILE = "state.json"
LOG_FILE = "container.log"
SHIM_LOG_FILE = "shim.log"
MAX_LINE = 16 * 1024  # the kubelet's (containerd's) split size for long lines
DRAIN_SECONDS = 2.0  # how long output of escaped processes may hold the pipes open
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
_CLONE_NEWUTS = 0x04000000
_PR_SET_CHILD_SUBREAPER = 36


def proc_start_ticks(pid: int) -> int | None:
    """Start time of `pid` (clock ticks since boot, field 22 of /proc/PID/stat), or None if
    there is no such live process (zombies count as gone). Comparing it with a recorded
    value tells a live process from a new one that reuses its pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the LAST ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def cri_timestamp(ns: int) -> str:
    """RFC 3339 with nine fractional digits, as CRI log lines carry."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def precheck(argv: list[str], exec_index: int, env: dict[str, str], workdir: str) -> str:
    """The start error runc would report for this container, or "" if it can start."""
    if exec_index >= len(argv) or not argv[exec_index]:
        return "no command specified"
    if workdir and not os.path.isdir(workdir):
        return f'chdir to cwd ("{workdir}") set in config.json failed: no such file or directory'
    cmd = argv[exec_index]
    if "/" in cmd:
        path = os.path.join(workdir or "/", cmd)
        if not os.path.exists(path):
            return f'exec: "{cmd}": stat {cmd}: no such file or directory'
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return f'exec: "{cmd}": permission denied'
        return ""
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", cmd)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return ""
    return f'exec: "{cmd}": executable file not found in $PATH'


class _Stream:
    """Turns one pipe's bytes into CRI log lines."""

    def __init__(self, name: str, log_fd: int) -> None:
        self.name = name
        self.log_fd = log_fd
        self.buf = bytearray()

    def _emit(self, tag: str, content: bytes) -> None:
        head = f"{cri_timestamp(time.time_ns())} {self.name} {tag} ".encode()
        os.write(self.log_fd, head + content + b"\n")

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            nl = self.buf.find(b"\n", 0, MAX_LINE + 1)
            if nl >= 0:  # a full line (or the last part of a long one)
                self._emit("F", bytes(self.buf[:nl]))
                del self.buf[:nl + 1]
            elif len(self.buf) > MAX_LINE:  # no newline within the limit: a part
                self._emit("P", bytes(self.buf[:MAX_LINE]))
                del self.buf[:MAX_LINE]
            else:
                break

    def close(self) -> None:
        if self.buf:  # a last line without newline is still a full line
            self._emit("F", bytes(self.buf))
            self.buf.clear()


class Shim:
    """One container attempt, from start to recorded exit (see the module docstring)."""

    def __init__(self, state_dir: Path, spec: dict[str, Any], argv: list[str]) -> None:
        self.dir = state_dir
        self.spec = spec
        self.argv = argv
        self.pid = 0
        self.main_status: int | None = None
        self.pending: list[int] = []
        self.state: dict[str, Any] = {"shimPid": os.getpid(),
                                      "shimStart": proc_start_ticks(os.getpid())}

    # -- signals ---------------------------------------------------------------------------
    def _forward(self, signum: int, _frame: object) -> None:
        if self.main_status is not None:
            return  # the group may be gone and its number reused
        if not self.pid:
            self.pending.append(signum)
            return
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _install_signals(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        # A Python-level handler is needed for SIGCHLD to reach the wakeup fd at all.
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, self._forward)
        return wake_r

    # -- start -----------------------------------------------------------------------------
    def _report(self) -> None:
        """Tell the launcher the outcome (one JSON line) and stop holding its pipe."""
        try:
            os.write(1, (json.dumps(self.state) + "\n").encode())
        except OSError:
            pass  # the launcher went away; state.json has it all
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def _fail(self, reason: str, message: str) -> int:
        self.state.update(error=message, reason=reason, finishedAt=time.time())
        write_json_atomic(self.dir / STATE_FILE, self.state)
        self._report()
        return 1

    def _namespaces(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        # Orphans of the container come to us, not to the machine's init.
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        hostname = str(self.spec.get("hostname") or "")
        if not hostname:
            return
        if libc.unshare(_CLONE_NEWUTS) != 0:
            err = ctypes.get_errno()
            self.state["warning"] = f"hostname not set: unshare(CLONE_NEWUTS): {os.strerror(err)}"
            return
        try:
            socket.sethostname(hostname)
        except OSError as exc:
            self.state["warning"] = f"hostname not set: {exc.strerror}"

    def run(self) -> int:
        """Run the attempt; the exit status of the shim is 0 when the container started."""
        env = {str(k): str(v) for k, v in self.spec.get("env") or []}
        env.setdefault("PATH", DEFAULT_PATH)
        if self.spec.get("hostname"):
            env.setdefault("HOSTNAME", str(self.spec["hostname"]))
        workdir = str(self.spec.get("workdir") or "")
        exec_index = int(self.spec.get("execIndex") or 0)
        self._namespaces()
        wake_r = self._install_signals()
        error = precheck(self.argv, exec_index, env, workdir)
        if error:
            return self._fail("CreateContainerError", error)
        log_fd = os.open(self.dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        sel = selectors.DefaultSelector()
        listener = self._listen()
        tty, with_stdin = bool(self.spec.get("tty")), bool(self.spec.get("stdin"))
        if tty:
            env.setdefault("TERM", "xterm")  # as containerd sets it for a TTY process
        try:
            proc, outputs, stdin_fd, tty_fd = self._spawn(env, workdir, tty, with_stdin)
        except OSError as exc:
            if listener is not None:
                listener.close()
            return self._fail("RunContainerError", f"{exc.strerror or exc}: {exc.filename}")
        self.pid = proc.pid
        self.state.update(pid=proc.pid, pidStart=proc_start_ticks(proc.pid),
                          startedAt=time.time())
        write_json_atomic(self.dir / STATE_FILE, self.state)
        self._report()
        for sig in self.pending:
            self._forward(sig, None)
        hub = AttachHub(sel, listener, stdin_fd, tty_fd, bool(self.spec.get("stdinOnce"))) \
            if listener is not None else None
        self._relay(sel, wake_r, {fd: (_Stream(name, log_fd), channel)
                                  for fd, (name, channel) in outputs.items()}, hub)
        if hub is not None:
            hub.close()
            (self.dir / shimwire.SOCKET_NAME).unlink(missing_ok=True)
        proc.returncode = self.main_status  # reaped by us; keep Popen from waiting again
        status = self.main_status or 0
        code = os.waitstatus_to_exitcode(status)
        self.state.setdefault("finishedAt", time.time())
        # A signal death is reported as 128 + signal number, as shells and runc do.
        self.state.update(exitCode=code if code >= 0 else 128 - code,
                          signal=-code if code < 0 else 0)
        write_json_atomic(self.dir / STATE_FILE, self.state)
        return 0

    def _listen(self) -> socket.socket | None:
        """The attach socket, bound by a relative name from inside the state directory (an
        absolute path could exceed the 107-byte limit of unix socket addresses). Without
        it the container still runs; only attaching is impossible (recorded as a warning)."""
        (self.dir / shimwire.SOCKET_NAME).unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cwd = os.getcwd()
        try:
            os.chdir(self.dir)
            sock.bind(shimwire.SOCKET_NAME)
            os.chmod(shimwire.SOCKET_NAME, 0o600)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            self.state["warning"] = f"attach unavailable: {exc}"
            return None
        finally:
            os.chdir(cwd)
        return sock

    def _spawn(self, env: dict[str, str], workdir: str, tty: bool, with_stdin: bool,
               ) -> tuple["subprocess.Popen[bytes]", dict[int, tuple[str, int]], int | None,
                          int | None]:
        """Start the container. Returns the process, its output fds ({fd: (log stream name,
        attach channel)}), the write end of its stdin (None: /dev/null) and the pty master
        (None: no TTY)."""
        if tty:
            master, slave = pty.openpty()
            set_winsize(master, 80, 24)
            try:
                proc = subprocess.Popen(self.argv, env=env, cwd=workdir or "/", stdin=slave,
                                        stdout=slave, stderr=slave, start_new_session=True,
                                        preexec_fn=_controlling_terminal)
            except OSError:
                os.close(master)
                raise
            finally:
                os.close(slave)  # only the container holds the slave: EIO marks its end
            return proc, {master: ("stdout", shimwire.STDOUT)}, \
                (os.dup(master) if with_stdin else None), master
        proc = subprocess.Popen(self.argv, env=env, cwd=workdir or "/",
                                stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        stdin_fd = None
        if proc.stdin is not None:
            stdin_fd = os.dup(proc.stdin.fileno())
            proc.stdin.close()
        assert proc.stdout is not None and proc.stderr is not None
        return proc, {proc.stdout.fileno(): ("stdout", shimwire.STDOUT),
                      proc.stderr.fileno(): ("stderr", shimwire.STDERR)}, stdin_fd, None

    # -- run -------------------------------------------------------------------------------
    def _reap(self) -> None:
        """Reap exited children. The main process is first only PEEKED at (WNOWAIT) so its
        pid, which is also the process group id, stays taken while the group is killed."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            if info.si_pid == self.pid and self.main_status is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                _, self.main_status = os.waitpid(self.pid, 0)
                self.state["finishedAt"] = time.time()
            else:
                try:
                    os.waitpid(info.si_pid, 0)
                except ChildProcessError:
                    pass

    def _relay(self, sel: selectors.BaseSelector, wake_r: int,
               outputs: dict[int, tuple[_Stream, int]], hub: AttachHub | None) -> None:
        """Copy output to the log and attached clients until the main process has exited
        and its output is drained (or DRAIN_SECONDS passed). Selector keys whose data is a
        callable belong to the attach hub; the rest are the wake-up pipe and the outputs."""
        sel.register(wake_r, selectors.EVENT_READ)
        for fd in outputs:
            sel.register(fd, selectors.EVENT_READ)
        deadline: float | None = None
        self._reap()
        while True:
            if self.main_status is not None:
                if deadline is None:
                    deadline = time.monotonic() + DRAIN_SECONDS
                if not outputs or time.monotonic() >= deadline:
                    break
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            for key, mask in sel.select(timeout):
                if callable(key.data):
                    callback: Callable[[int], None] = key.data
                    callback(mask)
                    continue
                fd = int(key.fd)
                if fd == wake_r:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if fd not in outputs:
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every holder of the pty's slave side is gone
                    data = b""
                stream, channel = outputs[fd]
                if data:
                    stream.feed(data)
                    if hub is not None:
                        hub.broadcast(channel, data)
                else:
                    sel.unregister(fd)
                    outputs.pop(fd)
                    stream.close()
            self._reap()
        for stream, _ in outputs.values():
            stream.close()


def _controlling_terminal() -> None:
    """In the container's new session: make the pty on stdin its controlling terminal, so
    ^C and job control reach the container's foreground process group. (Runs between
    fork and exec; the shim is single-threaded, so that is safe.)"""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point: `--state DIR -- ARGV...`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "--state" or args[2] != "--":
        print("usage: python -m svcnet.node.shim --state DIR -- ARGV...", file=sys.stderr)
        return 2
    state_dir = Path(args[1])
    spec = json.loads((state_dir / SPEC_FILE).read_text())
    return Shim(state_dir, spec, args[3:]).run()


if __name__ == "__main__":
    sys.exit(main())
