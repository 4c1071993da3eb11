"""Cluster IP and node port allocation for Services, as a registry write hook.

Runs after validation: on create it reserves the requested or next free cluster IP and
node ports and writes them into the Service; on update it reserves what is new and, once
the write is stored, releases what the Service no longer holds; on delete it releases
everything. Failures are 422s with Kubernetes' field paths and messages
(`spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`).
`rebuild` derives the whole state from the stored Services at start (the repair step).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from svcnet.api import errors
from svcnet.api.kinds import Kind
from svcnet.api.service_update import (needs_cluster_ip, needs_health_check_port,
                                       needs_node_ports)
from svcnet.apiserver.allocator import IPAllocator, PortAllocator

Obj = dict[str, Any]
Undo = Callable[[], None]


def held_ips(spec: Obj) -> set[str]:
    if not needs_cluster_ip(spec):
        return set()
    return {ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"}


def held_ports(spec: Obj) -> set[int]:
    ports = {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(spec["healthCheckNodePort"])
    return ports


class ServiceAllocation:
    """The WriteHook that owns cluster IPs and node ports."""

    def __init__(self, ips: IPAllocator, ports: PortAllocator) -> None:
        self.ips = ips
        self.ports = ports

    def rebuild(self, services: Iterable[Obj]) -> None:
        """Reset the state to exactly what `services` hold (start-up repair)."""
        self.ips.range.used.clear()
        self.ports.range.used.clear()
        for svc in services:
            spec = svc.get("spec") or {}
            for ip in held_ips(spec):
                self.ips.allocate(ip)
            for port in held_ports(spec):
                self.ports.allocate(port)

    def state(self) -> dict[str, Any]:
        return {"clusterIPs": {"range": self.ips.cidr, "allocated": self.ips.allocated()},
                "nodePorts": {"range": self.ports.text, "allocated": self.ports.allocated()}}

    # --- hook ----------------------------------------------------------------------------

    def before_create(self, kind: Kind, obj: Obj) -> Undo | None:
        if kind.kind != "Service":
            return None
        return self._reserve(obj, held_ips_before=set(), held_ports_before=set())

    def before_update(self, kind: Kind, new: Obj, old: Obj) -> Undo | None:
        if kind.kind != "Service":
            return None
        ospec = old.get("spec") or {}
        return self._reserve(new, held_ips(ospec), held_ports(ospec))

    def after_update(self, kind: Kind, new: Obj, old: Obj) -> None:
        if kind.kind != "Service":
            return
        nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
        for ip in held_ips(ospec) - held_ips(nspec):
            self.ips.release(ip)
        for port in held_ports(ospec) - held_ports(nspec):
            self.ports.release(port)

    def after_delete(self, kind: Kind, obj: Obj) -> None:
        if kind.kind != "Service":
            return
        spec = obj.get("spec") or {}
        for ip in held_ips(spec):
            self.ips.release(ip)
        for port in held_ports(spec):
            self.ports.release(port)

    # --- allocation ----------------------------------------------------------------------

    def _reserve(self, svc: Obj, held_ips_before: set[str], held_ports_before: set[int]) -> Undo:
        """Reserve everything `svc` needs that it did not hold before; fill in automatic
        picks. On any failure, release what this call reserved and raise a 422."""
        spec = svc.setdefault("spec", {})
        name = (svc.get("metadata") or {}).get("name", "")
        taken_ips: list[str] = []
        taken_ports: list[int] = []

        def undo() -> None:
            for ip in taken_ips:
                self.ips.release(ip)
            for port in taken_ports:
                self.ports.release(port)

        def fail(err: errors.FieldError) -> errors.StatusError:
            undo()
            return errors.invalid_object("Service", "", name, [err])

        if needs_cluster_ip(spec) and spec.get("clusterIP") != "None":
            ip = spec.get("clusterIP") or ""
            if not ip:
                picked = self.ips.allocate_next()
                if picked is None:
                    undo()
                    raise errors.internal("failed to allocate a serviceIP: range is full")
                taken_ips.append(picked)
                spec["clusterIP"], spec["clusterIPs"] = picked, [picked]
            elif ip not in held_ips_before:
                why = self.ips.allocate(ip)
                if why is not None:
                    raise fail(errors.invalid("spec.clusterIPs", spec.get("clusterIPs") or [ip],
                                              f"failed to allocate IP {ip}: {why}"))
                taken_ips.append(ip)
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]

        reserved_here: set[int] = set()
        for i, port in enumerate(spec.get("ports") or []):
            np = port.get("nodePort") or 0
            if np:
                if np in held_ports_before or np in reserved_here:
                    continue  # kept, or shared by TCP and UDP ports of this Service
                why = self.ports.allocate(np)
                if why is not None:
                    raise fail(errors.invalid(f"spec.ports[{i}].nodePort", np, why))
                taken_ports.append(np)
                reserved_here.add(np)
            elif needs_node_ports(spec):
                picked_port = self.ports.allocate_next()
                if picked_port is None:
                    undo()
                    raise errors.internal("failed to allocate a nodePort: range is full")
                taken_ports.append(picked_port)
                reserved_here.add(picked_port)
                port["nodePort"] = picked_port

        if needs_health_check_port(spec):
            hc = spec.get("healthCheckNodePort") or 0
            if not hc:
                picked_port = self.ports.allocate_next()
                if picked_port is None:
                    undo()
                    raise errors.internal("failed to allocate a nodePort: range is full")
                taken_ports.append(picked_port)
                spec["healthCheckNodePort"] = picked_port
            elif hc not in held_ports_before and hc not in reserved_here:
                why = self.ports.allocate(hc)
                if why is not None:
                    raise fail(errors.invalid("spec.healthCheckNodePort", hc, why))
                taken_ports.append(hc)
        return undo
