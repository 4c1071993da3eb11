"""`svcnet proxy ...`: offline kube-proxy tools (`render`, and `trace` at the end).

`svcnet proxy render --mode iptables -f FILE... --node-name N --node-ip IP --cluster-cidr C`
reads Services, EndpointSlices and Endpoints from YAML or JSON files (multi-document YAML,
`kind: List` and `*List` kinds accepted), applies API defaults, and prints the
`iptables-restore` payload a full sync of kube-proxy would apply on that node. It touches
nothing: no API server, no kernel, no allocation (a Service without `spec.clusterIP` is
skipped with a warning, as the proxy would never see it without one).

`svcnet proxy trace` takes the same inputs plus a packet (`--src --dst --port
[--protocol]`), loads the rendered rules and kube-proxy's jumps from the built-in chains
into the iptables model (`dataplane.testing.FakeIPTables`), and prints every path the
packet can take: the rules it matches, its DNAT destination with that path's
probability, whether it is masqueraded, and the verdict.

Hand-made Endpoints are turned into EndpointSlices the way the mirroring controller does,
for Services that have no EndpointSlice in the input. Bad input is reported in one line
(`svcnet proxy render: FILE: reason`) with exit status 1; warnings go to stderr too.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from svcnet.api.defaults import apply_defaults
from svcnet.proxy import SERVICE_NAME_LABEL, build_snapshot, slices_from_endpoints
from svcnet.dataplane.trace.iptables import (
    Packet,
    TraceError,
    TraceNode,
    TraceResult,
    node_model,
    trace,
)
from svcnet.rules import IPTablesConfig, MarkFormat, compile_full, render_restore
from svcnet.rules import iptables_names as names

PROG = "svcnet proxy render"
_KINDS = ("Service", "EndpointSlice", "Endpoints")
_MODES = ("iptables", "nftables", "ipvs", "userspace")


class RenderError(Exception):
    """Bad input or arguments; the message is the one line shown to the user."""


#: nfacct counters a node has (the model refuses rules naming counters that do not exist)
NFACCT_COUNTERS = (names.NFACCT_LOCALHOST_NODEPORTS, names.NFACCT_INVALID_DROPPED)


def add_subcommands(subparsers: Any) -> None:
    """Add `proxy` (with `render` and `trace`) to the `svcnet` sub-command parsers."""
    proxy = subparsers.add_parser("proxy", help="kube-proxy tools (render rules, trace "
                                  "packets, offline)")
    sub = proxy.add_subparsers(dest="proxy_command", required=True)
    r = sub.add_parser("render", help="print the rules a full proxy sync would apply",
                       description="Print the iptables-restore payload kube-proxy would "
                       "apply on a node for the given objects. Touches nothing.")
    _add_rule_inputs(r)
    r.set_defaults(func=run_render)
    t = sub.add_parser("trace", help="follow one packet through the rules (dry run)",
                       description="Compile the rules kube-proxy would apply on a node for "
                       "the given objects, then follow the first packet of a connection "
                       "through them: every rule it matches, where it is DNATed (with the "
                       "probability of each endpoint), whether it is masqueraded, and the "
                       "verdict (ACCEPT, REJECT, DROP). Touches nothing.")
    _add_rule_inputs(t)
    t.add_argument("--src", required=True, metavar="IP", help="the packet's source address")
    t.add_argument("--dst", required=True, metavar="IP", help="its destination address")
    t.add_argument("--port", required=True, type=int, help="its destination port")
    t.add_argument("--protocol", default="tcp", choices=("tcp", "udp", "sctp"))
    t.add_argument("--from-node", action="store_true", default=None,
                   help="the packet is sent by a process of the node itself (default: when "
                   "--src is one of --node-ip)")
    t.set_defaults(func=run_trace)


def _add_rule_inputs(r: argparse.ArgumentParser) -> None:
    """The options that say which rules to build: objects, node, cluster, proxy flags."""
    r.add_argument("--mode", default="iptables", help="proxy mode (only iptables so far)")
    r.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="YAML or JSON file of Services, EndpointSlices, Endpoints "
                   "('-' reads stdin); repeatable")
    r.add_argument("--node-name", required=True, help="the node to render for")
    r.add_argument("--node-ip", action="append", required=True, metavar="IP",
                   help="the node's IPv4 address (repeatable; the first is primary)")
    r.add_argument("--cluster-cidr", required=True, metavar="CIDR",
                   help="pod CIDR: traffic from outside it is masqueraded")
    r.add_argument("--masquerade-bit", type=int, default=14, metavar="N",
                   help="bit of the fwmark used for masquerading (default 14)")
    r.add_argument("--mark-format", choices=[m.value for m in MarkFormat], default="go",
                   help="spell the mark as kube-proxy does (go: 0x00004000) or as its "
                   "unit tests do (short: 0x4000)")
    r.add_argument("--masquerade-all", action="store_true",
                   help="masquerade all traffic to cluster IPs")
    r.add_argument("--nodeport-addresses", action="append", default=[], metavar="CIDR",
                   help="only these addresses accept NodePorts (CIDR or 'primary')")
    r.add_argument("--no-localhost-nodeports", action="store_true",
                   help="do not accept NodePorts on 127.0.0.1")
    r.add_argument("--zone", default="", help="the node's topology.kubernetes.io/zone")


def _parse_documents(path: str, text: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RenderError(f"{path}: invalid JSON: {e.msg} (line {e.lineno})") from None
        return data if isinstance(data, list) else [data]
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RenderError(f"{path}: invalid YAML: {problem}{where}") from None


def _flatten(path: str, doc: Any, out: list[tuple[str, dict[str, Any]]]) -> None:
    if doc is None:
        return  # empty YAML document (e.g. a trailing ---)
    if not isinstance(doc, dict):
        raise RenderError(f"{path}: expected an object, got {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        item_kind = kind[:-4] or None  # ServiceList items may omit their kind
        for item in doc["items"]:
            if isinstance(item, dict) and item_kind and "kind" not in item:
                item = {**item, "kind": item_kind}
            _flatten(path, item, out)
        return
    if kind not in _KINDS:
        shown = f"kind: {kind}" if kind else "no kind"
        raise RenderError(f"{path}: not a Service, EndpointSlice or Endpoints ({shown})")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise RenderError(f"{path}: {kind} without metadata.name")
    obj = copy.deepcopy(doc)
    obj["metadata"].setdefault("namespace", "default")
    apply_defaults(kind, obj)
    out.append((path, obj))


def load_objects(paths: list[str], stdin: TextIO) -> list[tuple[str, dict[str, Any]]]:
    """(file, object) pairs, defaults applied; raises RenderError for bad input."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        if path == "-":
            text = stdin.read()
        else:
            try:
                text = Path(path).read_text()
            except FileNotFoundError:
                raise RenderError(f"{path}: no such file") from None
            except (OSError, UnicodeDecodeError) as e:
                raise RenderError(f"{path}: cannot read: {e}") from None
        for doc in _parse_documents(path, text):
            _flatten(path, doc, out)
    return out


