"""Restart, SIGKILL and bad input against a real server process (issue 2, acceptance 4-6)."""

from __future__ import annotations

import json
import signal
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from conftest import ServerProcess

pytestmark = pytest.mark.e2e


class Http:
    """A tiny HTTPS client with the admin token, verifying the server's CA."""

    def __init__(self, srv: ServerProcess) -> None:
        self.base = srv.url
        self.token = srv.token
        self.ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))

    def call(self, method: str, path: str, body: Any = None, *,
             content_type: str = "application/json", raw: bytes | None = None,
             token: str | None = None, timeout: float = 10) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def _svc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


SVCS = "/api/v1/namespaces/default/services"


def test_restart_keeps_objects_and_revisions(server: ServerProcess) -> None:
    http = Http(server)
    for i in range(20):
        assert http.call("POST", SVCS, _svc(f"s{i}"))[0] == 201
    code, lst = http.call("GET", SVCS)
    rv_before = int(lst["metadata"]["resourceVersion"])
    server.stop()
    server.start()
    http = Http(server)
    code, lst = http.call("GET", SVCS)
    names = sorted(i["metadata"]["name"] for i in lst["items"])
    assert names == sorted([f"s{i}" for i in range(20)] + ["kubernetes"])
    assert int(lst["metadata"]["resourceVersion"]) >= rv_before
    code, created = http.call("POST", SVCS, _svc("after"))
    assert int(created["metadata"]["resourceVersion"]) > rv_before
    # a watch resumed from the old resourceVersion continues with what happened since
    req = urllib.request.Request(f"{server.url}{SVCS}?watch=true&resourceVersion={rv_before}"
                                 f"&timeoutSeconds=2")
    req.add_header("Authorization", f"Bearer {http.token}")
    with urllib.request.urlopen(req, context=http.ctx, timeout=10) as r:
        lines = [json.loads(line) for line in r.read().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "after")]


def test_sigkill_loses_no_acknowledged_write(server: ServerProcess) -> None:
    http = Http(server)
    acked: list[str] = []
    stop = threading.Event()

    def writer(prefix: str) -> None:
        i = 0
        while not stop.is_set():
            name = f"{prefix}-{i}"
            try:
                code, _ = http.call("POST", SVCS, _svc(name), timeout=5)
            except Exception:
                return
            if code == 201:
                acked.append(name)
            i += 1

    threads = [threading.Thread(target=writer, args=(f"k{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 150
    server.start()
    code, lst = Http(server).call("GET", SVCS)
    names = {i["metadata"]["name"] for i in lst["items"]}
    missing = [n for n in acked if n not in names]
    assert missing == []


@pytest.mark.parametrize("raw,content_type,code,needle", [
    (b"{not json", "application/json", 400, ""),
    (b"kind: [", "application/yaml", 400, ""),
    (b'{"apiVersion":"apps/v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":1}]}}',
     "application/json", 400, "the API version in the data (apps/v1) does not match"),
    (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}',
     "application/json", 400, "the kind in the data (Pod) does not match the expected kind"),
    (b'{"metadata":{"name":"x"},"spec":{"ports":[{"port":"eighty"}]}}', "application/json",
     400, "ServicePort.spec.ports.port"),
    (b'{"metadata":{"name":"Not_Valid"},"spec":{"ports":[{"port":80}]}}', "application/json",
     422, "metadata.name: Invalid value"),
])
def test_bad_input_is_rejected_and_nothing_written(server: ServerProcess, raw: bytes,
                                                   content_type: str, code: int,
                                                   needle: str) -> None:
    http = Http(server)
    before = http.call("GET", SVCS)[1]
    got, status = http.call("POST", SVCS + "?fieldValidation=Strict", raw=raw,
                            content_type=content_type)
    assert got == code, status
    assert status["kind"] == "Status" and status["code"] == code
    assert needle in status["message"]
    after = http.call("GET", SVCS)[1]
    assert after["items"] == before["items"]
    assert http.call("GET", "/healthz".replace("/healthz", SVCS))[0] == 200


def test_unknown_field_strict_vs_ignore_and_stale_rv(server: ServerProcess) -> None:
    http = Http(server)
    body = _svc("strict")
    body["spec"]["bogus"] = True
    code, st = http.call("POST", SVCS + "?fieldValidation=Strict", body)
    assert code == 400
    assert st["message"].endswith('strict decoding error: unknown field "spec.bogus"')
    code, obj = http.call("POST", SVCS + "?fieldValidation=Ignore", body)
    assert code == 201 and "bogus" not in obj["spec"]
    stale = dict(obj, metadata=dict(obj["metadata"]))
    http.call("PATCH", SVCS + "/strict", {"metadata": {"labels": {"x": "1"}}},
              content_type="application/strategic-merge-patch+json")
    code, st = http.call("PUT", SVCS + "/strict", stale)
    assert code == 409 and st["reason"] == "Conflict"
    assert "the object has been modified" in st["message"]


def test_body_too_large_and_auth(server: ServerProcess) -> None:
    http = Http(server)
    big = _svc("big")
    big["metadata"]["annotations"] = {"x": "a" * (4 * 1024 * 1024)}
    code, st = http.call("POST", SVCS, big)
    assert code == 413 and st["kind"] == "Status"
    code, st = http.call("GET", SVCS, token="wrong")
    assert code == 401 and st["reason"] == "Unauthorized"
    assert http.call("GET", SVCS)[0] == 200


def test_starts_fast_and_stops_cleanly_on_sigterm(tmp_path: Any) -> None:
    from conftest import free_port
    srv = ServerProcess(tmp_path / "data", free_port())
    srv.start()  # first start: makes the CA, certificate and token
    srv.stop()
    t0 = time.monotonic()
    srv.start()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"server took {elapsed:.2f}s to be ready"
    assert Http(srv).call("GET", SVCS)[0] == 200
    # an open watch (kubectl get -w) does not hold the shutdown open: aiohttp's default
    # waits two minutes for such a request
    import subprocess
    watch = subprocess.Popen(["kubectl", "--kubeconfig", str(srv.kubeconfig), "get", "svc",
                              "-w", "--request-timeout=0"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert watch.stdout is not None and "kubernetes" in watch.stdout.readline() + \
            watch.stdout.readline()
        t0 = time.monotonic()
        assert srv.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 6
    finally:
        watch.kill()
        watch.wait()


def test_node_token_from_cli(server: ServerProcess) -> None:
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "svcnet.cli.main", "token", "create", "--node",
                          "node-a", "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, check=True)
    token = out.stdout.strip()
    http = Http(server)
    assert http.call("GET", SVCS, token=token)[0] == 200
    code, st = http.call("POST", SVCS, _svc("from-node"), token=token)
    assert code == 403 and 'User "system:node:node-a" cannot create' in st["message"]
