"""A fake conntrack that records what the proxier asked it to delete.

The real edge (`svcnet.dataplane.iptables.Conntrack`) runs `conntrack -D -p udp ...`.
Tests of the sync loop assert on `calls`: ("service", ip or None, port) and
("endpoint", ip, port), in call order. `fail` makes every call raise, to check that a
conntrack failure never fails a sync (the rules are already right; stale flows only age).
"""

from __future__ import annotations

from svcnet.dataplane.errors import DataplaneError


class FakeConntrack:
    """Records `delete_udp_to_service` / `delete_udp_to_endpoint` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, int]] = []
        self.fail = False

    def _record(self, what: str, ip: str | None, port: int) -> int:
        if self.fail:
            raise DataplaneError(f"conntrack: injected failure ({what} {ip}:{port})")
        self.calls.append((what, ip, port))
        return 0

    def delete_udp_to_service(self, ip: str | None, port: int) -> int:
        return self._record("service", ip, port)

    def delete_udp_to_endpoint(self, ip: str, port: int) -> int:
        return self._record("endpoint", ip, port)
