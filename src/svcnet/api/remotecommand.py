"""The streaming wire protocols of `pods/exec`, `pods/attach` and `pods/portforward` (PURE).

Facts (checked against kubectl v1.32.4 talking to a logging server, and client-go's
`tools/remotecommand` and `tools/portforward` at v0.32):

* exec/attach: kubectl opens a WebSocket (GET, `Sec-WebSocket-Protocol: v5.channel.k8s.io`
  and nothing else). Every binary message is one channel byte followed by payload:
  0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. v5 adds channel 255, "close": the payload
  is the number of the stream the sender is done with (kubectl sends `[255, 0]` when its
  stdin reaches EOF). The error channel carries one JSON `metav1.Status` (v4 and v5):
  `Success`, or `Failure` with reason `NonZeroExitCode` and a cause `{"reason":
  "ExitCode", "message": "<code>"}` (kubectl then prints `command terminated with exit
  code N` and exits N), or any other Failure whose message kubectl prints as the error.
  v1-v3 (`channel.k8s.io`, `v2.`, `v3.`) put plain error text there; v3 added resize.
  Resize payloads are JSON `{"Width": W, "Height": H}`. The server closes the WebSocket
  (normal closure) after the status; kubectl reads the error channel until then.
* If the upgrade is refused (any non-101 answer), kubectl retries with SPDY (POST,
  `Upgrade: SPDY/3.1`) and prints what THAT answer says: a Status body becomes `Error from
  server (<Reason>): <message>`. So errors found before the upgrade must be given to both.
* port-forward: kubectl 1.32 tunnels SPDY/3.1 through a WebSocket (subprotocol
  `SPDY/3.1+portforward.k8s.io`; binary messages carry raw SPDY bytes, no channel byte);
  the ports travel in SPDY stream headers (node/portforward.py, node/spdy.py). The plain
  WebSocket variant (`v4.channel.k8s.io`, used by the python client) takes `?ports=` and
  gives port i the channels 2i (data) and 2i+1 (error); the server starts both channels
  with the port number as two little-endian bytes.

Everything here is pure: framing, option parsing with the kubelet's rules and messages,
and the Status values.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5 only

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
#: exec/attach subprotocols served, newest first (base64 variants are not served).
EXEC_PROTOCOLS = (V5, V4, V3, V2, V1)
SPDY_PORTFORWARD = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_PROTOCOLS = (SPDY_PORTFORWARD, V4, V1)

NON_ZERO_EXIT = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"

_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool


class ProtocolError(ValueError):
    """A message that does not follow the channel protocol."""


def parse_bool(value: str | None) -> bool:
    """A query flag as the API server decodes it (strconv.ParseBool; absent = false)."""
    return value in _TRUE


def frame(channel: int, data: bytes = b"") -> bytes:
    """One binary message: the channel byte, then the payload."""
    if not 0 <= channel <= 255:
        raise ValueError(f"channel {channel} out of range")
    return bytes((channel,)) + data


def parse_frame(message: bytes) -> tuple[int, bytes]:
    """(channel, payload) of a binary message; an empty message is a protocol error."""
    if not message:
        raise ProtocolError("empty message: no channel byte")
    return message[0], bytes(message[1:])


def parse_close(payload: bytes) -> int:
    """The stream a v5 close signal names."""
    if len(payload) != 1:
        raise ProtocolError(f"close signal must name exactly one stream, got {len(payload)} "
                            "bytes")
    return payload[0]


def parse_resize(payload: bytes) -> list[tuple[int, int]]:
    """Terminal sizes (width, height) in one resize message. kubectl writes one JSON object
    per message; several newline-separated objects are accepted too."""
    sizes: list[tuple[int, int]] = []
    text = payload.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ProtocolError(f"bad resize message: {e.msg}") from None
        if not isinstance(obj, dict):
            raise ProtocolError("bad resize message: not a JSON object")
        width, height = obj.get("Width", 0), obj.get("Height", 0)
        for v in (width, height):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFF:
                raise ProtocolError(f"bad resize message: size {v!r} is not a uint16")
        sizes.append((width, height))
    return sizes


def has_resize(protocol: str) -> bool:
    return protocol in (V5, V4, V3)


def status_on_error_channel(protocol: str) -> bool:
    """v4 and later send a JSON Status; earlier protocols send plain error text."""
    return protocol in (V5, V4)


# --- Status values -------------------------------------------------------------------------

def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: Sequence[str] = ()) -> dict[str, Any]:
    """The Status for a command that exited non-zero (as the kubelet writes it)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": NON_ZERO_EXIT,
            "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]}}