def _config(args: argparse.Namespace) -> IPTablesConfig:
    for ip in args.node_ip:
        try:
            if ipaddress.ip_address(ip).version != 4:
                raise ValueError
        except ValueError:
            raise RenderError(f"--node-ip {ip!r}: not an IPv4 address") from None
    try:
        if ipaddress.ip_network(args.cluster_cidr, strict=False).version != 4:
            raise ValueError
    except ValueError:
        raise RenderError(f"--cluster-cidr {args.cluster_cidr!r}: not an IPv4 CIDR") from None
    if not 0 <= args.masquerade_bit <= 31:
        raise RenderError(f"--masquerade-bit {args.masquerade_bit}: must be in 0..31")
    return IPTablesConfig(
        node_name=args.node_name, node_ips=tuple(args.node_ip), cluster_cidr=args.cluster_cidr,
        masquerade_bit=args.masquerade_bit, mark_format=MarkFormat(args.mark_format),
        masquerade_all=args.masquerade_all, localhost_nodeports=not args.no_localhost_nodeports,
        node_port_addresses=tuple(args.nodeport_addresses))


def _dedupe(objects: list[tuple[str, dict[str, Any]]], stderr: TextIO,
            ) -> list[tuple[str, dict[str, Any]]]:
    """Keep one object per (kind, namespace, name): the later definition wins, as it would
    after applying the files in order."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for path, obj in objects:
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key in seen:
            print(f"{PROG}: warning: {path}: {key[0]} {key[1]}/{key[2]} given again; "
                  "using this one", file=stderr)
            out[seen[key]] = (path, obj)
        else:
            seen[key] = len(out)
            out.append((path, obj))
    return out


def _inputs(objects: list[tuple[str, dict[str, Any]]], stderr: TextIO,
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Services, EndpointSlices) for the snapshot, with warnings for what kube-proxy would
    silently ignore. Endpoints are mirrored for Services that have no EndpointSlice."""
    services = [o for _, o in objects if o["kind"] == "Service"]
    slices = [o for _, o in objects if o["kind"] == "EndpointSlice"]
    for path, o in objects:
        if o["kind"] == "EndpointSlice" and not (o["metadata"].get("labels") or {}).get(
                SERVICE_NAME_LABEL):
            print(f"{PROG}: warning: {path}: EndpointSlice {o['metadata']['name']} has no "
                  f"{SERVICE_NAME_LABEL} label; kube-proxy ignores it", file=stderr)
        spec = o.get("spec") or {}
        if o["kind"] == "Service" and spec.get("type") != "ExternalName" \
                and not spec.get("clusterIP"):
            print(f"{PROG}: warning: {path}: Service {o['metadata']['namespace']}/"
                  f"{o['metadata']['name']} has no spec.clusterIP (render allocates "
                  "nothing); skipped", file=stderr)
    sliced = {(s["metadata"]["namespace"], (s["metadata"].get("labels") or {}).get(
        SERVICE_NAME_LABEL)) for s in slices}
    for _, o in objects:
        if o["kind"] == "Endpoints" and \
                (o["metadata"]["namespace"], o["metadata"]["name"]) not in sliced:
            slices.extend(slices_from_endpoints(o))
    return services, slices


