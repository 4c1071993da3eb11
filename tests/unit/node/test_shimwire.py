"""The agent <-> shim attach framing."""

from __future__ import annotations

import pytest

from svcnet.node import shimwire


def test_frames_round_trip_in_any_chunking() -> None:
    wire = shimwire.encode(shimwire.OPEN, b"\x01") + shimwire.encode(shimwire.STDIN, b"abc") \
        + shimwire.encode_resize(120, 40) + shimwire.encode(shimwire.CLOSE)
    dec = shimwire.Decoder()
    frames = []
    for i in range(len(wire)):
        frames += dec.feed(wire[i:i + 1])
    assert frames == [(shimwire.OPEN, b"\x01"), (shimwire.STDIN, b"abc"),
                      (shimwire.RESIZE, b"\x00\x78\x00\x28"), (shimwire.CLOSE, b"")]
    assert shimwire.decode_resize(frames[2][1]) == (120, 40)


def test_bad_frames() -> None:
    with pytest.raises(shimwire.WireError):
        shimwire.encode(shimwire.STDIN, b"\x00" * (shimwire.MAX_PAYLOAD + 1))
    with pytest.raises(shimwire.WireError):
        shimwire.Decoder().feed(b"\x00\xff\xff\xff\xff")
    with pytest.raises(shimwire.WireError):
        shimwire.decode_resize(b"\x00")
    assert shimwire.Decoder().feed(b"\x01\x00\x00") == []  # incomplete: wait for more
