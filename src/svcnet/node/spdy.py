"""SPDY/3.1 framing, as much as `kubectl port-forward` needs (PURE: bytes in, frames out).

Why this exists: kubectl 1.32 speaks port-forward as SPDY/3.1 tunnelled through a WebSocket
(see api/remotecommand.py), and there is no well-kept SPDY library for Python (SPDY was
superseded by HTTP/2 in 2015 and the old Python packages are unmaintained), so svcnet
implements the small part it needs from the SPDY draft 3.1 specification:

* Frames. Control frames: a 16-bit word with the control bit and version 3, a 16-bit type,
  8 bits of flags, a 24-bit length, then the type's fields. Data frames: a 31-bit stream
  id, 8 bits of flags (0x01 FIN), a 24-bit length, the payload.
  Types used: SYN_STREAM (1), SYN_REPLY (2), RST_STREAM (3), SETTINGS (4), PING (6),
  GOAWAY (7), HEADERS (8), WINDOW_UPDATE (9).
* Header blocks: a 32-bit pair count, then per pair a 32-bit length + lowercase name and a
  32-bit length + value (several values joined by NUL). Each direction of a session
  compresses all its header blocks with ONE zlib stream that starts with the fixed
  SPDY/3 dictionary and is sync-flushed after each block, so the codec is stateful and
  frames must be encoded in the order they are sent.
* Not implemented: flow control (the Go peer kubectl uses, moby/spdystream, neither sends
  nor honours WINDOW_UPDATE), server push, CREDENTIAL frames. Unknown control frames are
  returned as `Unknown` for the caller to ignore.

The decoder is incremental: `feed()` any chunking of the byte stream and get whole frames.
Errors raise `SpdyError` (the session then ends with GOAWAY/close).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Union

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = \
    1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = (1 << 24) - 1
MAX_HEADER_BLOCK = 256 * 1024  # decompressed; a guard against zlib bombs

# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM = 1, 2, 3
CANCEL, INTERNAL_ERROR = 5, 6

Headers = dict[str, list[str]]


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (spec draft 3, section 2.6.10.1): the
    common header names and values, each with a 32-bit length prefix, then a run of
    status codes, status texts, dates and media types. 1423 bytes."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host "
        "if-match if-modified-since if-none-match if-range if-unmodified-since "
        "last-modified location max-forwards pragma proxy-authenticate proxy-authorization "
        "range referer retry-after server te trailer transfer-encoding upgrade user-agent "
        "vary via warning www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
              "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416"
            "417502504505203 Non-Authoritative Information204 No Content301 Moved "
            "Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 "
            "Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr "
            "May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, "
            "GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
            "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
            "deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


class SpdyError(Exception):
    """A malformed frame or header block (`stream_id` 0: the session as a whole)."""

    def __init__(self, message: str, stream_id: int = 0) -> None:
        super().__init__(message)
        self.stream_id = stream_id


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class Unknown:
    frame_type: int


Frame = Union[SynStream, SynReply, RstStream, Settings, Ping, GoAway, HeadersFrame,
              WindowUpdate, Data, Unknown]


# --- header blocks ---------------------------------------------------------------------------

def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed block. Names must be lowercase and non-empty (the Go reader
    rejects anything else)."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        if not name or name != name.lower():
            raise ValueError(f"SPDY header names must be lowercase and non-empty: {name!r}")
        value = "\x00".join(values).encode()
        out += [struct.pack(">I", len(name)), name.encode(), struct.pack(">I", len(value)),
                value]
    return b"".join(out)


def decode_header_block(raw: bytes, stream_id: int = 0) -> Headers:
    """Parse an uncompressed block; uppercase or duplicate names and truncation are errors."""
    def take(pos: int, n: int) -> tuple[bytes, int]:
        if pos + n > len(raw):
            raise SpdyError("truncated header block", stream_id)
        return raw[pos:pos + n], pos + n

    count_raw, pos = take(0, 4)
    count = struct.unpack(">I", count_raw)[0]
    headers: Headers = {}
    for _ in range(count):
        n_raw, pos = take(pos, 4)
        name_raw, pos = take(pos, struct.unpack(">I", n_raw)[0])
        v_raw, pos = take(pos, 4)
        value_raw, pos = take(pos, struct.unpack(">I", v_raw)[0])
        name = name_raw.decode("utf-8", "replace")
        if name != name.lower():
            raise SpdyError(f"header name {name!r} is not lowercase", stream_id)
        if name in headers:
            raise SpdyError(f"duplicate header {name!r}", stream_id)
        headers[name] = value_raw.decode("utf-8", "replace").split("\x00")
    if pos != len(raw):
        raise SpdyError("trailing bytes after header block", stream_id)
    return headers


class HeaderCompressor:
    """One direction's header compression stream."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                   zdict=DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """One direction's header decompression stream."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, block: bytes, stream_id: int = 0) -> Headers:
        try:
            raw = self._z.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise SpdyError(f"bad header compression: {e}", stream_id) from None
        if self._z.unconsumed_tail:
            raise SpdyError("header block too large", stream_id)
        return decode_header_block(raw, stream_id)


