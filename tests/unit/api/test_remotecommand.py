"""The exec/attach/port-forward channel protocol: framing, options, Status values."""

from __future__ import annotations

import json

import pytest

from svcnet.api import remotecommand as rc


def test_frame_round_trip_and_bad_frames() -> None:
    assert rc.frame(rc.STDOUT, b"hi") == b"\x01hi"
    assert rc.parse_frame(b"\x00abc") == (0, b"abc")
    assert rc.parse_frame(b"\x03") == (3, b"")
    with pytest.raises(rc.ProtocolError):
        rc.parse_frame(b"")
    with pytest.raises(ValueError):
        rc.frame(256)
    with pytest.raises(ValueError):
        rc.frame(-1)


def test_close_signal_names_one_stream() -> None:
    assert rc.parse_close(b"\x00") == rc.STDIN
    for bad in (b"", b"\x00\x01"):
        with pytest.raises(rc.ProtocolError):
            rc.parse_close(bad)


def test_resize_messages() -> None:
    assert rc.parse_resize(b'{"Width":80,"Height":24}') == [(80, 24)]
    assert rc.parse_resize(b'{"Width":1,"Height":2}\n{"Width":3,"Height":4}\n') == \
        [(1, 2), (3, 4)]
    assert rc.parse_resize(b"") == []
    assert rc.parse_resize(b'{"Height":9}') == [(0, 9)]
    for bad in (b"{", b"[1,2]", b'{"Width":-1,"Height":1}', b'{"Width":70000,"Height":1}',
                b'{"Width":"80","Height":1}', b'{"Width":true,"Height":1}', b"nonsense"):
        with pytest.raises(rc.ProtocolError):
            rc.parse_resize(bad)


def test_error_channel_payload_per_protocol() -> None:
    failure = rc.exit_status(3, ["sh", "-c", "exit 3"])
    assert json.loads(rc.error_payload(rc.V5, failure)) == failure
    assert json.loads(rc.error_payload(rc.V4, rc.success_status())) == \
        {"metadata": {}, "status": "Success"}
    # before v4 the error channel carried text, and nothing on success
    assert rc.error_payload(rc.V3, rc.success_status()) == b""
    assert rc.error_payload(rc.V1, failure) == failure["message"].encode()


def test_exit_status_is_what_kubectl_decodes() -> None:
    st = rc.exit_status(3, ["sh", "-c", "exit 3"])
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert st["message"].startswith("command terminated with non-zero exit code: ")
    assert rc.exit_code_of(st) == 3
    assert rc.exit_code_of(rc.success_status()) == 0
    assert rc.exit_code_of(rc.internal_error_status("boom")) is None
    assert rc.exit_code_of({"status": "Failure", "reason": "NonZeroExitCode",
                            "details": {"causes": [{"reason": "ExitCode", "message": "x"}]}}) \
        is None
    assert rc.exit_code_of({"status": "Failure", "reason": "NonZeroExitCode"}) is None


def test_internal_error_status() -> None:
    st = rc.internal_error_status('unable to upgrade connection: container not found ("c")')
    assert st["message"] == ('Internal error occurred: unable to upgrade connection: '
                             'container not found ("c")')
    assert st["reason"] == "InternalError" and st["code"] == 500


def test_parse_bool_is_go_parse_bool() -> None:
    for yes in ("1", "t", "T", "true", "TRUE", "True"):
        assert rc.parse_bool(yes)
    for no in (None, "", "0", "false", "yes", "on", "tRuE"):
        assert not rc.parse_bool(no)


def test_stream_options_from_query_and_back() -> None:
    opts = rc.parse_stream_options({"command": ["sh", "-c", "echo hi"], "container": ["c"],
                                    "stdin": ["true"], "stdout": ["1"], "tty": ["false"]})
    assert opts == rc.StreamOptions("c", ("sh", "-c", "echo hi"), True, True, False, False)
    assert opts.query() == [("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                            ("container", "c"), ("stdin", "1"), ("stdout", "1")]
    assert rc.parse_stream_options({}) == rc.StreamOptions()


def test_kubelet_rules_for_stream_options() -> None:
    tty = rc.check_stream_options(rc.StreamOptions("c", ("sh",), True, True, True, True),
                                  exec_=True)
    assert tty.stderr is False  # merged into stdout by the terminal
    with pytest.raises(ValueError, match="at least 1 of stdin, stdout, stderr"):
        rc.check_stream_options(rc.StreamOptions("c", ("ls",)), exec_=True)
    with pytest.raises(ValueError, match="at least one command"):
        rc.check_stream_options(rc.StreamOptions("c", (), stdout=True), exec_=True)
    assert rc.check_stream_options(rc.StreamOptions("c", (), stdout=True), exec_=False)


def test_ports() -> None:
    assert rc.parse_ports(["8080"]) == (8080,)
    assert rc.parse_ports(["80,443", "9000"]) == (80, 443, 9000)
    with pytest.raises(ValueError, match='"port" is required'):
        rc.parse_ports([])
    with pytest.raises(ValueError, match='unable to parse "http"'):
        rc.parse_ports(["http"])
    with pytest.raises(ValueError, match='unable to parse "70000"'):
        rc.parse_ports(["70000"])
    with pytest.raises(ValueError, match='port "0" must be > 0'):
        rc.parse_ports(["0"])
    assert rc.port_prefix(8080) == b"\x90\x1f"
    assert rc.portforward_channels(0) == (0, 1) and rc.portforward_channels(2) == (4, 5)


def test_protocol_capabilities() -> None:
    assert rc.EXEC_PROTOCOLS[0] == "v5.channel.k8s.io"
    assert rc.has_resize(rc.V3) and not rc.has_resize(rc.V2)
    assert rc.status_on_error_channel(rc.V4) and not rc.status_on_error_channel(rc.V3)
