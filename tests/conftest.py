"""Shared fixtures: a real `svcnet server` process, kubectl bound to it, and an in-process
server for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import yaml

from svcnet.ports import free_loopback_port

# Processes the tests start (svcnet up starts its server and agents with cwd "/") inherit
# PYTHONPATH; a relative entry such as the documented `PYTHONPATH=src` would then point
# nowhere and they would silently import another installed copy of svcnet.
if os.environ.get("PYTHONPATH"):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)


def free_port() -> int:
    """A loopback port for a test server (see svcnet.ports: not an ephemeral one)."""
    return free_loopback_port()


@dataclass
class ServerProcess:
    """A `svcnet server` child process on a loopback port with its own data dir."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[str] | None = None
    ready_line: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def token(self) -> str:
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        return str(cfg["users"][0]["user"]["token"])

    def start(self, *extra: str, timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "svcnet.cli.main", "server", "--data-dir",
               str(self.data_dir), "--listen", f"127.0.0.1:{self.port}", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.log.append(line)
            if "svcnet server ready" in line:
                self.ready_line = line
                # keep reading, or the server blocks once the pipe buffer is full
                threading.Thread(target=self._drain, args=(self.proc.stdout,),
                                 daemon=True).start()
                return
        self.stop()
        raise RuntimeError(f"server did not start: {''.join(self.log[-20:])}")

    def _drain(self, stream: "object") -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.log.append(line)
            del self.log[:-500]

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode
        self.proc = None
        return rc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("srv") / "data", free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class Kubectl:
    """Runs the real kubectl against a server, with a private discovery cache."""

    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir",
               str(self.cache_dir), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n"
                                 f"{res.stdout}\n{res.stderr}")
        return res

    def __call__(self, *args: str, **kw: object) -> str:
        return self.run(*args, **kw).stdout  # type: ignore[arg-type]


def kubectl_for(srv: ServerProcess, tmp: Path) -> Kubectl:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(srv.kubeconfig, tmp / "kube-cache")


@pytest.fixture
def kubectl(shared_server: ServerProcess, tmp_path: Path) -> Kubectl:
    return kubectl_for(shared_server, tmp_path)


# --- in-process server (integration tier) ---------------------------------------------------

@dataclass
class InProcess:
    """An ApiServer on an aiohttp test server (plain HTTP) with an admin token."""

    client: object  # aiohttp.test_utils.TestClient
    token: str
    api: object  # ApiServer

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[InProcess]:
    from aiohttp.test_utils import TestClient, TestServer

    from svcnet.apiserver.auth import TokenFile
    from svcnet.apiserver.server import ApiServer
    from svcnet.store.factory import open_store

    tokens = TokenFile(tmp_path / "tokens.json")
    token = tokens.admin_token()
    store = await open_store("sqlite", str(tmp_path))
    api = ApiServer(store, tokens, server_address="127.0.0.1:0")
    client = TestClient(TestServer(api.app()))
    await client.start_server()
    try:
        yield InProcess(client, token, api)
    finally:
        await client.close()


def pytest_report_header(config: pytest.Config) -> str:
    return f"svcnet tests; root={os.geteuid() == 0}; kubectl={shutil.which('kubectl')}"


class RunningControllers:
    """Async context manager: the given controller classes over the in-process registry."""

    def __init__(self, inproc: InProcess, classes: list[object], workers: int = 2) -> None:
        from svcnet.client.local import LocalClient
        from svcnet.controllers.manager import ControllerManager
        self.client = LocalClient(inproc.api.registry)  # type: ignore[attr-defined]
        self.manager = ControllerManager(self.client, classes, workers)  # type: ignore[arg-type]
        self._task: object = None

    async def __aenter__(self) -> "RunningControllers":
        import asyncio
        self._task = asyncio.create_task(self.manager.run())
        await asyncio.wait_for(self.manager.started.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        import asyncio
        task = self._task
        assert isinstance(task, asyncio.Task)
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass


async def eventually(check: "object", timeout: float = 5.0, interval: float = 0.05) -> None:
    """Await until `check()` (sync or async) returns truthy without raising; re-raise the
    last AssertionError after `timeout`."""
    import asyncio
    import inspect
    import time
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            res = check()  # type: ignore[operator]
            if inspect.isawaitable(res):
                res = await res
            if res is not False:
                return
        except AssertionError as e:
            last = e
        await asyncio.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError("condition not met in time")


def pids_mentioning(text: str, *, live: bool = True) -> list[int]:
    """Pids of processes (other than this one) whose command line contains `text`;
    `live=False` counts zombies too (a process nobody reaped is a leak as well)."""
    from svcnet.node.shim import proc_start_ticks
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and (not live or proc_start_ticks(int(entry.name)) is not None):
            found.append(int(entry.name))
    return found


def wait_for(check: "object", timeout: float = 20.0, what: str = "",
             interval: float = 0.2) -> "object":
    """Poll `check()` until it returns something truthy (returned), or fail naming `what`
    and the last value seen. For tests driving real processes from synchronous code."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()  # type: ignore[operator]
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: "pytest.CallInfo[None]"
                              ) -> Iterator[None]:
    """When a test fails, every svcnet server and agent this run started prints its thread
    stacks to its log (SIGUSR1, cli/main.py) while the state that failed still exists; the
    e2e clusters keep their logs in the test's tmp dir (clusterkit.running_cluster)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    factory = getattr(item.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = str(factory.getbasetemp())
    signalled = False
    for pid in pids_mentioning(base):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"svcnet.cli.main" in cmd and (b"server" in cmd or b"agent" in cmd):
            try:
                os.kill(pid, signal.SIGUSR1)
                signalled = True
            except OSError:
                pass
    if signalled:
        time.sleep(0.3)  # let them write before the fixtures tear the cluster down
