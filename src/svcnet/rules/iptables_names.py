"""Names and literal formats of kube-proxy's iptables mode (v1.31–v1.33).

Everything here is visible in `iptables-save` on a node, so it is reproduced exactly:

- chain names: `KUBE-SVC-`/`KUBE-SVL-`/`KUBE-EXT-`/`KUBE-FW-` + the first 16 characters
  of base32(sha256(`ns/name:port` + lower-case protocol)); `KUBE-SEP-` + the same over
  `ns/name:port` + protocol + `ip:port`. (iptables chain names are at most 28 characters,
  hence the hash; all four service chains of a port share one suffix.)
- the statistic probability 1/n written with ten decimals, as Go's `%0.10f`;
- the masquerade mark: Go's `%#08x` zero-pads the *digits* to eight (`0x00004000`), unlike
  C and Python (`0x004000`). Upstream unit tests set `0x4000` directly, so both styles are
  offered; real kube-proxy writes the Go one.
- comments: kube-proxy writes comments containing spaces wrapped in double quotes and bare
  names unquoted, directly into the restore text.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from functools import lru_cache

# Top-level chains (nat and/or filter).
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
#: kube-proxy's duplicate of kubelet's anti-martian chain (filter).
KUBE_FIREWALL = "KUBE-FIREWALL"

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"
#: Prefixes of per-service nat chains; kube-proxy deletes stale chains with these only.
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, FW_PREFIX, EXT_PREFIX)

#: Comment of the last nat KUBE-SERVICES rule (jump to KUBE-NODEPORTS).
NODEPORTS_TAIL_COMMENT = ("kubernetes service nodeports; NOTE: this must be the last rule "
                          "in this chain")

#: nfacct counter names (only referenced when the counters are known to exist).
NFACCT_LOCALHOST_NODEPORTS = "localhost_nps_accepted_pkts"
NFACCT_INVALID_DROPPED = "ct_state_invalid_dropped_pkts"


class MarkFormat(StrEnum):
    """How the masquerade mark is spelled in the restore payload."""

    #: What kube-proxy really writes: Go `%#08x`, e.g. `0x00004000`.
    GO = "go"
    #: What upstream unit-test vectors contain: `0x4000`.
    SHORT = "short"


def _b32_16(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode()[:16]


@lru_cache(maxsize=65536)
def port_proto_hash(service_port_name: str, protocol: str) -> str:
    """kube-proxy's `portProtoHash`: the 16-character suffix of a port's service chains."""
    return _b32_16(service_port_name + protocol.lower())


def svc_chain(spn: str, protocol: str) -> str:
    """KUBE-SVC-<hash>: dispatch to Cluster-policy endpoints."""
    return SVC_PREFIX + port_proto_hash(spn, protocol)


def svl_chain(spn: str, protocol: str) -> str:
    """KUBE-SVL-<hash>: dispatch to Local-policy (node-local) endpoints."""
    return SVL_PREFIX + port_proto_hash(spn, protocol)


def ext_chain(spn: str, protocol: str) -> str:
    """KUBE-EXT-<hash>: entry for external destinations (NodePort, LB, external IPs)."""
    return EXT_PREFIX + port_proto_hash(spn, protocol)


def fw_chain(spn: str, protocol: str) -> str:
    """KUBE-FW-<hash>: loadBalancerSourceRanges filter for LB VIP traffic."""
    return FW_PREFIX + port_proto_hash(spn, protocol)


@lru_cache(maxsize=65536)
def sep_chain(spn: str, protocol: str, endpoint: str) -> str:
    """KUBE-SEP-<hash>: one endpoint (`endpoint` is `ip:port`) of one Service port."""
    return SEP_PREFIX + _b32_16(spn + protocol.lower() + endpoint)


def is_service_chain(name: str) -> bool:
    """True for per-service nat chains kube-proxy owns (and may delete when stale)."""
    return name.startswith(SERVICE_CHAIN_PREFIXES)


@lru_cache(maxsize=1024)
def probability(n: int) -> str:
    """The probability text for picking 1 of `n` remaining endpoints (Go `%0.10f` of 1/n)."""
    if n < 1:
        raise ValueError(f"probability of 1/{n}")
    return f"{1.0 / n:.10f}"


def masquerade_mark(bit: int, style: MarkFormat = MarkFormat.GO) -> str:
    """The mark value for `--masquerade-bit` `bit`, spelled as kube-proxy (or its tests) do."""
    if not 0 <= bit <= 31:
        raise ValueError(f"masquerade bit {bit} is not in 0..31")
    value = 1 << bit
    if style == MarkFormat.GO:
        # Go's %#08x pads the hex digits to 8 and then adds the 0x prefix.
        return "0x" + format(value, "08x")
    return hex(value)


def quoted(text: str) -> str:
    """A comment token as kube-proxy writes it: `"..."` (double quotes) around the text."""
    return f'"{text}"'