def render(args: argparse.Namespace, *, stdin: TextIO, stderr: TextIO) -> str:
    """The payload for `args` (warnings written to `stderr`); raises RenderError."""
    if args.mode not in _MODES:
        raise RenderError(f"--mode {args.mode!r}: expected one of {', '.join(_MODES)}")
    if args.mode != "iptables":
        raise RenderError(f"--mode {args.mode}: not implemented yet (only iptables)")
    config = _config(args)
    services, slices = _inputs(_dedupe(load_objects(args.filename, stdin), stderr), stderr)
    labels = {"topology.kubernetes.io/zone": args.zone} if args.zone else {}
    snapshot = build_snapshot(services, slices, node_name=args.node_name, node_labels=labels)
    return render_restore(compile_full(snapshot, config))


def trace_packet(args: argparse.Namespace, *, stdin: TextIO, stderr: TextIO) -> TraceResult:
    """Build the node's rules as `render` does, load them with the built-in jumps into a
    model of iptables, and trace the packet of `args` through it; raises RenderError."""
    for flag, ip in (("--src", args.src), ("--dst", args.dst)):
        try:
            if ipaddress.ip_address(ip).version != 4:
                raise ValueError
        except ValueError:
            raise RenderError(f"{flag} {ip!r}: not an IPv4 address") from None
    if not 0 < args.port < 65536:
        raise RenderError(f"--port {args.port}: must be in 1-65535")
    model = node_model(render(args, stdin=stdin, stderr=stderr), NFACCT_COUNTERS)
    packet = Packet(args.src, args.dst, args.port, args.protocol, from_node=args.from_node)
    try:
        return trace(model, packet, TraceNode(args.node_name, tuple(args.node_ip)))
    except TraceError as e:
        raise RenderError(f"cannot trace: {e}") from None


def run_trace(args: argparse.Namespace) -> int:
    """Entry point of `svcnet proxy trace`; returns the exit status."""
    try:
        result = trace_packet(args, stdin=sys.stdin, stderr=sys.stderr)
    except RenderError as e:
        print(f"svcnet proxy trace: {e}", file=sys.stderr)
        return 1
    print(result.format())
    verdicts = ", ".join(f"{v} {p:.0%}" for v, p in sorted(result.verdicts.items()))
    print(f"verdict: {verdicts}")
    for dest, p in sorted(result.destinations.items()):
        print(f"  -> {dest}  {p:.1%}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    """Entry point of `svcnet proxy render`; returns the exit status."""
    try:
        payload = render(args, stdin=sys.stdin, stderr=sys.stderr)
    except RenderError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(payload)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `svcnet proxy ...` on its own (used by tests until cli.main wires it in)."""
    parser = argparse.ArgumentParser(prog="svcnet")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
