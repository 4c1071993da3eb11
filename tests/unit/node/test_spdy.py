"""SPDY/3.1 framing: the dictionary, header blocks, every frame kind, bad input."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from svcnet.node import spdy


def test_dictionary_is_the_spdy3_one() -> None:
    # 1423 bytes; the digest pins the exact bytes the Go peer (moby/spdystream) uses
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == \
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options")
    assert spdy.DICTIONARY.endswith(b"enq=0.")


def test_header_block_round_trip_and_rules() -> None:
    headers = {"streamtype": ["data"], "port": ["8080"], "multi": ["a", "b"]}
    raw = spdy.encode_header_block(headers)
    assert raw[:4] == struct.pack(">I", 3)
    assert spdy.decode_header_block(raw) == headers
    assert spdy.decode_header_block(spdy.encode_header_block({})) == {}
    with pytest.raises(ValueError):
        spdy.encode_header_block({"Port": ["1"]})
    with pytest.raises(ValueError):
        spdy.encode_header_block({"": ["1"]})


def _block(*pairs: tuple[bytes, bytes]) -> bytes:
    out = struct.pack(">I", len(pairs))
    for name, value in pairs:
        out += struct.pack(">I", len(name)) + name + struct.pack(">I", len(value)) + value
    return out


@pytest.mark.parametrize("raw, message", [
    (_block((b"Port", b"1")), "not lowercase"),
    (_block((b"a", b"1"), (b"a", b"2")), "duplicate"),
    (_block((b"a", b"1"))[:-1], "truncated"),
    (_block((b"a", b"1")) + b"x", "trailing"),
    (b"\x00\x00", "truncated"),
])
def test_bad_header_blocks(raw: bytes, message: str) -> None:
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.decode_header_block(raw, 5)


def test_header_compression_is_one_stream_per_direction() -> None:
    comp, decomp = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    first = comp.compress({"streamtype": ["error"], "port": ["80"]})
    second = comp.compress({"streamtype": ["data"], "port": ["80"]})
    assert decomp.decompress(first) == {"streamtype": ["error"], "port": ["80"]}
    assert decomp.decompress(second) == {"streamtype": ["data"], "port": ["80"]}
    # the second block depends on the first: alone it cannot be read
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(second)


def test_header_block_made_by_plain_zlib_with_the_dictionary() -> None:
    # what any SPDY/3 peer does: one zlib stream, preset dictionary, sync flush per block
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    block = z.compress(_block((b"requestid", b"0"))) + z.flush(zlib.Z_SYNC_FLUSH)
    assert spdy.HeaderDecompressor().decompress(block) == {"requestid": ["0"]}


def test_zlib_bomb_and_garbage_are_refused() -> None:
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    huge = _block((b"a", b"x" * (spdy.MAX_HEADER_BLOCK + 10)))
    with pytest.raises(spdy.SpdyError, match="too large"):
        spdy.HeaderDecompressor().decompress(z.compress(huge) + z.flush(zlib.Z_SYNC_FLUSH))
    with pytest.raises(spdy.SpdyError, match="compression"):
        spdy.HeaderDecompressor().decompress(b"\x00garbage")


def test_every_frame_round_trips_through_the_decoder() -> None:
    enc, dec = spdy.FrameEncoder(), spdy.FrameDecoder()
    wire = b"".join([
        enc.syn_stream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]},
                       priority=3),
        enc.syn_reply(1, fin=True),
        enc.headers(1, {"x": ["y"]}),
        enc.rst_stream(3, spdy.CANCEL),
        enc.ping(7),
        enc.goaway(5, 1),
        enc.window_update(1, 4096),
        enc.data(1, b"payload"),
        enc.data(1, fin=True),
    ])
    frames = dec.feed(wire)
    assert frames == [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]},
                       0, 3),
        spdy.SynReply(1, {}, True),
        spdy.HeadersFrame(1, {"x": ["y"]}),
        spdy.RstStream(3, spdy.CANCEL),
        spdy.Ping(7),
        spdy.GoAway(5, 1),
        spdy.WindowUpdate(1, 4096),
        spdy.Data(1, b"payload"),
        spdy.Data(1, b"", True),
    ]


def test_decoder_takes_any_chunking() -> None:
    enc = spdy.FrameEncoder()
    wire = enc.syn_stream(1, {"a": ["b"]}) + enc.data(1, b"x" * 1000) + enc.ping(1)
    dec = spdy.FrameDecoder()
    frames = []
    for i in range(len(wire)):
        frames += dec.feed(wire[i:i + 1])
    assert [type(f) for f in frames] == [spdy.SynStream, spdy.Data, spdy.Ping]
    assert frames[1] == spdy.Data(1, b"x" * 1000)


def test_settings_and_unknown_frames() -> None:
    body = struct.pack(">I", 2) + struct.pack(">II", (1 << 24) | 4, 100) + \
        struct.pack(">II", 7, 65536)
    raw = struct.pack(">HHI", 0x8003, spdy.SETTINGS, len(body)) + body
    assert spdy.FrameDecoder().feed(raw) == [spdy.Settings(((1, 4, 100), (0, 7, 65536)))]
    raw = struct.pack(">HHI", 0x8003, 10, 4) + b"\x00\x00\x00\x01"  # CREDENTIAL etc.
    assert spdy.FrameDecoder().feed(raw) == [spdy.Unknown(10)]


@pytest.mark.parametrize("raw, message", [
    (struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\x00\x00\x00\x01", "version 2"),
    (struct.pack(">II", 0, 1) + b"x", "stream 0"),
    (struct.pack(">HHI", 0x8003, spdy.PING, 2) + b"\x00\x01", "too short"),
    (struct.pack(">HHI", 0x8003, spdy.RST_STREAM, 4) + b"\x00\x00\x00\x01", "too short"),
    (struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 10) + b"\x00" * 10, "stream id 0"),
    (struct.pack(">HHI", 0x8003, spdy.SYN_REPLY, 4) + b"\x00" * 4, "stream id 0"),
    (struct.pack(">HHI", 0x8003, spdy.SETTINGS, 4) + struct.pack(">I", 3), "too short"),
])
def test_bad_frames(raw: bytes, message: str) -> None:
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.FrameDecoder().feed(raw)


def test_encoder_refuses_impossible_frames() -> None:
    enc = spdy.FrameEncoder()
    with pytest.raises(ValueError):
        enc.data(0, b"x")
    with pytest.raises(ValueError):
        enc.data(1 << 31, b"x")
    with pytest.raises(ValueError):
        enc.data(1, b"\x00" * (spdy.MAX_LENGTH + 1))
    with pytest.raises(ValueError):
        enc.syn_reply(0)


def test_wire_layout_of_a_data_frame_and_a_syn_reply() -> None:
    assert spdy.FrameEncoder.data(3, b"ab", fin=True) == b"\x00\x00\x00\x03\x01\x00\x00\x02ab"
    reply = spdy.FrameEncoder().syn_reply(1)
    assert reply[:4] == b"\x80\x03\x00\x02"  # control bit, version 3, SYN_REPLY
    assert struct.unpack(">I", reply[4:8])[0] == len(reply) - 8
    assert reply[8:12] == b"\x00\x00\x00\x01"