def internal_error_status(message: str) -> dict[str, Any]:
    """An InternalError Status (`Internal error occurred: <message>`)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]},
            "code": 500}


def error_payload(protocol: str, status: Mapping[str, Any]) -> bytes:
    """What goes on the error channel for `status` under `protocol` (b"" = nothing)."""
    if status_on_error_channel(protocol):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return b""
    return str(status.get("message", "")).encode()


def exit_code_of(status: Mapping[str, Any]) -> int | None:
    """The exit code a v4/v5 client derives from a Status: 0 for Success, N for a
    NonZeroExitCode Failure, None for any other failure."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") != NON_ZERO_EXIT:
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == EXIT_CODE_CAUSE:
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


# --- options -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamOptions:
    """What a client asked exec/attach for (PodExecOptions / PodAttachOptions)."""

    container: str = ""
    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False

    def query(self) -> list[tuple[str, str]]:
        """The query the kubelet is sent (flags as "1", as kube-apiserver sends them)."""
        out = [("command", c) for c in self.command]
        if self.container:
            out.append(("container", self.container))
        for name in ("stdin", "stdout", "stderr", "tty"):
            if getattr(self, name):
                out.append((name, "1"))
        return out


def parse_stream_options(query: Mapping[str, Sequence[str]]) -> StreamOptions:
    """Options from a query (each name mapped to all its values)."""
    def one(name: str) -> str:
        values = query.get(name) or []
        return values[-1] if values else ""
    return StreamOptions(container=one("container"), command=tuple(query.get("command") or ()),
                         stdin=parse_bool(one("stdin")), stdout=parse_bool(one("stdout")),
                         stderr=parse_bool(one("stderr")), tty=parse_bool(one("tty")))


def check_stream_options(opts: StreamOptions, *, exec_: bool) -> StreamOptions:
    """The kubelet's rules: with a TTY stderr is dropped (it is merged into stdout); at
    least one stream; exec needs a command. Raises ValueError with the kubelet's text."""
    if opts.tty and opts.stderr:
        opts = StreamOptions(opts.container, opts.command, opts.stdin, opts.stdout, False,
                             opts.tty)
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
    if exec_ and not opts.command:
        raise ValueError("you must specify at least one command for the container")
    return opts


def parse_ports(values: Sequence[str]) -> tuple[int, ...]:
    """`ports` of a WebSocket port-forward (repeated and/or comma separated), with the
    kubelet's messages for bad input."""
    raw = [p.strip() for v in values for p in v.split(",") if p.strip()]
    if not raw:
        raise ValueError('query parameter "port" is required')
    ports = []
    for p in raw:
        if not p.isdigit() or int(p) > 0xFFFF:
            raise ValueError(f'unable to parse "{p}" as a port')
        if int(p) < 1:
            raise ValueError(f'port "{p}" must be > 0')
        ports.append(int(p))
    return tuple(ports)


def port_prefix(port: int) -> bytes:
    """The two bytes that open each channel of a WebSocket port-forward."""
    return struct.pack("<H", port)


def portforward_channels(index: int) -> tuple[int, int]:
    """(data, error) channel numbers of the index-th port of a WebSocket port-forward."""
    return 2 * index, 2 * index + 1
