"""The shim's attach side: the socket `kubectl attach` reaches the container through
(stdlib only, imported by shim.py; framing in shimwire.py).

`AttachHub` lives inside the shim's single-threaded selector loop. It accepts agent
connections on `attach.sock`, copies the container's output to every attached client
(as well as to the log, which the shim does itself), and feeds what clients send on STDIN
into the container's stdin (a pipe, or the pty master for a TTY container). RESIZE sets
the pty's window size (TIOCSWINSZ), which also sends SIGWINCH to the foreground process
group, as a terminal would.

`stdinOnce` (what `kubectl run -i` sets) closes the container's stdin when the first
client that attached with stdin goes away or closes its stdin: a pipe is closed (the
container reads EOF); on a pty, EOF is an end-of-transmission byte (^D) read by a
canonical-mode reader, since a pty cannot be half-closed.

One departure from the kubelet, on purpose: the FIRST client to attach is first sent the
output the container wrote before anyone was attached (up to MAX_REPLAY bytes). A
container that `kubectl run -it` starts begins before kubectl can attach, so with a
kubelet a short command's output (or a shell's first prompt) is simply lost; here it
shows. Later clients see only what comes after they attach, as with a kubelet.

Every socket is non-blocking and buffered per client, so a slow or stuck client can never
block the container: a client that falls more than `MAX_CLIENT_BUFFER` behind is dropped.
Stdin that the container does not read is buffered up to `MAX_STDIN_BUFFER`; beyond that
the hub stops reading from clients until the container catches up.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import socket
import struct
import termios
import time
from dataclasses import dataclass, field
from typing import Callable

from svcnet.node import shimwire

MAX_CLIENT_BUFFER = 4 << 20
MAX_STDIN_BUFFER = 1 << 20
MAX_REPLAY = 256 << 10
FLUSH_SECONDS = 1.0
EOT = b"\x04"

Callback = Callable[[int], None]


def set_winsize(fd: int, width: int, height: int) -> None:
    """Set a terminal's size (rows, columns); the kernel signals SIGWINCH on change."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


@dataclass
class _Client:
    sock: socket.socket
    decoder: shimwire.Decoder = field(default_factory=shimwire.Decoder)
    out: bytearray = field(default_factory=bytearray)
    uses_stdin: bool = False
    events: int = selectors.EVENT_READ


