"""The benchmarks still run: each bench/ script at a tiny size prints its one JSON line.

No timing is asserted (DESIGN.md §8: benchmarks are not timed tests); this only keeps the
scripts from rotting as the code under them changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench(script: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    res = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                         text=True, timeout=timeout, cwd=BENCH)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, res.stdout
    out: dict[str, Any] = json.loads(lines[0])
    return out


def test_api_bench() -> None:
    out = bench("api.py", "--creates", "20", "--services", "40", "--watchers", "3",
                "--changes", "3")
    assert out["creates"] == 20 and "targets" in out


def test_endpoints_bench() -> None:
    out = bench("endpoints.py", "--services", "5", "--pods", "2", "--flips", "5")
    assert out["services"] == 5


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("iptables-restore") is None,
                    reason="needs root and iptables")
def test_proxy_sync_bench() -> None:
    out = bench("proxy_sync.py", "--services", "20", "--endpoints", "2", "--runs", "1",
                "--changes", "3")
    assert out["services"] == 20 and out["partial_payload_lines"] > 0


@pytest.mark.skipif(shutil.which("dnsperf") is None or shutil.which("knotd") is None,
                    reason="dnsperf and knotd are bench-only tools (scripts/setup --bench)")
def test_dns_bench() -> None:
    out = bench("dns.py", "--services", "20", "--runs", "1", "--seconds", "1",
                "--rate", "1000")
    assert out["services"] == 20 and out["svcnet"]["qps"] > 0
