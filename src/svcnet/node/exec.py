"""`kubectl exec` on the agent: run a command inside a running container and stream it
over the channel protocol (api/remotecommand.py).

Where the command runs: `nsenter --target <container pid> --net --mount --uts` enters
exactly the namespaces of the container's main process, so the command sees the Pod's
network, the mount namespace holding the Pod's /etc/resolv.conf and /etc/hosts, and the
Pod's hostname (the shim gives each container its own UTS namespace). It gets the
container's environment and working directory, and its argv is resolved through the image
catalog like the container's own command (`tar` in a busybox container is busybox's tar).

How: stdin, stdout and stderr are pipes the agent owns (or, with a TTY, one pty whose
slave side is the command's controlling terminal: `setsid --ctty` makes the command a
session leader on it, and resize messages set its window size). The client closing stdin
(v5) closes the pipe; on a pty, which cannot be half-closed, it types ^D. The command runs in its
own process group, which is SIGKILLed when the client goes away, and also once the command
has exited and its output is drained (so nothing it started in the background outlives
the session and escapes the Pod's supervision). Exit status goes back on the error channel
as the kubelet reports it (Success, or NonZeroExitCode with the code; a signal death is
128 + signal). A command that cannot start (not found in the container's PATH) prints the
reason on stderr and exits 126, as with containerd.

Every fd is the session's own and is closed when it ends: a hundred sessions leave the
agent's fd table and process list as they were.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import pty
import shutil
import signal
from dataclasses import dataclass
from typing import Any, Sequence

from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc
from svcnet.node import fdwait
from svcnet.node.images import ImageCatalog
from svcnet.node.shim import DEFAULT_PATH, precheck
from svcnet.node.shimattach import set_winsize
from svcnet.node.types import ContainerTarget

log = logging.getLogger("svcnet.agent.exec")

DRAIN_SECONDS = 2.0
# kubectl sends the terminal size as soon as a TTY session opens, from its own goroutine;
# closing before it arrived makes kubectl log "websocket: close sent". Wait that long for it.
RESIZE_WAIT_SECONDS = 0.25
CHUNK = 32 * 1024
CANNOT_START_EXIT = 126


@dataclass(frozen=True)
class ExecSpec:
    """How to start one exec'd command: the full argv (nsenter prefix included), its
    environment, or `error` (then nothing is started)."""

    argv: tuple[str, ...]
    env: dict[str, str]
    command: tuple[str, ...]
    error: str = ""


def exec_spec(target: ContainerTarget, command: Sequence[str], tty: bool,
              images: ImageCatalog, *, nsenter: str = "nsenter",
              setsid: str = "setsid") -> ExecSpec:
    """Plan an exec into `target` (pure apart from the catalog's program lookups)."""
    env = dict(target.env)
    resolved = images.node_argv(target.image, list(command), scratch_dir=target.scratch_dir) \
        if target.image else None
    env.setdefault("PATH", resolved.search_path if resolved is not None else DEFAULT_PATH)
    if target.hostname:
        env.setdefault("HOSTNAME", target.hostname)
    if tty:
        env.setdefault("TERM", "xterm")
    if resolved is not None and not resolved.ok:
        return ExecSpec((), env, tuple(command), resolved.message)
    argv = list(resolved.argv) if resolved is not None else list(command)
    problem = precheck(argv, 0, env, target.workdir)
    if problem:
        return ExecSpec((), env, tuple(command), problem)
    prefix = [nsenter, f"--target={target.pid}", "--net", "--mount", "--uts",
              f"--wd={target.workdir or '/'}", "--"]
    if tty:
        prefix = [setsid, "--ctty", *prefix]
    return ExecSpec((*prefix, *argv), env, tuple(command))


def exit_code(returncode: int) -> int:
    """A process's exit code as containers report it: 128 + signal for a signal death."""
    return returncode if returncode >= 0 else 128 - returncode


# --- fd helpers (non-blocking fds on the event loop) -----------------------------------------

async def _read(fd: int) -> bytes:
    """Up to CHUNK bytes; b"" at EOF (EIO on a pty master means the slave side is gone)."""
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise
        await fdwait.readable(fd)


async def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        await fdwait.writable(fd)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --- the session -----------------------------------------------------------------------------

class ExecSession:
    """One exec over an accepted WebSocket (see the module docstring)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str, opts: rc.StreamOptions,
                 spec: ExecSpec) -> None:
        self.ws = ws
        self.protocol = protocol
        self.opts = opts
        self.spec = spec
        self.fds: list[int] = []  # every fd the session owns, closed at the end
        self.stdin_fd: int | None = None
        self.tty_fd: int | None = None
        self.client_gone = False
        self.resized = asyncio.Event()

    def _own(self, fd: int) -> int:
        os.set_blocking(fd, False)
        self.fds.append(fd)
        return fd

    def _close(self, fd: int | None) -> None:
        if fd is not None and fd in self.fds:
            self.fds.remove(fd)
            os.close(fd)

    async def _send(self, channel: int, data: bytes) -> None:
        if self.client_gone:
            return
        try:
            await self.ws.send_bytes(rc.frame(channel, data))
        except (ConnectionError, RuntimeError):
            self.client_gone = True

    async def _spawn(self) -> tuple[asyncio.subprocess.Process, list[tuple[int, int]]]:
        """Start the command; returns it and its output fds with their channels."""
        opts, child_fds = self.opts, []
        try:
            if opts.tty:
                master, slave = pty.openpty()
                child_fds.append(slave)
                self.tty_fd = self._own(master)
                set_winsize(master, 80, 24)
                if opts.stdin:
                    self.stdin_fd = self._own(os.dup(master))
                # Not a new session here: `setsid --ctty` makes one, with the pty as its
                # controlling terminal (it would fork if already a group leader).
                proc = await asyncio.create_subprocess_exec(
                    *self.spec.argv, stdin=slave, stdout=slave, stderr=slave,
                    env=self.spec.env, cwd="/")
                return proc, [(master, rc.STDOUT)]  # drained even if not wanted
            stdio: dict[str, Any] = {}
            outputs = []
            if opts.stdin:
                r, w = os.pipe()
                child_fds.append(r)
                self.stdin_fd = self._own(w)
                stdio["stdin"] = r
            for name, wanted, channel in (("stdout", opts.stdout, rc.STDOUT),
                                          ("stderr", opts.stderr, rc.STDERR)):
                if wanted:
                    r, w = os.pipe()
                    child_fds.append(w)
                    outputs.append((self._own(r), channel))
                    stdio[name] = w
            proc = await asyncio.create_subprocess_exec(
                *self.spec.argv, stdin=stdio.get("stdin", asyncio.subprocess.DEVNULL),
                stdout=stdio.get("stdout", asyncio.subprocess.DEVNULL),
                stderr=stdio.get("stderr", asyncio.subprocess.DEVNULL),
                env=self.spec.env, cwd="/", start_new_session=True)
            return proc, outputs
        finally:
            for fd in child_fds:  # the child's ends: only the child may hold them now
                os.close(fd)

    async def _pump(self, fd: int, channel: int) -> None:
        wanted = self.opts.stdout if channel == rc.STDOUT else self.opts.stderr
        while data := await _read(fd):
            if wanted:
                await self._send(channel, data)

    async def _client(self) -> None:
        """Client messages until the client closes: stdin, resize, v5 close of stdin."""
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                channel, payload = rc.parse_frame(msg.data)
                if channel == rc.STDIN and self.stdin_fd is not None and payload:
                    try:
                        await _write(self.stdin_fd, payload)
                    except OSError:  # the command closed its stdin or exited
                        self._close(self.stdin_fd)
                        self.stdin_fd = None
                elif channel == rc.RESIZE and self.tty_fd is not None:
                    for width, height in rc.parse_resize(payload):
                        set_winsize(self.tty_fd, width, height)
                    self.resized.set()
                elif channel == rc.CLOSE and rc.parse_close(payload) == rc.STDIN \
                        and self.stdin_fd is not None:
                    if self.tty_fd is not None:  # a pty cannot be half-closed: send EOF (^D)
                        await _write(self.stdin_fd, b"\x04")
                    else:
                        self._close(self.stdin_fd)
                        self.stdin_fd = None
            except rc.ProtocolError as e:
                log.debug("exec: ignoring bad client message: %s", e)
        self.client_gone = True

    async def run(self) -> None:
        if self.spec.error:
            await self._cannot_start()
            return
        try:
            proc, outputs = await self._spawn()
        except OSError as e:  # nsenter/setsid missing, out of fds or processes
            for fd in list(self.fds):
                self._close(fd)
            status = rc.internal_error_status(f"error executing command in container: {e}")
            await self._send(rc.ERROR, rc.error_payload(self.protocol, status))
            await self._close_ws()
            return
        pumps = [asyncio.create_task(self._pump(fd, ch)) for fd, ch in outputs]
        client = asyncio.create_task(self._client())
        waiter = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({client, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():  # the client went away: end the command now
                _kill_group(proc.pid)
                await waiter
                return
            if pumps:
                _, pending = await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
                for t in pending:
                    t.cancel()
            _kill_group(proc.pid)  # whatever it left running in its group
            code = exit_code(waiter.result())
            status = rc.success_status() if code == 0 else rc.exit_status(code,
                                                                          self.spec.command)
            payload = rc.error_payload(self.protocol, status)
            if payload:
                await self._send(rc.ERROR, payload)
            if self.opts.tty and not client.done():
                try:
                    await asyncio.wait_for(self.resized.wait(), RESIZE_WAIT_SECONDS)
                except TimeoutError:
                    pass
            # stop reading before closing: a close racing a reader waits for the reader
            client.cancel()
            await asyncio.gather(client, return_exceptions=True)
            await self._close_ws()
        finally:
            tasks: list[asyncio.Task[Any]] = [*pumps, client, waiter]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if waiter.cancelled() or proc.returncode is None:
                _kill_group(proc.pid)
                await proc.wait()
            for fd in list(self.fds):
                self._close(fd)

    async def _cannot_start(self) -> None:
        message = f"exec failed: unable to start container process: {self.spec.error}" + \
            ("\r\n" if self.opts.tty else "\n")
        channel = rc.STDOUT if self.opts.tty else rc.STDERR
        if (self.opts.tty and self.opts.stdout) or (not self.opts.tty and self.opts.stderr):
            await self._send(channel, message.encode())
        payload = rc.error_payload(self.protocol, rc.exit_status(CANNOT_START_EXIT,
                                                                 self.spec.command))
        await self._send(rc.ERROR, payload)
        await self._close_ws()

    async def _close_ws(self) -> None:
        try:
            await self.ws.close()
        except (ConnectionError, RuntimeError):
            pass


@functools.cache
def tool_paths() -> tuple[str, str]:
    """Absolute paths of nsenter and setsid (util-linux), found once."""
    return shutil.which("nsenter") or "nsenter", shutil.which("setsid") or "setsid"