# --- encoding --------------------------------------------------------------------------------

def _control(frame_type: int, flags: int, body: bytes) -> bytes:
    if len(body) > MAX_LENGTH:
        raise ValueError("control frame too long")
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(body)) + body


def _sid(stream_id: int) -> bytes:
    if not 0 < stream_id < 1 << 31:
        raise ValueError(f"stream id {stream_id} out of range")
    return struct.pack(">I", stream_id)


@dataclass
class FrameEncoder:
    """Encodes frames for one direction of a session (owns that direction's header
    compression, so encode in sending order)."""

    compressor: HeaderCompressor = field(default_factory=HeaderCompressor)

    def syn_stream(self, stream_id: int, headers: Headers, *, fin: bool = False,
                   priority: int = 0) -> bytes:
        body = _sid(stream_id) + struct.pack(">IBB", 0, (priority & 7) << 5, 0) + \
            self.compressor.compress(headers)
        return _control(SYN_STREAM, FLAG_FIN if fin else 0, body)

    def syn_reply(self, stream_id: int, headers: Headers | None = None, *,
                  fin: bool = False) -> bytes:
        body = _sid(stream_id) + self.compressor.compress(headers or {})
        return _control(SYN_REPLY, FLAG_FIN if fin else 0, body)

    def headers(self, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
        body = _sid(stream_id) + self.compressor.compress(headers)
        return _control(HEADERS, FLAG_FIN if fin else 0, body)

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        return _control(RST_STREAM, 0, _sid(stream_id) + struct.pack(">I", status))

    @staticmethod
    def ping(ping_id: int) -> bytes:
        return _control(PING, 0, struct.pack(">I", ping_id))

    @staticmethod
    def goaway(last_good_stream_id: int, status: int = 0) -> bytes:
        return _control(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))

    @staticmethod
    def window_update(stream_id: int, delta: int) -> bytes:
        return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))

    @staticmethod
    def data(stream_id: int, data: bytes = b"", *, fin: bool = False) -> bytes:
        if len(data) > MAX_LENGTH:
            raise ValueError("data frame too long")
        return _sid(stream_id) + struct.pack(">I", ((FLAG_FIN if fin else 0) << 24)
                                             | len(data)) + data


# --- decoding --------------------------------------------------------------------------------

class FrameDecoder:
    """Turns the bytes of one direction into frames (owns its header decompression)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._headers = HeaderDecompressor()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack(">II", self._buf[:8])
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            body = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                version, frame_type = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frames.append(self._control(frame_type, flags, body))
            else:
                stream_id = word & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyError("data frame on stream 0")
                frames.append(Data(stream_id, body, bool(flags & FLAG_FIN)))
        return frames

    def _control(self, frame_type: int, flags: int, body: bytes) -> Frame:
        def need(n: int) -> None:
            if len(body) < n:
                raise SpdyError(f"control frame type {frame_type} too short")

        fin = bool(flags & FLAG_FIN)
        if frame_type == SYN_STREAM:
            need(10)
            sid, assoc = (v & 0x7FFFFFFF for v in struct.unpack(">II", body[:8]))
            if sid == 0:
                raise SpdyError("SYN_STREAM with stream id 0")
            return SynStream(sid, self._headers.decompress(body[10:], sid), assoc,
                             body[8] >> 5, fin, bool(flags & FLAG_UNIDIRECTIONAL))
        if frame_type in (SYN_REPLY, HEADERS):
            need(4)
            sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            if sid == 0:
                raise SpdyError("header frame with stream id 0")
            headers = self._headers.decompress(body[4:], sid)
            return SynReply(sid, headers, fin) if frame_type == SYN_REPLY \
                else HeadersFrame(sid, headers, fin)
        if frame_type == RST_STREAM:
            need(8)
            sid, status = struct.unpack(">II", body[:8])
            return RstStream(sid & 0x7FFFFFFF, status)
        if frame_type == SETTINGS:
            need(4)
            n = struct.unpack(">I", body[:4])[0]
            need(4 + 8 * n)
            entries = []
            for i in range(n):
                fid, value = struct.unpack(">II", body[4 + 8 * i:12 + 8 * i])
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return Settings(tuple(entries))
        if frame_type == PING:
            need(4)
            return Ping(struct.unpack(">I", body[:4])[0])
        if frame_type == GOAWAY:
            need(4)
            last = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            status = struct.unpack(">I", body[4:8])[0] if len(body) >= 8 else 0
            return GoAway(last, status)
        if frame_type == WINDOW_UPDATE:
            need(8)
            sid, delta = struct.unpack(">II", body[:8])
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return Unknown(frame_type)
