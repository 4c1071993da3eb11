"""Running one probe (the I/O edge of probing; the schedule lives in probe_state.py).

Like the kubelet, httpGet and tcpSocket probes run from the agent itself, i.e. from the
node's network namespace, against the pod IP (or the probe's `host`): that is the path a
Service's traffic takes too, so a probe that passes means the pod is reachable from its
node. Exec probes run inside the container: as root, `nsenter --target <container pid>
--net --mount --uts` enters exactly the namespaces of the running process (its network,
the mount namespace holding the pod's /etc/resolv.conf and /etc/hosts, its hostname);
without root, the sandbox's exec prefix is the best available approximation. The probe
command gets the container's environment and working directory, as `kubectl exec` would.

Every probe is bounded by `timeoutSeconds`; a timeout is a failure (kubelet ≥ 1.20). The
outcome carries the message the kubelet would put in its `Unhealthy` event.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import ssl
from dataclasses import dataclass

from svcnet.node.probe_state import ExecAction, HTTPGetAction, ProbeSpec, TCPSocketAction
from svcnet.node.shim import DEFAULT_PATH

MAX_OUTPUT = 10 * 1024  # the kubelet keeps at most 10 KiB of probe output
USER_AGENT = "kube-probe/1.32"


@dataclass(frozen=True)
class ProbeOutcome:
    """Pass or fail, with the kubelet-style reason for a failure."""

    success: bool
    message: str = ""


@dataclass(frozen=True)
class ExecContext:
    """Where an exec probe runs: the container's main pid (0 if unknown), the sandbox's
    exec prefix, and the container's env and working directory."""

    pid: int
    prefix: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""


def exec_argv(command: tuple[str, ...], ctx: ExecContext, *, as_root: bool) -> list[str]:
    """The argv that runs `command` inside the container (see the module docstring)."""
    if as_root and ctx.pid:
        return ["nsenter", f"--target={ctx.pid}", "--net", "--mount", "--uts",
                f"--wd={ctx.workdir or '/'}", "--", *command]
    return [*ctx.prefix, *command]


def _reason(exc: OSError) -> str:
    """Go-style lowercase reason ("connection refused"): asyncio's own strerror for
    connect failures is a sentence naming the address, so prefer the errno's text."""
    return (os.strerror(exc.errno) if exc.errno else str(exc)).lower()


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def http_get(action: HTTPGetAction, pod_ip: str, timeout: float) -> ProbeOutcome:
    """One HTTP GET; 200–399 passes. HTTPS skips certificate checks, as the kubelet does."""
    if isinstance(action.port, str):
        return ProbeOutcome(False, f"unable to find named port {action.port!r}")
    host = action.host or pod_ip
    url = f"{action.scheme.lower()}://{_host_port(host, action.port)}{action.path}"
    headers = {"Host": _host_port(host, action.port), "User-Agent": USER_AGENT,
               "Accept": "*/*"}
    for name, value in action.headers:
        headers[name.title() if name.lower() in ("host", "user-agent", "accept") else name] \
            = value
    headers["Connection"] = "close"
    request = f"GET {action.path or '/'} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    context = None
    if action.scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, action.port, ssl=context)
            writer.write(request.encode())
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return ProbeOutcome(False, f'Get "{url}": context deadline exceeded '
                                   "(Client.Timeout exceeded while awaiting headers)")
    except OSError as exc:
        return ProbeOutcome(False, f'Get "{url}": dial tcp {_host_port(host, action.port)}: '
                                   f"connect: {_reason(exc)}")
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return ProbeOutcome(False, f'Get "{url}": malformed HTTP response {status_line[:80]!r}')
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeOutcome(True)
    return ProbeOutcome(False, f"HTTP probe failed with statuscode: {code}")


async def tcp_socket(action: TCPSocketAction, pod_ip: str, timeout: float) -> ProbeOutcome:
    """A TCP connect; passes once the handshake completes."""
    if isinstance(action.port, str):
        return ProbeOutcome(False, f"unable to find named port {action.port!r}")
    host = action.host or pod_ip
    target = _host_port(host, action.port)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, action.port)
    except TimeoutError:
        return ProbeOutcome(False, f"dial tcp {target}: i/o timeout")
    except OSError as exc:
        return ProbeOutcome(False, f"dial tcp {target}: connect: "
                                   f"{_reason(exc)}")
    writer.close()
    return ProbeOutcome(True)


async def exec_command(action: ExecAction, ctx: ExecContext, timeout: float) -> ProbeOutcome:
    """Run the probe command in the container; exit status 0 passes. On timeout the whole
    process group of the probe is killed so nothing it started lingers."""
    if not action.command:
        return ProbeOutcome(False, "exec probe has no command")
    env = dict(ctx.env)
    env.setdefault("PATH", DEFAULT_PATH)
    argv = exec_argv(action.command, ctx, as_root=os.geteuid() == 0)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True,
            cwd=ctx.workdir if ctx.workdir and os.path.isdir(ctx.workdir) else "/")
    except OSError as exc:
        return ProbeOutcome(False, f"exec probe failed to start: {exc}")
    try:
        async with asyncio.timeout(timeout):
            output = (await proc.communicate())[0][:MAX_OUTPUT]
    except TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        return ProbeOutcome(False, f"command {shlex.join(action.command)!r} timed out")
    if proc.returncode == 0:
        return ProbeOutcome(True)
    text = output.decode(errors="replace").strip()
    return ProbeOutcome(False, text or f"command {shlex.join(action.command)!r} exited with "
                                       f"{proc.returncode}")


async def run_probe(spec: ProbeSpec, *, pod_ip: str, exec_ctx: ExecContext) -> ProbeOutcome:
    """Run `spec` once, bounded by its timeout."""
    action = spec.action
    if isinstance(action, HTTPGetAction):
        return await http_get(action, pod_ip, spec.timeout)
    if isinstance(action, TCPSocketAction):
        return await tcp_socket(action, pod_ip, spec.timeout)
    return await exec_command(action, exec_ctx, spec.timeout)
