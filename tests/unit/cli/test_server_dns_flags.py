"""`svcnet server` DNS flags: what they configure, and one-line errors for bad values."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from svcnet.cli.server import add_arguments, dns_settings


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_no_dns_listen_means_no_dns() -> None:
    assert dns_settings(parse(), "127.0.0.1") == (None, None)


def test_dns_flags_configure_listen_upstream_metrics_and_endpoint() -> None:
    cfg, endpoint = dns_settings(parse("--dns-listen", "172.30.0.1:53", "--dns-upstream",
                                       "127.0.0.1:5300", "--cluster-domain", "Corp.Local.",
                                       "--dns-ttl", "30"), "10.0.0.1")
    assert cfg is not None
    assert cfg.listen == [("172.30.0.1", 53)] and cfg.upstreams == [("127.0.0.1", 5300)]
    assert cfg.metrics_listen == ("172.30.0.1", 9153)
    assert (cfg.domain, cfg.ttl, endpoint) == ("corp.local", 30, "172.30.0.1")
    assert (cfg.pods, cfg.log_queries) == ("insecure", False)
    verified, _ = dns_settings(parse("--dns-listen", "127.0.0.1:53", "--dns-pods", "verified",
                                     "--dns-log", "--dns-upstream", "192.0.2.1"), "")
    assert verified is not None and (verified.pods, verified.log_queries) == ("verified", True)


def test_wildcard_listen_advertises_the_server_address() -> None:
    cfg, endpoint = dns_settings(parse("--dns-listen", "0.0.0.0:5353",
                                       "--dns-metrics-listen", "none",
                                       "--dns-upstream", "192.0.2.1"), "192.0.2.10")
    assert cfg is not None and cfg.metrics_listen is None and endpoint == "192.0.2.10"


@pytest.mark.parametrize("argv,message", [
    (["--dns-listen", "bogus"],
     "--dns-listen 'bogus': expected HOST:PORT with a port in 1-65535"),
    (["--dns-listen", "127.0.0.1:53", "--dns-upstream", "dns.google"],
     "--dns-upstream: upstream 'dns.google': not an IP address"),
    (["--dns-listen", "127.0.0.1:53", "--cluster-domain", "a..b"],
     "--cluster-domain 'a..b': not a valid DNS domain"),
    (["--dns-listen", "127.0.0.1:53", "--dns-ttl", "99999"],
     "--dns-ttl 99999: must be between 0 and 3600"),
])
def test_bad_dns_flags_exit_2_with_one_line(argv: list[str], message: str) -> None:
    res = subprocess.run([sys.executable, "-m", "svcnet.cli.main", "server", *argv],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip() == f"svcnet server: {message}"
