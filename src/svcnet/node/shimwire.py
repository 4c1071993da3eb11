"""The attach socket's framing between the agent and a container's shim (PURE, stdlib only:
the shim imports it, and the shim must start fast).

Every shim listens on `<attempt dir>/attach.sock` while its container runs; `kubectl attach`
(through the agent) connects there. Both directions carry frames of a channel byte, a
32-bit big-endian length and the payload. Channel numbers follow the Kubernetes stream
channels where they mean the same thing:

    agent -> shim   OPEN (6, first frame; payload: 1 byte of flags, bit 0 = uses stdin),
                    STDIN (0), RESIZE (4; payload: width, height as two uint16),
                    CLOSE (255; the client is done with stdin)
    shim -> agent   ACCEPTED (7, first frame, empty: the shim took this connection),
                    STDOUT (1), STDERR (2) (with a TTY all output is STDOUT)

The shim closes the connection when its container has exited and its output is drained;
that is the agent's signal to end the attach session. A connection that ends before
ACCEPTED was never taken: the container exited while it waited in the listen backlog.
"""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, RESIZE, OPEN, ACCEPTED, CLOSE = 0, 1, 2, 4, 6, 7, 255
OPEN_STDIN = 0x01
MAX_PAYLOAD = 1 << 20
SOCKET_NAME = "attach.sock"
_HEAD = struct.Struct(">BI")
HEADER_SIZE = _HEAD.size


class WireError(ValueError):
    """A frame that breaks the format (the connection is then dropped)."""


def encode(channel: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise WireError(f"frame of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return _HEAD.pack(channel, len(payload)) + payload


def encode_resize(width: int, height: int) -> bytes:
    return encode(RESIZE, struct.pack(">HH", width & 0xFFFF, height & 0xFFFF))


def decode_resize(payload: bytes) -> tuple[int, int]:
    if len(payload) != 4:
        raise WireError("resize payload must be 4 bytes")
    width, height = struct.unpack(">HH", payload)
    return width, height


def frame_size(buf: bytes | bytearray) -> int:
    """The encoded size of the frame at the start of `buf` (which must hold its header)."""
    _, length = _HEAD.unpack_from(buf)
    return int(_HEAD.size + length)


class Decoder:
    """Incremental frame decoder: `feed` any chunking, get whole (channel, payload) frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= _HEAD.size:
            channel, length = _HEAD.unpack_from(self._buf)
            if length > MAX_PAYLOAD:
                raise WireError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
            end = _HEAD.size + length
            if len(self._buf) < end:
                break
            out.append((channel, bytes(self._buf[_HEAD.size:end])))
            del self._buf[:end]
        return out
