"""`kubectl attach` (and `kubectl run -it`) on the agent: join a running container's own
stdin/stdout/stderr through its shim's attach socket (shimattach.py, shimwire.py).

The session translates between the client's channel protocol and the shim's frames: the
container's output (all of it on stdout for a TTY container) goes to the channels the
client asked for; the client's stdin, resizes and v5 close of stdin go to the shim. When
the container exits the shim closes the socket and the session ends with a Success status
(the kubelet reports no exit code for attach; kubectl run reads it from the Pod). When the
client goes away the socket is closed, which for a `stdinOnce` container closes its stdin.

The socket lives in the attempt's state directory, whose path can be longer than a unix
socket address allows, so it is reached through `/proc/self/fd/<dir fd>/attach.sock`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc
from svcnet.node import shimwire
from svcnet.node.exec import RESIZE_WAIT_SECONDS

log = logging.getLogger("svcnet.agent.attach")


#: How long to wait for the shim's ACCEPTED frame. A shim answers at once; one that says
#: nothing for this long predates the frame (started by an older agent): go on without it.
ACCEPT_WAIT_SECONDS = 2.0


async def connect(attempt_dir: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a container's attach socket; OSError if nobody listens (not running)."""
    dirfd = os.open(attempt_dir, os.O_PATH | os.O_DIRECTORY)
    try:
        return await asyncio.open_unix_connection(
            f"/proc/self/fd/{dirfd}/{shimwire.SOCKET_NAME}")
    finally:
        os.close(dirfd)


async def open_shim(attempt_dir: Path, uses_stdin: bool
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect, say OPEN, and wait for the shim to take the connection (ACCEPTED).

    Returns (reader, writer, bytes already read that belong to the session). Raises
    OSError when the container is not running: nobody listens, or the connection ends
    before ACCEPTED (it sat in the backlog of a shim whose container was exiting; the
    kubelet then answers "container not found" and kubectl falls back to the logs, where
    the output is, instead of attaching to nothing)."""
    reader, writer = await connect(attempt_dir)
    try:
        writer.write(shimwire.encode(shimwire.OPEN, bytes(
            (shimwire.OPEN_STDIN if uses_stdin else 0,))))
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readexactly(shimwire.HEADER_SIZE),
                                          ACCEPT_WAIT_SECONDS)
        except TimeoutError:
            return reader, writer, b""
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("the container exited before its shim took the "
                                       "attach connection") from None
        if head[0] == shimwire.ACCEPTED and shimwire.frame_size(head) == len(head):
            return reader, writer, b""
        return reader, writer, head  # an older shim's first output frame
    except BaseException:
        writer.close()
        raise


class AttachSession:
    """One attach over an accepted WebSocket and a connected shim socket."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str, opts: rc.StreamOptions,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 pending: bytes = b"") -> None:
        self.ws = ws
        self.pending = pending  # read from the shim by open_shim, not yet forwarded
        self.protocol = protocol
        self.opts = opts
        self.reader = reader
        self.writer = writer
        self.resized = asyncio.Event()

    async def _from_shim(self) -> None:
        decoder = shimwire.Decoder()
        data, self.pending = self.pending, b""
        while data or (data := await self.reader.read(65536)):
            for channel, payload in decoder.feed(data):
                if (channel == shimwire.STDOUT and self.opts.stdout) or \
                        (channel == shimwire.STDERR and self.opts.stderr):
                    await self.ws.send_bytes(rc.frame(channel, payload))
                elif channel == shimwire.STDERR and self.opts.tty and self.opts.stdout:
                    await self.ws.send_bytes(rc.frame(rc.STDOUT, payload))
            data = b""

    async def _from_client(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                channel, payload = rc.parse_frame(msg.data)
                if channel == rc.STDIN and self.opts.stdin and payload:
                    self.writer.write(shimwire.encode(shimwire.STDIN, payload))
                elif channel == rc.RESIZE:
                    for width, height in rc.parse_resize(payload):
                        self.writer.write(shimwire.encode_resize(width, height))
                    self.resized.set()
                elif channel == rc.CLOSE and rc.parse_close(payload) == rc.STDIN:
                    self.writer.write(shimwire.encode(shimwire.CLOSE))
                await self.writer.drain()
            except rc.ProtocolError as e:
                log.debug("attach: ignoring bad client message: %s", e)

    async def run(self) -> None:
        """Relay until either side ends (the shim connection comes from `open_shim`)."""
        shim = asyncio.create_task(self._from_shim())
        client = asyncio.create_task(self._from_client())
        try:
            await asyncio.wait({shim, client}, return_when=asyncio.FIRST_COMPLETED)
            if shim.done() and not client.done():  # the container ended the session
                if self.opts.tty:  # see exec.RESIZE_WAIT_SECONDS
                    try:
                        await asyncio.wait_for(self.resized.wait(), RESIZE_WAIT_SECONDS)
                    except TimeoutError:
                        pass
                client.cancel()  # stop reading first: a close racing a reader stalls
                await asyncio.gather(client, return_exceptions=True)
                payload = rc.error_payload(self.protocol, rc.success_status())
                if payload:
                    await self.ws.send_bytes(rc.frame(rc.ERROR, payload))
                await self.ws.close()
        except (ConnectionError, RuntimeError, OSError) as e:
            log.debug("attach ended: %s", e)
        finally:
            for t in (shim, client):
                t.cancel()
            await asyncio.gather(shim, client, return_exceptions=True)
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