class AttachHub:
    """See the module docstring. `stdin_fd` is the write end of the container's stdin
    (None: the container has no stdin); `tty_fd` the pty master (None: no TTY)."""

    def __init__(self, sel: selectors.BaseSelector, listener: socket.socket,
                 stdin_fd: int | None, tty_fd: int | None, stdin_once: bool) -> None:
        self.sel = sel
        self.listener = listener
        self.stdin_fd = stdin_fd
        self.tty_fd = tty_fd
        self.stdin_once = stdin_once
        self.clients: dict[int, _Client] = {}
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self._paused = False
        self.replay: bytearray | None = bytearray()  # None once a client has attached
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ, self._accept)
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)

    # -- clients ---------------------------------------------------------------------------
    def _accept(self, _mask: int) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        client = _Client(conn)
        self.clients[conn.fileno()] = client
        client.out += shimwire.encode(shimwire.ACCEPTED)
        if self.replay is not None:
            client.out += self.replay
            self.replay = None
        events = self._wanted(client)
        client.events = events
        if events:
            self.sel.register(conn, events, lambda mask, c=client: self._on_client(c, mask))

    def _set_events(self, c: _Client, events: int) -> None:
        if events == c.events:
            return
        if c.events and events:
            self.sel.modify(c.sock, events, lambda mask, c=c: self._on_client(c, mask))
        elif events:
            self.sel.register(c.sock, events, lambda mask, c=c: self._on_client(c, mask))
        else:
            self.sel.unregister(c.sock)
        c.events = events

    def _wanted(self, c: _Client) -> int:
        return (0 if self._paused else selectors.EVENT_READ) | \
            (selectors.EVENT_WRITE if c.out else 0)

    def _on_client(self, c: _Client, mask: int) -> None:
        if mask & selectors.EVENT_WRITE and not self._flush(c):
            return
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._drop(c)
                return
            try:
                frames = c.decoder.feed(data)
            except shimwire.WireError:
                self._drop(c)
                return
            for channel, payload in frames:
                self._handle(c, channel, payload)
        if c.sock.fileno() in self.clients:
            self._set_events(c, self._wanted(c))

    def _handle(self, c: _Client, channel: int, payload: bytes) -> None:
        if channel == shimwire.OPEN:
            c.uses_stdin = bool(payload and payload[0] & shimwire.OPEN_STDIN)
        elif channel == shimwire.STDIN and self.stdin_fd is not None and not self.stdin_closing:
            self.stdin_buf += payload
            self._write_stdin()
        elif channel == shimwire.RESIZE and self.tty_fd is not None:
            try:
                set_winsize(self.tty_fd, *shimwire.decode_resize(payload))
            except (OSError, shimwire.WireError):
                pass
        elif channel == shimwire.CLOSE and c.uses_stdin and self.stdin_once:
            self._close_stdin()

    def _drop(self, c: _Client) -> None:
        self.clients.pop(c.sock.fileno(), None)
        self._set_events(c, 0)
        c.sock.close()
        if c.uses_stdin and self.stdin_once:
            self._close_stdin()

    def _flush(self, c: _Client) -> bool:
        """Send what is buffered for `c`; False if the client was dropped."""
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._drop(c)
            return False
        del c.out[:sent]
        return True

    def broadcast(self, channel: int, data: bytes) -> None:
        """Copy container output to every client (or keep it for the first one)."""
        message = shimwire.encode(channel, data)
        if self.replay is not None:
            self.replay += message
            while len(self.replay) > MAX_REPLAY:  # keep whole frames of the latest output
                del self.replay[:shimwire.frame_size(self.replay)]
            return
        for c in list(self.clients.values()):
            c.out += message
            if len(c.out) > MAX_CLIENT_BUFFER:
                self._drop(c)  # too slow to keep up: never hold the container back
                continue
            if self._flush(c) and c.sock.fileno() in self.clients:
                self._set_events(c, self._wanted(c))

    # -- stdin -----------------------------------------------------------------------------
    def _write_stdin(self, _mask: int = 0) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf[:65536])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the container closed its stdin or exited
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        self._watch_stdin(bool(self.stdin_buf))
        self._pause(len(self.stdin_buf) > MAX_STDIN_BUFFER)
        if not self.stdin_buf and self.stdin_closing:
            self._finish_stdin()

    def _watch_stdin(self, on: bool) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        registered = fd in self.sel.get_map()
        if on and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, self._write_stdin)
        elif not on and registered:
            self.sel.unregister(fd)

    def _pause(self, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        for c in list(self.clients.values()):
            self._set_events(c, self._wanted(c))

    def _close_stdin(self) -> None:
        if self.stdin_fd is None or self.stdin_closing:
            return
        self.stdin_closing = True
        if self.tty_fd is not None:
            self.stdin_buf += EOT
        self._write_stdin()

    def _finish_stdin(self) -> None:
        fd, self.stdin_fd = self.stdin_fd, None
        if fd is None:
            return
        self._watch_stdin_fd_off(fd)
        os.close(fd)

    def _watch_stdin_fd_off(self, fd: int) -> None:
        if fd in self.sel.get_map():
            self.sel.unregister(fd)

    # -- end -------------------------------------------------------------------------------
    def close(self) -> None:
        """The container is gone: give clients what is buffered (briefly), then close
        everything, which tells each agent connection the session is over."""
        self.sel.unregister(self.listener)
        self.listener.close()
        deadline = time.monotonic() + FLUSH_SECONDS
        for c in list(self.clients.values()):
            self._set_events(c, 0)
            c.sock.setblocking(True)
            try:
                c.sock.settimeout(max(0.01, deadline - time.monotonic()))
                c.sock.sendall(c.out)
            except OSError:
                pass
            c.sock.close()
        self.clients.clear()
        if self.stdin_fd is not None:
            self._watch_stdin_fd_off(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = None
