"""The agent's streaming side with real processes, without root: exec sessions (pipes and a
pty, exit codes, a closed client killing the command, no fd left behind), the endpoint's
refusals, attach through a real shim's socket, and port-forward over SPDY and over plain
channels to a TCP server in this namespace (a hostNetwork Pod's view)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import pids_mentioning

from svcnet.api import remotecommand as rc
from svcnet.node import attach, containers, shimwire, spdy
from svcnet.node.containers import LaunchSpec, Shims
from svcnet.node.exec import ExecSession, ExecSpec
from svcnet.node.images import ImageCatalog
from svcnet.node.shim import proc_start_ticks
from svcnet.node.stream_api import StreamingApi, close_sessions, detached
from svcnet.node.types import ContainerTarget, Sandbox

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- exec sessions ---------------------------------------------------------------------------

async def _exec_handler(request: web.Request) -> web.StreamResponse:
    query = {k: request.query.getall(k) for k in set(request.query.keys())}
    opts = rc.check_stream_options(rc.parse_stream_options(query), exec_=True)
    error = request.query.get("error", "")
    spec = ExecSpec(() if error else opts.command, {"PATH": PATH}, opts.command, error)
    ws = web.WebSocketResponse(protocols=rc.EXEC_PROTOCOLS)
    await ws.prepare(request)
    await detached(ExecSession(ws, ws.ws_protocol or rc.V1, opts, spec).run())
    return ws


@pytest.fixture
async def exec_server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/exec", _exec_handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def _query(*command: str, **flags: str) -> str:
    parts = [("command", c) for c in command] + list(flags.items())
    return "&".join(f"{k}={aiohttp.helpers.quote(v, safe='')}" for k, v in parts)


async def _open(server: TestServer, query: str, protocol: str = rc.V5,
                ) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(server.make_url(f"/exec?{query}"), protocols=[protocol])
    return session, ws


async def _collect(ws: aiohttp.ClientWebSocketResponse) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    async for msg in ws:
        channel, payload = rc.parse_frame(msg.data)
        out[channel] = out.get(channel, b"") + payload
    return out


async def _run(server: TestServer, query: str, stdin: bytes | None = None,
               protocol: str = rc.V5, close_stdin: bool = True) -> dict[int, bytes]:
    session, ws = await _open(server, query, protocol)
    try:
        if "tty=1" in query:  # as kubectl does first thing
            await ws.send_bytes(rc.frame(rc.RESIZE, b'{"Width":80,"Height":24}'))
        if stdin is not None:
            for i in range(0, len(stdin), 32768):
                await ws.send_bytes(rc.frame(rc.STDIN, stdin[i:i + 32768]))
            if close_stdin:
                await ws.send_bytes(rc.frame(rc.CLOSE, bytes([rc.STDIN])))
        return await asyncio.wait_for(_collect(ws), 20)
    finally:
        await session.close()


def _status(out: dict[int, bytes]) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(out[rc.ERROR])
    return status


async def test_output_streams_and_exit_codes(exec_server: TestServer) -> None:
    out = await _run(exec_server, _query("sh", "-c", "echo out; echo err >&2; exit 3",
                                         stdout="1", stderr="1"))
    assert out[rc.STDOUT] == b"out\n" and out[rc.STDERR] == b"err\n"
    assert rc.exit_code_of(_status(out)) == 3
    out = await _run(exec_server, _query("true", stdout="1"))
    assert _status(out) == rc.success_status() and rc.STDOUT not in out
    out = await _run(exec_server, _query("sh", "-c", "kill -9 $$", stdout="1"))
    assert rc.exit_code_of(_status(out)) == 137


async def test_stdin_round_trips_a_mebibyte_and_the_v5_close_ends_it(
        exec_server: TestServer) -> None:
    data = os.urandom(1 << 20)
    out = await _run(exec_server, _query("cat", stdin="1", stdout="1", stderr="1"), data)
    assert out[rc.STDOUT] == data
    assert _status(out) == rc.success_status()


async def test_v4_has_no_close_signal(exec_server: TestServer) -> None:
    out = await _run(exec_server, _query("head", "-c", "5", stdin="1", stdout="1"),
                     b"hello world", protocol=rc.V4, close_stdin=False)
    assert out[rc.STDOUT] == b"hello" and _status(out)["status"] == "Success"


async def test_older_protocols_get_text_on_the_error_channel(exec_server: TestServer) -> None:
    out = await _run(exec_server, _query("sh", "-c", "exit 2", stdout="1"), protocol=rc.V2)
    assert out[rc.ERROR].startswith(b"command terminated with non-zero exit code")
    out = await _run(exec_server, _query("true", stdout="1"), protocol=rc.V1)
    assert rc.ERROR not in out


async def test_a_tty_with_resize(exec_server: TestServer) -> None:
    session, ws = await _open(exec_server, _query("sh", "-c", "read x; stty size; tty",
                                                  stdin="1", stdout="1", tty="1"))
    try:
        await ws.send_bytes(rc.frame(rc.RESIZE, b'{"Width":100,"Height":40}'))
        await ws.send_bytes(rc.frame(rc.STDIN, b"go\n"))
        out = await asyncio.wait_for(_collect(ws), 20)
    finally:
        await session.close()
    text = out[rc.STDOUT].decode()
    assert "go\r\n" in text  # the terminal echoes
    assert "40 100\r\n" in text and "/dev/pts/" in text
    assert _status(out)["status"] == "Success"


async def test_a_command_that_cannot_start(exec_server: TestServer) -> None:
    out = await _run(exec_server, _query("nope", stdout="1", stderr="1",
                                         error='exec: "nope": executable file not found'))
    assert out[rc.STDERR] == (b'exec failed: unable to start container process: exec: '
                              b'"nope": executable file not found\n')
    assert rc.exit_code_of(_status(out)) == 126




async def _until(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


async def test_closing_the_client_kills_the_command(exec_server: TestServer) -> None:
    marker = f"{os.getpid()}{time.monotonic_ns() % 100000}"
    session, ws = await _open(exec_server, _query("sh", "-c", f"sleep 1{marker}; :",
                                                  stdout="1"))
    try:
        await _until(lambda: pids_mentioning(f"sleep 1{marker}"))
    finally:
        await ws.close()
        await session.close()
    await _until(lambda: not pids_mentioning(f"sleep 1{marker}"))


async def test_a_stopping_agent_ends_its_sessions(exec_server: TestServer) -> None:
    marker = f"{os.getpid()}{time.monotonic_ns() % 100000}"
    session, ws = await _open(exec_server, _query("sleep", f"3{marker}", stdout="1"))
    try:
        await _until(lambda: pids_mentioning(f"sleep 3{marker}"))
        await close_sessions()
        await _until(lambda: not pids_mentioning(f"sleep 3{marker}"))
        assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await session.close()


async def test_background_processes_end_with_the_session(exec_server: TestServer) -> None:
    marker = f"{os.getpid()}{time.monotonic_ns() % 100000}"
    out = await _run(exec_server, _query("sh", "-c", f"sleep 2{marker} >/dev/null & echo ok",
                                         stdout="1"))
    assert out[rc.STDOUT] == b"ok\n"
    await _until(lambda: not pids_mentioning(f"sleep 2{marker}"))


async def test_sessions_leave_no_fd_or_child_behind(exec_server: TestServer) -> None:
    await _run(exec_server, _query("true", stdout="1"))  # warm up lazily opened fds
    before = len(os.listdir("/proc/self/fd"))
    for i in range(30):
        tty = "1" if i % 3 == 0 else "0"
        await _run(exec_server, _query("sh", "-c", "cat; echo done", stdin="1", stdout="1",
                                       stderr="1", tty=tty), b"x\n")
    await asyncio.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= before
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    assert children == []


# --- the endpoint's refusals -----------------------------------------------------------------

@dataclass
class FakeRuntime:
    targets: dict[tuple[str, str], ContainerTarget] = field(default_factory=dict)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)

    def container_target(self, pod_uid: str, container: str) -> ContainerTarget | None:
        return self.targets.get((pod_uid, container))

    async def settle(self, pod_uid: str, container: str) -> None:
        return None

    def sandbox(self, pod_uid: str) -> Sandbox | None:
        return self.sandboxes.get(pod_uid)


@pytest.fixture
async def agent() -> AsyncIterator[tuple[TestServer, FakeRuntime]]:
    runtime = FakeRuntime()
    pods = {("default", "p"): "uid-p"}
    api = StreamingApi(lambda ns, name: pods.get((ns, name)), runtime, ImageCatalog())
    app = web.Application()
    api.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server, runtime
    finally:
        await server.close()


@pytest.mark.parametrize("path, code, text", [
    ("/exec/default/nope/c?command=ls&stdout=1", 404, 'pod "nope" not found on this node'),
    ("/exec/default/p/c?command=ls&stdout=1", 404, 'container not found ("c")'),
    ("/exec/default/p/c?command=ls", 400, "you must specify at least 1 of stdin, stdout, "
                                          "stderr"),
    ("/exec/default/p/c?stdout=1", 400, "you must specify at least one command for the "
                                        "container"),
    ("/attach/default/p/c?stdout=1", 404, 'container not found ("c")'),
    ("/portForward/default/p?ports=80", 404, "pod sandbox of p is not ready"),
])
async def test_refusals_come_before_the_upgrade_as_text(
        agent: tuple[TestServer, FakeRuntime], path: str, code: int, text: str) -> None:
    server, _ = agent
    async with aiohttp.ClientSession() as s:
        async with s.get(server.make_url(path)) as r:
            assert (r.status, (await r.text()).strip()) == (code, text)


async def test_port_forward_checks_its_ports(agent: tuple[TestServer, FakeRuntime]) -> None:
    server, runtime = agent
    runtime.sandboxes["uid-p"] = Sandbox(pod_uid="uid-p", netns="", ip="127.0.0.1")
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(server.make_url("/portForward/default/p?ports=http"),
                               protocols=[rc.V4])
        assert e.value.status == 400
        async with s.get(server.make_url("/portForward/default/p?ports=80")) as r:
            assert r.status == 400 and (await r.text()) == "Upgrade request required"


# --- port-forward ----------------------------------------------------------------------------

@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


class SpdyClient:
    """The client half of a SPDY port-forward session, as kubectl drives it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.enc = spdy.FrameEncoder()
        self.dec = spdy.FrameDecoder()
        self.frames: list[spdy.Frame] = []

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def next(self) -> spdy.Frame:
        while not self.frames:
            msg = await asyncio.wait_for(self.ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            self.frames += self.dec.feed(msg.data)
        return self.frames.pop(0)

    async def until_fin(self, stream_id: int) -> bytes:
        data = b""
        while True:
            frame = await self.next()
            if isinstance(frame, spdy.Data) and frame.stream_id == stream_id:
                data += frame.data
                if frame.fin:
                    return data


async def test_spdy_port_forward(agent: tuple[TestServer, FakeRuntime], echo_port: int) -> None:
    server, runtime = agent
    runtime.sandboxes["uid-p"] = Sandbox(pod_uid="uid-p", netns="", ip="127.0.0.1")
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(server.make_url("/portForward/default/p"),
                                protocols=[rc.SPDY_PORTFORWARD])
        assert ws.protocol == rc.SPDY_PORTFORWARD
        c = SpdyClient(ws)
        await c.send(c.enc.ping(1))
        assert await c.next() == spdy.Ping(1)
        port = str(echo_port)
        await c.send(c.enc.syn_stream(1, {"streamtype": ["error"], "port": [port],
                                          "requestid": ["0"]}))
        await c.send(c.enc.data(1, fin=True))  # kubectl half-closes the error stream
        await c.send(c.enc.syn_stream(3, {"streamtype": ["data"], "port": [port],
                                          "requestid": ["0"]}))
        assert await c.next() == spdy.SynReply(1, {})
        assert await c.next() == spdy.SynReply(3, {})
        payload = os.urandom(200_000)
        for i in range(0, len(payload), 30000):
            await c.send(c.enc.data(3, payload[i:i + 30000]))
        await c.send(c.enc.data(3, fin=True))
        assert await c.until_fin(3) == payload
        assert await c.until_fin(1) == b""  # no error, then the error stream closes
        # a port nobody listens on: the reason comes on the error stream
        await c.send(c.enc.syn_stream(5, {"streamtype": ["error"], "port": ["1"],
                                          "requestid": ["1"]}))
        await c.send(c.enc.syn_stream(7, {"streamtype": ["data"], "port": ["1"],
                                          "requestid": ["1"]}))
        assert isinstance(await c.next(), spdy.SynReply)
        assert isinstance(await c.next(), spdy.SynReply)
        message = (await c.until_fin(5)).decode()
        assert message.startswith("error forwarding port 1 to pod p, uid uid-p: failed to "
                                  "connect to localhost:1 inside namespace")
        assert "dial tcp4 127.0.0.1:1: connect: connection refused" in message
        # a stream without the headers is reset
        await c.send(c.enc.syn_stream(9, {"streamtype": ["data"]}))
        assert await c.next() == spdy.RstStream(9, spdy.PROTOCOL_ERROR)
        await c.send(c.enc.goaway(9))
        assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_channel_port_forward(agent: tuple[TestServer, FakeRuntime],
                                    echo_port: int) -> None:
    server, runtime = agent
    runtime.sandboxes["uid-p"] = Sandbox(pod_uid="uid-p", netns="", ip="127.0.0.1")
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(server.make_url(f"/portForward/default/p?ports={echo_port},1"),
                                protocols=[rc.V4])
        assert ws.protocol == rc.V4
        got: dict[int, bytes] = {}
        for _ in range(4):  # every channel opens with its port
            channel, payload = rc.parse_frame((await ws.receive()).data)
            got[channel] = payload
        assert got == {0: rc.port_prefix(echo_port), 1: rc.port_prefix(echo_port),
                       2: rc.port_prefix(1), 3: rc.port_prefix(1)}
        await ws.send_bytes(rc.frame(0, b"ping"))
        seen: dict[int, bytes] = {}
        while seen.get(0) != b"ping" or 3 not in seen:
            channel, payload = rc.parse_frame((await asyncio.wait_for(ws.receive(), 10)).data)
            seen[channel] = seen.get(channel, b"") + payload
        assert b"connection refused" in seen[3]
        await ws.close()


# --- attach through a real shim --------------------------------------------------------------

@pytest.fixture
async def shims(tmp_path: Path) -> AsyncIterator[tuple[Shims, list[containers.Attempt], Path]]:
    s, started = Shims(), []
    try:
        yield s, started, tmp_path
    finally:
        for a in started:
            for pid, start in ((a.pid, a.pid_start), (a.shim_pid, a.shim_start)):
                if pid and proc_start_ticks(pid) == start:
                    try:
                        os.killpg(pid, signal.SIGKILL) if pid == a.pid else \
                            os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            await s.wait_exit(a, 5)
        s.reap()


async def _container(shims: tuple[Shims, list[containers.Attempt], Path], name: str,
                     argv: tuple[str, ...], runtime: FakeRuntime, **flags: bool,
                     ) -> containers.Attempt:
    s, started, tmp = shims
    path = tmp / name / "0"
    path.parent.mkdir(parents=True)
    attempt = await s.launch(path, 0, LaunchSpec(argv=argv, exec_index=0,
                                                 env=(("PATH", PATH),), workdir="",
                                                 hostname="", **flags))
    started.append(attempt)
    assert attempt.running, attempt.error
    runtime.targets[("uid-p", name)] = ContainerTarget(
        pod_uid="uid-p", pod_name="p", container=name, pid=attempt.pid,
        pid_start=attempt.pid_start, env=(), workdir="", image="", scratch_dir="",
        attempt_dir=path, hostname="", stdin=flags.get("stdin", False),
        tty=flags.get("tty", False))
    return attempt


async def _read_until(ws: aiohttp.ClientWebSocketResponse, text: bytes) -> bytes:
    seen = b""
    while text not in seen:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.BINARY, (msg, seen)
        channel, payload = rc.parse_frame(msg.data)
        assert channel == rc.STDOUT
        seen += payload
    return seen


async def test_attach_to_a_tty_container(agent: tuple[TestServer, FakeRuntime],
                                         shims: Any) -> None:
    server, runtime = agent
    await _container(shims, "sh", ("sh",), runtime, stdin=True, stdin_once=True, tty=True)
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(server.make_url("/attach/default/p/sh?stdin=1&stdout=1&tty=1"),
                                protocols=[rc.V5])
        await ws.send_bytes(rc.frame(rc.RESIZE, b'{"Width":91,"Height":33}'))
        await ws.send_bytes(rc.frame(rc.STDIN, b"echo hi-$((40+2)); stty size\n"))
        out = await _read_until(ws, b"33 91")
        assert b"hi-42" in out
        await ws.send_bytes(rc.frame(rc.STDIN, b"exit\n"))
        rest = await _collect(ws)  # the container ends the session
        assert json.loads(rest[rc.ERROR]) == rc.success_status()


async def test_attach_with_stdin_once(agent: tuple[TestServer, FakeRuntime],
                                      shims: Any) -> None:
    server, runtime = agent
    attempt = await _container(shims, "cat", ("sh", "-c", "cat; echo bye >&2"), runtime,
                               stdin=True, stdin_once=True)
    async with aiohttp.ClientSession() as s:
        watcher = await s.ws_connect(server.make_url("/attach/default/p/cat?stderr=1"),
                                     protocols=[rc.V5])
        ws = await s.ws_connect(server.make_url("/attach/default/p/cat?stdin=1&stdout=1"),
                                protocols=[rc.V5])
        await ws.send_bytes(rc.frame(rc.STDIN, b"line\n"))
        assert await _read_until(ws, b"line\n") == b"line\n"
        await ws.send_bytes(rc.frame(rc.CLOSE, bytes([rc.STDIN])))  # closes cat's stdin
        out = await _collect(watcher)
        assert out[rc.STDERR] == b"bye\n"  # only what this client asked for
        assert rc.STDOUT not in out
        await _collect(ws)
    assert await shims[0].wait_exit(attempt, 5)
    state = containers.read_attempt(attempt.path, 0)
    assert state is not None and state.exit_code == 0
    assert not (attempt.path / "attach.sock").exists()
    log = (attempt.path / "container.log").read_text()
    assert " stdout F line" in log and " stderr F bye" in log


async def test_attach_to_a_container_without_stdin_only_watches(
        agent: tuple[TestServer, FakeRuntime], shims: Any) -> None:
    server, runtime = agent
    await _container(shims, "ticker", (sys.executable, "-u", "-c",
                                       "import time\nwhile True:\n print('tick')\n "
                                       "time.sleep(0.05)"), runtime)
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(server.make_url("/attach/default/p/ticker?stdout=1&stdin=1"),
                                protocols=[rc.V5])
        await ws.send_bytes(rc.frame(rc.STDIN, b"ignored\n"))
        assert b"tick" in await _read_until(ws, b"tick\n")
        await ws.close()


async def test_the_first_attach_sees_what_was_written_before_it(
        agent: tuple[TestServer, FakeRuntime], shims: Any) -> None:
    # kubectl run -it starts the container before it can attach: the first client gets
    # the output so far (a kubelet would lose it); later clients only what follows
    server, runtime = agent
    attempt = await _container(shims, "early", ("sh", "-c", "echo early-output; cat"),
                               runtime, stdin=True)
    await _until(lambda: "early-output" in (attempt.path / "container.log").read_text())
    async with aiohttp.ClientSession() as s:
        first = await s.ws_connect(server.make_url("/attach/default/p/early?stdout=1"),
                                   protocols=[rc.V5])
        assert await _read_until(first, b"early-output\n") == b"early-output\n"
        # a real shim takes a connection at once (ACCEPTED), no waiting for the fallback
        started = time.monotonic()
        _, raw, pending = await attach.open_shim(attempt.path, False)
        assert pending == b"" and time.monotonic() - started < 1.0
        raw.close()
        second = await s.ws_connect(server.make_url("/attach/default/p/early?stdin=1&stdout=1"),
                                    protocols=[rc.V5])
        await second.send_bytes(rc.frame(rc.STDIN, b"later\n"))
        assert await _read_until(second, b"later\n") == b"later\n"  # no replay here
        assert await _read_until(first, b"later\n") == b"later\n"
        await first.close()
        await second.close()


async def test_a_command_the_agent_cannot_spawn(exec_server: TestServer) -> None:
    out = await _run(exec_server, _query("/nonexistent/svcnet-test-binary", stdout="1"))
    status = _status(out)
    assert status["reason"] == "InternalError"
    assert status["message"].startswith("Internal error occurred: error executing command "
                                        "in container: [Errno 2]")


async def test_a_connection_the_shim_never_took_is_a_container_that_exited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection left in the listen backlog of a shim whose container is exiting ends
    without ACCEPTED: that is "not running" (kubectl then shows the logs), not an attach
    that silently relays nothing."""
    import socket

    path = tmp_path / shimwire.SOCKET_NAME
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(4)
    opening = asyncio.create_task(attach.open_shim(tmp_path, False))
    await asyncio.sleep(0.2)  # connected, never accepted
    listener.close()
    with pytest.raises(OSError):
        await asyncio.wait_for(opening, 5)
    # a shim from before ACCEPTED existed: its first output frame is kept for the session
    path.unlink()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(4)
    opening = asyncio.create_task(attach.open_shim(tmp_path, True))
    conn, _ = await asyncio.to_thread(listener.accept)
    conn.sendall(shimwire.encode(shimwire.STDOUT, b"early\n"))
    reader, writer, pending = await asyncio.wait_for(opening, 5)
    assert pending + await reader.readexactly(len(b"early\n")) == \
        shimwire.encode(shimwire.STDOUT, b"early\n")
    assert shimwire.Decoder().feed(conn.recv(100)) == [(shimwire.OPEN, b"\x01")]
    writer.close()
    conn.close()
    # ...and one that says nothing is attached after a short wait
    monkeypatch.setattr(attach, "ACCEPT_WAIT_SECONDS", 0.2)
    opening = asyncio.create_task(attach.open_shim(tmp_path, False))
    conn, _ = await asyncio.to_thread(listener.accept)
    reader, writer, pending = await asyncio.wait_for(opening, 5)
    assert pending == b""
    writer.close()
    conn.close()
    listener.close()
