"""`kubectl port-forward` on the agent: TCP connections to a port inside the Pod's network
namespace, carried over the WebSocket from the API server.

Two protocols (api/remotecommand.py has the facts):

* `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+): the WebSocket carries a SPDY session
  (node/spdy.py). For each local connection kubectl opens two streams with headers
  `streamtype: error|data`, `port`, `requestid`; the agent answers each SYN_STREAM with a
  SYN_REPLY, and once both streams of a request id are there, connects to the port and
  copies bytes between the data stream and the socket. A failure to connect is written on
  the error stream (kubectl prints it and drops the session, as with a kubelet). Like the
  kubelet, when one direction ends the other gets a second to finish, then both streams
  are closed (FIN), the error stream last: kubectl waits for it to close.
* `v4.channel.k8s.io` (the python client): `?ports=` names the ports, port i uses
  channels 2i (data) and 2i+1 (error), each opened by the port number in two
  little-endian bytes; one connection per port; the WebSocket closes when all are done.

Connecting inside the Pod: a short-lived thread enters the Pod's network namespace
(setns on /run/netns/<name>) and creates the socket there; a socket stays in the
namespace it was created in, so the event loop then connects and uses it as any other.
The agent's own threads never change namespace. Like the kubelet, 127.0.0.1 is tried,
then ::1.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc
from svcnet.node import spdy

log = logging.getLogger("svcnet.agent.portforward")

CHUNK = 32 * 1024
GRACE_SECONDS = 1.0  # after one direction ends, how long the other may take (kubelet: 1 s)
STREAM_QUEUE = 16
_CLONE_NEWNET = 0x40000000

Dialer = Callable[[int], Awaitable[socket.socket]]


class DialError(Exception):
    """The port could not be reached inside the Pod (message in the kubelet's words)."""


# --- connecting inside the Pod ---------------------------------------------------------------

def _socket_in_netns(netns_path: str, family: int) -> socket.socket:
    """A TCP socket created inside the network namespace at `netns_path` (run in a
    throw-away thread: setns changes only the calling thread's namespace)."""
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, socket.SOCK_STREAM))
        except BaseException as e:  # handed to the caller
            result.append(e)

    thread = threading.Thread(target=make, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def netns_dialer(netns_path: str | None, where: str) -> Dialer:
    """A dialer for localhost ports of a Pod (`netns_path` None: the agent's own namespace,
    i.e. a hostNetwork Pod). `where` names the namespace in error messages."""
    async def dial(port: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        problems = []
        for family, host, label in ((socket.AF_INET, "127.0.0.1", "IPv4: dial tcp4 "
                                     f"127.0.0.1:{port}"),
                                    (socket.AF_INET6, "::1", f"IPv6 dial tcp6 [::1]:{port}")):
            try:
                sock = await asyncio.to_thread(_socket_in_netns, netns_path, family) \
                    if netns_path else socket.socket(family, socket.SOCK_STREAM)
            except OSError as e:
                problems.append(f"{label}: {e.strerror or e}")
                continue
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
                return sock
            except (OSError, TimeoutError) as e:
                sock.close()
                reason = os.strerror(e.errno).lower() if isinstance(e, OSError) and e.errno \
                    else "i/o timeout"
                problems.append(f"{label}: connect: {reason}")
        raise DialError(f"failed to connect to localhost:{port} inside namespace {where}, "
                        + " ".join(problems))
    return dial


async def _copy_out(sock: socket.socket, send: Callable[[bytes], Awaitable[None]]) -> None:
    """Socket -> peer until EOF."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(sock, CHUNK)
        except OSError:
            data = b""
        if not data:
            return
        await send(data)


async def _copy_in(sock: socket.socket, queue: "asyncio.Queue[bytes | None]") -> None:
    """Peer -> socket until the peer's FIN, then half-close the socket."""
    loop = asyncio.get_running_loop()
    while (data := await queue.get()) is not None:
        try:
            await loop.sock_sendall(sock, data)
        except OSError:
            return
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


async def _both_ways(out: Awaitable[None], into: Awaitable[None]) -> None:
    """Run both copies; once one ends the other gets GRACE_SECONDS (as the kubelet)."""
    tasks = [asyncio.ensure_future(out), asyncio.ensure_future(into)]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending, timeout=GRACE_SECONDS)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- SPDY ------------------------------------------------------------------------------------

@dataclass
class _Stream:
    stream_id: int
    kind: str  # "data" | "error"
    port: int
    inbound: "asyncio.Queue[bytes | None]" = field(
        default_factory=lambda: asyncio.Queue(STREAM_QUEUE))
    done: bool = False
    task: "asyncio.Task[None] | None" = None  # the forward, set on both streams of a pair


class SpdySession:
    """The server side of one SPDY port-forward session (see the module docstring).
    `feed()` the session's bytes as they arrive; outgoing bytes go to `send`."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], dial: Dialer,
                 describe: str) -> None:
        self.send = send
        self.dial = dial
        self.describe = describe  # "pod NAME, uid UID" for error messages
        self.decoder = spdy.FrameDecoder()
        self.encoder = spdy.FrameEncoder()
        self.streams: dict[int, _Stream] = {}
        self.pending: dict[str, dict[str, _Stream]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_stream = 0
        self.goaway = False

    async def feed(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            await self._frame(frame)

    async def _frame(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.SynStream):
            await self._syn_stream(frame)
        elif isinstance(frame, spdy.Data):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                return
            if frame.data and stream.kind == "data":
                await stream.inbound.put(frame.data)
            if frame.fin:
                await stream.inbound.put(None)
        elif isinstance(frame, spdy.RstStream):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:  # the client gave up on this connection
                stream.done = True
                if stream.task is not None:
                    stream.task.cancel()
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2 == 1:  # the client's ping: answer it
                await self.send(self.encoder.ping(frame.ping_id))
        elif isinstance(frame, spdy.GoAway):
            self.goaway = True
        # SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY, unknown: nothing to do

    async def _syn_stream(self, frame: spdy.SynStream) -> None:
        sid = frame.stream_id
        self.last_stream = max(self.last_stream, sid)
        kind = (frame.headers.get("streamtype") or [""])[0]
        port_raw = (frame.headers.get("port") or [""])[0]
        request = (frame.headers.get("requestid") or [""])[0]
        if kind not in ("data", "error") or not port_raw.isdigit() \
                or not 0 < int(port_raw) <= 0xFFFF or sid in self.streams:
            await self.send(self.encoder.rst_stream(sid, spdy.PROTOCOL_ERROR))
            return
        stream = _Stream(sid, kind, int(port_raw))
        self.streams[sid] = stream
        await self.send(self.encoder.syn_reply(sid))
        if frame.fin:
            await stream.inbound.put(None)
        # Clients older than kube 1.6 sent no request id: pair the data stream with the
        # error stream created just before it.
        key = request or str(sid if kind == "error" else sid - 2)
        pair = self.pending.setdefault(key, {})
        pair[kind] = stream
        if len(pair) == 2:
            del self.pending[key]
            task = asyncio.create_task(self._forward(pair["data"], pair["error"]))
            pair["data"].task = pair["error"].task = task
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _data(self, stream: _Stream, data: bytes = b"", fin: bool = False) -> None:
        if stream.done:
            return
        for i in range(0, max(len(data), 1), CHUNK):
            chunk = data[i:i + CHUNK]
            last = i + CHUNK >= len(data)
            await self.send(self.encoder.data(stream.stream_id, chunk, fin=fin and last))
        if fin:
            stream.done = True

    async def _forward(self, data: _Stream, error: _Stream) -> None:
        try:
            try:
                sock = await self.dial(data.port)
            except DialError as e:
                msg = f"error forwarding port {data.port} to {self.describe}: {e}"
                await self._data(error, msg.encode())
                return
            try:
                async def out(chunk: bytes) -> None:
                    await self._data(data, chunk)

                async def pod_to_client() -> None:
                    await _copy_out(sock, out)
                    await self._data(data, fin=True)  # the pod's FIN, passed on at once
                await _both_ways(pod_to_client(), _copy_in(sock, data.inbound))
            finally:
                sock.close()
        except (ConnectionError, RuntimeError) as e:
            log.debug("port-forward stream %d ended: %s", data.stream_id, e)
        finally:
            try:
                await self._data(data, fin=True)
                await self._data(error, fin=True)
            except (ConnectionError, RuntimeError, asyncio.CancelledError):
                pass
            self.streams.pop(data.stream_id, None)
            self.streams.pop(error.stream_id, None)

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def serve_spdy(ws: web.WebSocketResponse, dial: Dialer, describe: str) -> None:
    """Run a SPDY port-forward session over `ws` until either side ends it."""
    out: asyncio.Queue[bytes] = asyncio.Queue(64)  # b"" = the session is over

    async def writer() -> None:
        while data := await out.get():
            while not out.empty() and len(data) < 4 * CHUNK:  # coalesce small frames
                more = out.get_nowait()
                if not more:
                    await ws.send_bytes(data)
                    return
                data += more
            await ws.send_bytes(data)

    session = SpdySession(out.put, dial, describe)
    write_task = asyncio.create_task(writer())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await session.feed(msg.data)
            if session.goaway or write_task.done():
                break
    except spdy.SpdyError as e:
        log.info("port-forward: bad SPDY from the client: %s", e)
        await ws.send_bytes(session.encoder.goaway(session.last_stream, 1))
    finally:
        await session.close()
        if not write_task.done():
            try:
                out.put_nowait(b"")
            except asyncio.QueueFull:
                pass
        await asyncio.wait({write_task}, timeout=1)  # let final frames go out
        write_task.cancel()
        await asyncio.gather(write_task, return_exceptions=True)
        try:
            await ws.close()
        except (ConnectionError, RuntimeError):
            pass


# --- plain WebSocket channels ----------------------------------------------------------------

async def serve_channels(ws: web.WebSocketResponse, ports: tuple[int, ...], dial: Dialer,
                         describe: str) -> None:
    """The v4.channel.k8s.io port-forward (one connection per port, then close)."""
    inbound: dict[int, asyncio.Queue[bytes | None]] = {}
    tasks = []

    async def send(channel: int, data: bytes) -> None:
        await ws.send_bytes(rc.frame(channel, data))

    async def one(index: int, port: int) -> None:
        data_ch, err_ch = rc.portforward_channels(index)
        try:
            sock = await dial(port)
        except DialError as e:
            await send(err_ch, f"error forwarding port {port} to {describe}: {e}".encode())
            return
        try:
            async def out(chunk: bytes) -> None:
                await send(data_ch, chunk)
            await _both_ways(_copy_out(sock, out), _copy_in(sock, inbound[data_ch]))
        finally:
            sock.close()

    for i, port in enumerate(ports):
        data_ch, err_ch = rc.portforward_channels(i)
        inbound[data_ch] = asyncio.Queue(STREAM_QUEUE)
        await send(data_ch, rc.port_prefix(port))
        await send(err_ch, rc.port_prefix(port))
    for i, port in enumerate(ports):
        tasks.append(asyncio.create_task(one(i, port)))

    async def client() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            queue = inbound.get(msg.data[0])
            if queue is not None and len(msg.data) > 1:
                await queue.put(bytes(msg.data[1:]))
        for queue in inbound.values():
            if not queue.full():
                queue.put_nowait(None)

    async def forwards() -> None:
        await asyncio.gather(*tasks)

    reader = asyncio.create_task(client())
    all_done = asyncio.create_task(forwards())
    try:
        await asyncio.wait({reader, all_done}, return_when=asyncio.FIRST_COMPLETED)
    except (ConnectionError, RuntimeError) as e:
        log.debug("port-forward ended: %s", e)
    finally:
        for t in (*tasks, reader, all_done):
            t.cancel()
        await asyncio.gather(*tasks, reader, all_done, return_exceptions=True)
        try:
            await ws.close()
        except (ConnectionError, RuntimeError):
            pass

