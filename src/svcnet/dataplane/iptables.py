"""The real iptables and conntrack edges: the only code that runs these tools.

`IPTables` applies what `svcnet.rules.iptables` compiles:

- `restore(payload)`: ONE `iptables-restore --noflush --counters` call per sync, so a sync
  is one kernel transaction per table; a rejected payload changes nothing and raises
  `ApplyError` with the failing line (1-based) and its text, parsed from the tool's
  stderr here, so callers never parse messages (DESIGN.md §2). iptables 1.8 reports
  `Error occurred at line: N` (nft backend; a rule referring to a missing chain is only
  detected at that table's COMMIT, so N may be the COMMIT line) or `line N failed`
  (legacy backend); both are understood.
- `ensure_chain` / `ensure_rule`: the jump rules from built-in chains, which restore cannot
  own without owning the whole built-in chain. Idempotent: `-C` first, `-I`/`-A` only if
  the rule is missing, so repeated full syncs never stack duplicates.
- `save`, `chain_exists`, `existing_chains`: reading state (stale-chain detection, canary).

`netns` prefixes every command with `ip netns exec NS`, for tests (and tools) acting on a
namespace from outside; the agent runs inside its node's namespace and passes None.
Every call uses `-w` so a concurrent iptables user (another agent in the same namespace,
an administrator) makes us wait for the xtables lock instead of failing.

`Conntrack` deletes UDP conntrack entries: UDP has no connection teardown, so a flow that
was NATed to a now-gone endpoint (or that hit a VIP before the VIP had endpoints, and was
therefore not NATed at all) would otherwise stay pinned until the entry times out.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from typing import Callable, Iterable, Sequence

from svcnet.dataplane.errors import ApplyError, DataplaneError

log = logging.getLogger("svcnet.dataplane.iptables")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
_LINE_RE = re.compile(r"(?:Error occurred at line: (\d+)|line (\d+) failed)")
_PREFIX_RE = re.compile(r"^(?:ip6?tables(?:-restore)?)(?: v[\d.]+(?: \(\w+\))?)?: ")
WAIT_SECONDS = "5"
# iptables-restore's own run time grows faster than linearly with the payload (about 3
# minutes for a 215,000-line full sync on iptables 1.8.9/nft here), so a fixed timeout
# would kill every full sync of a large cluster and it would never converge: the
# restore timeout is the base timeout plus this much per payload line.
RESTORE_SECONDS_PER_LINE = 0.005
#: A command slower than this is logged as a warning with its duration: a sync that
#: stalls on the xtables lock or a slow conntrack dump is otherwise invisible.
SLOW_COMMAND_SECONDS = 1.0


def run_logged(run: Runner, argv: list[str], stdin: str | None,
               timeout: float) -> "subprocess.CompletedProcess[str]":
    """`run(argv)` capturing text output, never raising on exit status; a debug line per
    command and a warning when it took longer than SLOW_COMMAND_SECONDS."""
    log.debug("running %s", " ".join(argv))
    start = time.monotonic()
    try:
        return run(argv, input=stdin, capture_output=True, text=True, check=False,
                   timeout=timeout)
    finally:
        took = time.monotonic() - start
        if took > SLOW_COMMAND_SECONDS:
            log.warning("%s took %.1fs", " ".join(argv[:6]), took)


def parse_restore_error(stderr: str, payload: str) -> ApplyError:
    """Turn iptables-restore's stderr into an ApplyError with line number and text."""
    line = 0
    match = _LINE_RE.search(stderr)
    if match:
        line = int(match.group(1) or match.group(2))
    reasons = [_PREFIX_RE.sub("", s.strip()) for s in stderr.splitlines()
               if s.strip() and not _LINE_RE.search(s) and not s.startswith("Try `")]
    lines = payload.splitlines()
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return ApplyError("iptables-restore", line, text, "; ".join(reasons) or "restore failed")


class IPTables:
    """iptables (IPv4) through its command-line tools; see the module docstring."""

    def __init__(self, *, netns: str | None = None, run: Runner = subprocess.run,
                 timeout: float = 60.0) -> None:
        self.netns = netns
        self._run_fn = run
        self.timeout = timeout

    def _argv(self, argv: Sequence[str]) -> list[str]:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return prefix + list(argv)

    def _run(self, argv: Sequence[str], stdin: str | None = None,
             timeout: float | None = None) -> "subprocess.CompletedProcess[str]":
        return run_logged(self._run_fn, self._argv(argv), stdin,
                          self.timeout if timeout is None else timeout)

    def restore(self, payload: str) -> None:
        """Apply `payload` with one `iptables-restore --noflush --counters` call.

        Raises ApplyError (backend "iptables-restore", the failing line and its text)
        if the tool rejects it; the kernel is then unchanged.
        """
        lines = payload.count("\n") + 1
        timeout = self.timeout + lines * RESTORE_SECONDS_PER_LINE
        try:
            res = self._run(["iptables-restore", "-w", WAIT_SECONDS, "--noflush",
                             "--counters"], stdin=payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ApplyError("iptables-restore", 0, "",
                             f"timed out after {timeout:.0f}s applying {lines} lines") from None
        if res.returncode != 0:
            raise parse_restore_error(res.stderr, payload)

    def save(self, table: str) -> str:
        """`iptables-save -t TABLE` output."""
        res = self._run(["iptables-save", "-t", table])
        if res.returncode != 0:
            raise DataplaneError(f"iptables-save -t {table}: {res.stderr.strip()}")
        return res.stdout

    def existing_chains(self, table: str, prefixes: Iterable[str] = ()) -> set[str]:
        """Chains present in `table`, restricted to those starting with one of `prefixes`
        (all chains when `prefixes` is empty)."""
        wanted = tuple(prefixes)
        out: set[str] = set()
        for line in self.save(table).splitlines():
            if line.startswith(":"):
                name = line[1:].split()[0]
                if not wanted or name.startswith(wanted):
                    out.add(name)
        return out

    def chain_exists(self, table: str, chain: str) -> bool:
        return chain in self.existing_chains(table)

    def ensure_chain(self, table: str, chain: str) -> bool:
        """`iptables -N` unless the chain exists; returns True if it already existed."""
        if self.chain_exists(table, chain):
            return True
        res = self._run(["iptables", "-w", WAIT_SECONDS, "-t", table, "-N", chain])
        if res.returncode != 0:
            if self.chain_exists(table, chain):  # created concurrently: fine
                return True
            raise ApplyError("iptables", 0, f"-N {chain}", res.stderr.strip())
        return False

    def ensure_rule(self, table: str, chain: str, args: Sequence[str], *,
                    position: str = "prepend") -> bool:
        """`iptables -C`, then `-I` (prepend) or `-A` (append) if missing.

        Returns True if an identical rule already existed. Raises ApplyError (line 0) when
        the rule cannot be added (bad rule, missing chain).
        """
        base = ["iptables", "-w", WAIT_SECONDS, "-t", table]
        if self._run(base + ["-C", chain, *args]).returncode == 0:
            return True
        op = "-I" if position == "prepend" else "-A"
        res = self._run(base + [op, chain, *args])
        if res.returncode != 0:
            raise ApplyError("iptables", 0, " ".join(args), res.stderr.strip())
        return False


class Conntrack:
    """`conntrack -D` for UDP flows (see the module docstring)."""

    def __init__(self, *, netns: str | None = None, run: Runner = subprocess.run,
                 timeout: float = 30.0) -> None:
        self.netns = netns
        self._run_fn = run
        self.timeout = timeout

    def _delete(self, filters: Sequence[str]) -> int:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        argv = prefix + ["conntrack", "-D", "-p", "udp", *filters]
        try:
            res = run_logged(self._run_fn, argv, None, self.timeout)
        except subprocess.TimeoutExpired:
            raise DataplaneError(f"{' '.join(argv)}: timed out after {self.timeout:.0f}s") \
                from None
        # Exit status 1 with "0 flow entries have been deleted" just means nothing matched.
        if res.returncode == 0 or "0 flow entries" in res.stderr:
            match = re.search(r"(\d+) flow entr", res.stderr)
            return int(match.group(1)) if match else 0
        raise DataplaneError(f"{' '.join(argv)}: {res.stderr.strip()}")

    def delete_udp_to_service(self, ip: str | None, port: int) -> int:
        """Delete UDP flows whose original destination is `ip:port` (any address when ip is
        None, as for a NodePort). Returns the number deleted."""
        return self._delete((["--orig-dst", ip] if ip else []) + ["--dport", str(port)])

    def delete_udp_to_endpoint(self, ip: str, port: int) -> int:
        """Delete UDP flows answered by the endpoint `ip:port` (i.e. NATed to it)."""
        return self._delete(["--reply-src", ip, "--reply-port-src", str(port)])
