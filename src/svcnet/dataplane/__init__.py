"""The only code that touches the kernel's packet path (iptables, nft, netlink, conntrack).

Sub-packages: `testing` holds fakes that parse their input into a model, `trace` holds
packet tracers over those models. The real appliers (edges) live beside them and raise
`svcnet.dataplane.errors.ApplyError` when a payload is rejected.
"""

from __future__ import annotations

from svcnet.dataplane.errors import ApplyError, DataplaneError

__all__ = ["ApplyError", "DataplaneError"]
