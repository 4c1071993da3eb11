"""Pure rule compilers: `Snapshot` in, ruleset values and restore text out.

Nothing in this package performs I/O, reads a clock or runs a process; the dataplane edge
applies what these functions return. One module per proxy mode (iptables now; nftables,
ipvs and userspace later), all reading the same `svcnet.proxy.Snapshot`.
"""

from __future__ import annotations

from svcnet.rules.iptables import (
    FULL_SYNC_PERIOD_SECONDS,
    JumpRule,
    RuleSet,
    compile_full,
    compile_partial,
    jump_rules,
    needs_full_sync,
    render_restore,
)
from svcnet.rules.iptables_config import IPTablesConfig
from svcnet.rules.iptables_names import MarkFormat

__all__ = [
    "FULL_SYNC_PERIOD_SECONDS",
    "IPTablesConfig",
    "JumpRule",
    "MarkFormat",
    "RuleSet",
    "compile_full",
    "compile_partial",
    "jump_rules",
    "needs_full_sync",
    "render_restore",
]
