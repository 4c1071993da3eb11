"""`svcnet dns serve`: cluster DNS in its own process, following a real `svcnet server`
through a kubeconfig, driven by real kubectl and asked with dnspython over loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.reversename
import pytest
from conftest import Kubectl, ServerProcess, free_port, kubectl_for, wait_for

pytestmark = pytest.mark.e2e


def ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port,
                         timeout=2)


@pytest.fixture
def dns_process(server: ServerProcess, tmp_path: Path) -> Iterator[tuple[int, Kubectl]]:
    k = kubectl_for(server, tmp_path)
    port = free_port()
    log = open(tmp_path / "dns.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "svcnet.cli.main", "dns", "serve",
                             "--listen", f"127.0.0.1:{port}", "--kubeconfig",
                             str(server.kubeconfig), "--upstream", "127.0.0.1:9",
                             "--metrics-listen", "none"],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield port, k
    finally:
        proc.terminate()
        try:
            assert proc.wait(10) == 0, (tmp_path / "dns.log").read_text()
        finally:
            proc.kill()
            log.close()


def test_a_separate_dns_process_follows_the_api(dns_process: tuple[int, Kubectl]) -> None:
    port, k = dns_process
    k.run("create", "service", "clusterip", "web", "--tcp", "80:8080")
    ip = k.run("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    name = "web.default.svc.cluster.local."

    def answered() -> list[str]:
        try:
            reply = ask(port, name)
        except (dns.exception.Timeout, OSError):
            return []
        return [rd.to_text() for rrset in reply.answer for rd in rrset]
    assert wait_for(answered, timeout=15, what="the Service's A record") == [ip]
    k.run("delete", "service", "web", "--wait=false")
    t0 = time.monotonic()
    wait_for(lambda: ask(port, name).rcode() == dns.rcode.NXDOMAIN, timeout=5, interval=0.05,
             what="NXDOMAIN after the delete")
    assert time.monotonic() - t0 < 1.0
    # the kubernetes Service the server made itself, and its PTR
    kube = k.run("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    reply = ask(port, dns.reversename.from_address(kube).to_text(), "PTR")
    assert [rd.to_text() for rrset in reply.answer for rd in rrset] == \
        ["kubernetes.default.svc.cluster.local."]


@pytest.mark.parametrize("args, message", [
    ([], "svcnet dns serve: --listen HOST:PORT is required"),
    (["--listen", "127.0.0.1"], "svcnet dns serve: --listen '127.0.0.1': expected HOST:PORT"),
    (["--listen", "127.0.0.1:5399", "--ttl", "99999"],
     "svcnet dns serve: --ttl 99999: must be between 0 and 3600"),
    (["--listen", "127.0.0.1:5399", "--kubeconfig", "/nonexistent/kubeconfig"],
     "svcnet dns serve: /nonexistent/kubeconfig: No such file or directory"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(args: list[str], message: str) -> None:
    res = subprocess.run([sys.executable, "-m", "svcnet.cli.main", "dns", "serve", *args],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr
