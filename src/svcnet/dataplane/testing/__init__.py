"""Fakes of the kernel seams that parse what they are given into a model.

`FakeIPTables` stands in for iptables-restore/-save and the iptables command; packet
tracers (`svcnet.dataplane.trace`) walk its model. Tests of compilers and of the sync loop
use these instead of root and a real kernel.
"""

from __future__ import annotations

from svcnet.dataplane.testing.fake_conntrack import FakeConntrack
from svcnet.dataplane.testing.fake_iptables import BUILTIN_CHAINS, Chain, FakeIPTables, Table
from svcnet.dataplane.testing.iptables_parse import parse_rule, quote_arg, tokenize
from svcnet.dataplane.testing.iptables_rules import (
    STATISTIC_SCALE,
    Address,
    Flag,
    Match,
    Rule,
    RuleError,
    Target,
    save_string,
)

__all__ = [
    "BUILTIN_CHAINS",
    "STATISTIC_SCALE",
    "Address",
    "Chain",
    "FakeConntrack",
    "FakeIPTables",
    "Flag",
    "Match",
    "Rule",
    "RuleError",
    "Table",
    "Target",
    "parse_rule",
    "quote_arg",
    "save_string",
    "tokenize",
]
