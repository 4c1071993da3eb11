"""Generate src/svcnet/api/proto.json: the protobuf field tables of the kinds we serve.

kubectl's typed clients send request bodies as `application/vnd.kubernetes.protobuf`.
Decoding them (src/svcnet/api/protobuf.py) needs, for every message reachable from our
root kinds, each field's number, JSON name, value type, whether it repeats and whether the
Go field is a pointer. Those facts live in Kubernetes' `generated.proto` files; this script
turns .proto text into a compact data table. Only numbers, names and types are taken; no
descriptions, comments or code.

Two steps, so that the input is inspectable .proto text kept out of the repository:

1. `extract` (optional) renders .proto text from a Go binary built from Kubernetes, e.g.
   kubectl. gogo-protobuf registers every generated.proto as a gzipped FileDescriptorProto,
   and those embedded descriptors still carry the `(gogoproto.nullable) = false` field
   options that the published generated.proto files have stripped. That option is the only
   record of which scalar fields are Go pointers (`*int32`: written to the wire whenever
   set, even to zero) and which are plain values (always written, zero included). Taking
   the descriptors from the very kubectl we test against also pins the version exactly.

       python tools/gen_proto.py extract --binary /usr/bin/kubectl --out /tmp/k8s-proto

2. `generate` parses the .proto texts under a directory (laid out by import path, e.g.
   k8s.io/api/core/v1/generated.proto), walks the messages reachable from ROOTS and writes
   the table. Published upstream .proto files (no gogoproto options) are accepted too; then
   no scalar is known to be a pointer and a warning says so.

       python tools/gen_proto.py generate --proto-dir /tmp/k8s-proto \
           --schema src/svcnet/api/schema.json --out src/svcnet/api/proto.json

Every field name is cross-checked against schema.json (the JSON names of the official
client, see tools/gen_schema.py) for the corresponding type; a name that is neither there
nor explained by RENAMES or INLINE fails the run.

Output shape: {message full name: {field number (string): [json name, type, repeated,
pointer]}}. `json name` "" marks an embedded struct whose fields Go's JSON inlines into the
parent. `type` is a proto scalar name ("string", "int32", "bytes", ...), a message full
name, one of the special types below ("@time", ...) or "map:KEY:VALUE" with VALUE any of
those. `pointer` is true for optional scalars that are Go pointers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any

# Root messages: the kinds the API server decodes from request bodies.
ROOTS: list[str] = [
    "k8s.io.api.core.v1.Namespace", "k8s.io.api.core.v1.Node", "k8s.io.api.core.v1.Pod",
    "k8s.io.api.core.v1.Service", "k8s.io.api.core.v1.Endpoints",
    "k8s.io.api.core.v1.ConfigMap", "k8s.io.api.core.v1.Secret", "k8s.io.api.core.v1.Event",
    "k8s.io.api.discovery.v1.EndpointSlice", "k8s.io.api.apps.v1.Deployment",
    "k8s.io.api.apps.v1.ReplicaSet", "k8s.io.api.networking.v1.Ingress",
    "k8s.io.api.networking.v1.IngressClass", "k8s.io.api.networking.v1.NetworkPolicy",
    "k8s.io.api.autoscaling.v1.Scale", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
]

# The .proto files those roots need (paths as imported).
FILES: list[str] = [
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/discovery/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
]

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
# Messages with a custom JSON form in Go; the decoder implements each by name. The tuple is
# the wire layout the decoder assumes ((number, name, proto type), ...), verified here.
SPECIAL: dict[str, tuple[str, tuple[tuple[int, str, str], ...]]] = {
    _META + "Time": ("@time", ((1, "seconds", "int64"), (2, "nanos", "int32"))),
    _META + "MicroTime": ("@microtime", ((1, "seconds", "int64"), (2, "nanos", "int32"))),
    _META + "Duration": ("@duration", ((1, "duration", "int64"),)),
    _META + "FieldsV1": ("@fieldsv1", ((1, "Raw", "bytes"),)),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": (
        "@intstr", ((1, "type", "int64"), (2, "intVal", "int32"), (3, "strVal", "string"))),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": ("@quantity", ((1, "string", "string"),)),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": ("@rawextension", ((1, "raw", "bytes"),)),
}

# Embedded Go structs tagged `json:",inline"`: protobuf nests them as one message field,
# JSON spreads their fields into the parent. (message, proto field name).
INLINE: set[tuple[str, str]] = {
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    ("k8s.io.api.core.v1.Probe", "handler"),
    ("k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapProjection", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretProjection", "localObjectReference"),
    ("k8s.io.api.networking.v1.IngressRule", "ingressRuleValue"),
}

# Proto field names that differ from the JSON name: (message, proto name) -> JSON name.
# go-to-protobuf lower-cases the first letter of the Go name (APIGroup -> aPIGroup) where
# the JSON tag says otherwise.
RENAMES: dict[tuple[str, str], str] = {
    ("k8s.io.api.networking.v1.IngressClassParametersReference", "aPIGroup"): "apiGroup",
}

# schema.json type-name prefixes tried per proto package, most specific first.
_SCHEMA_PREFIXES: dict[str, tuple[str, ...]] = {
    "k8s.io.api.core.v1": ("CoreV1", "V1"),
    "k8s.io.api.discovery.v1": ("DiscoveryV1", "V1"),
}

_SCALARS = {
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
    "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
}

Fields = dict[str, list[Any]]


# --- step 1: .proto text from descriptors embedded in a Go binary ------------------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(number, value) pairs of one message; varints as int, length-delimited as bytes."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
            out.append((num, val))
        elif wire == 2:
            n, i = _varint(buf, i)
            out.append((num, buf[i:i + n]))
            i += n
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            out.append((num, buf[i:i + size]))
            i += size
        else:
            raise ValueError(f"wire type {wire}")
    return out


# FieldDescriptorProto.Type -> proto type name.
_DESC_TYPES = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64",
               7: "fixed32", 8: "bool", 9: "string", 12: "bytes", 13: "uint32",
               15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64"}
_GOGO_NULLABLE = 65001  # gogoproto.nullable, a FieldOptions extension


def _first(pairs: list[tuple[int, Any]], num: int, default: Any = None) -> Any:
    return next((v for n, v in pairs if n == num), default)


def _render_message(msg: bytes, indent: str, out: list[str]) -> None:
    pairs = _fields(msg)
    name = _first(pairs, 1).decode()
    nested = {_first(_fields(n), 1).decode(): n for k, n in pairs if k == 3}
    maps: dict[str, tuple[str, str]] = {}
    for nname, nraw in nested.items():
        npairs = _fields(nraw)
        opts = _first(npairs, 7, b"")
        if (7, 1) in _fields(opts):  # MessageOptions.map_entry
            kv = {_first(_fields(f), 1).decode(): _fields(f) for k, f in npairs if k == 2}
            maps[nname] = (_type_text(kv["key"]), _type_text(kv["value"]))
    out.append(f"{indent}message {name} {{")
    for k, raw in pairs:
        if k != 2:
            continue
        f = _fields(raw)
        fname, number, label = _first(f, 1).decode(), _first(f, 3), _first(f, 4)
        opts = _fields(_first(f, 8, b""))
        suffix = " [(gogoproto.nullable) = false]" if (_GOGO_NULLABLE, 0) in opts else ""
        type_name = (_first(f, 6) or b"").decode()
        short = type_name.rsplit(".", 1)[-1]
        if label == 3 and type_name.endswith(f".{name}.{short}") and short in maps:
            key, value = maps[short]
            out.append(f"{indent}  map<{key}, {value}> {fname} = {number}{suffix};")
            continue
        word = {1: "optional", 2: "required", 3: "repeated"}[label]
        out.append(f"{indent}  {word} {_type_text(f)} {fname} = {number}{suffix};")
    for nname, nraw in nested.items():
        if nname not in maps:
            _render_message(nraw, indent + "  ", out)
    out.append(f"{indent}}}")
    out.append("")


def _type_text(field: list[tuple[int, Any]]) -> str:
    t = _first(field, 5)
    if t in (11, 14):  # message, enum
        name: bytes = _first(field, 6)
        return name.decode()  # fully qualified, leading dot
    return _DESC_TYPES[t]


def render_file(desc: bytes) -> tuple[str, str]:
    """(import path, .proto text) of one FileDescriptorProto."""
    pairs = _fields(desc)
    path, package = _first(pairs, 1).decode(), _first(pairs, 2).decode()
    out = ["// Rendered by tools/gen_proto.py extract from an embedded FileDescriptorProto.",
           'syntax = "proto2";', "", f"package {package};", ""]
    out += [f'import "{d.decode()}";' for k, d in pairs if k == 3]
    out.append("")
    for k, m in pairs:
        if k == 4:
            _render_message(m, "", out)
    return path, "\n".join(out)


def extract(binary: Path, out_dir: Path) -> None:
    """Write the .proto texts of FILES found in `binary` under `out_dir`."""
    data = binary.read_bytes()
    found: dict[str, str] = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", data):
        try:
            desc = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():])
        except zlib.error:
            continue
        try:
            path, text = render_file(desc)
        except (ValueError, IndexError, KeyError, AttributeError, UnicodeDecodeError):
            continue  # some other gzip stream
        if path in FILES:
            found[path] = text
    missing = [f for f in FILES if f not in found]
    if missing:
        raise SystemExit(f"{binary}: no embedded descriptor for {missing}")
    for path, text in found.items():
        dest = out_dir / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        print(f"wrote {dest}", file=sys.stderr)


# --- step 2: .proto text -> proto.json ---------------------------------------------------

_TOKEN = re.compile(r'"[^"]*"|[A-Za-z_.][A-Za-z0-9_.]*|-?\d+|[{}\[\]<>=;,()]')


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


class ProtoFile:
    """The messages of one .proto text: {full name: [(label, type, name, number, opts)]}."""

    def __init__(self, text: str) -> None:
        self.toks = _TOKEN.findall(_strip_comments(text))
        self.i = 0
        self.package = ""
        self.gogo = "gogoproto" in text
        self.messages: dict[str, list[tuple[str, str, str, int, str]]] = {}
        while self.i < len(self.toks):
            tok = self.next()
            if tok == "package":
                self.package = self.next()
                self.expect(";")
            elif tok == "message":
                self.message(self.package)
            elif tok in ("syntax", "import", "option"):
                self.skip_statement()
            else:
                raise SystemExit(f"unexpected top-level token {tok!r}")

    def next(self) -> str:
        tok: str = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, tok: str) -> None:
        got = self.next()
        if got != tok:
            raise SystemExit(f"expected {tok!r}, got {got!r} (token {self.i})")

    def skip_statement(self) -> None:
        while self.next() != ";":
            pass

    def message(self, scope: str) -> None:
        full = f"{scope}.{self.next()}"
        self.expect("{")
        fields = self.messages.setdefault(full, [])
        while True:
            tok = self.next()
            if tok == "}":
                return
            if tok == "message":
                self.message(full)
            elif tok in ("option", "reserved", "extensions"):
                self.skip_statement()
            elif tok in ("enum", "oneof"):
                raise SystemExit(f"{full}: {tok} is not supported")
            elif tok == "map":
                self.expect("<")
                key = self.next()
                self.expect(",")
                value = self.next()
                self.expect(">")
                fields.append(self.field("map", f"map<{key},{value}>"))
            elif tok in ("optional", "required", "repeated"):
                fields.append(self.field(tok, self.next()))
            else:
                raise SystemExit(f"{full}: unexpected token {tok!r}")

    def field(self, label: str, type_: str) -> tuple[str, str, str, int, str]:
        name = self.next()
        self.expect("=")
        number = int(self.next())
        opts: list[str] = []
        tok = self.next()
        if tok == "[":
            while (tok := self.next()) != "]":
                opts.append(tok)
            tok = self.next()
        if tok != ";":
            raise SystemExit(f"field {name}: expected ';', got {tok!r}")
        return label, type_, name, number, " ".join(opts)


def _resolve(type_: str, package: str, known: dict[str, Any]) -> str:
    """A message type reference as written -> its full name (proto scoping, simplified to
    what these files use: absolute names, or names relative to the file's package)."""
    if type_.startswith("."):
        return type_[1:]
    if f"{package}.{type_}" in known:
        return f"{package}.{type_}"
    if type_ in known:
        return type_
    raise SystemExit(f"unresolved type {type_!r} in package {package}")


def _spec(type_: str, package: str, known: dict[str, Any]) -> str:
    if type_ in _SCALARS:
        return type_
    full = _resolve(type_, package, known)
    return SPECIAL[full][0] if full in SPECIAL else full


def _schema_name(full: str, schema: dict[str, dict[str, str]]) -> str | None:
    package, short = full.rsplit(".", 1)
    for prefix in _SCHEMA_PREFIXES.get(package, ("V1",)):
        if prefix + short in schema:
            return prefix + short
    return None


def generate(proto_dir: Path, schema_path: Path) -> dict[str, Fields]:
    """The proto.json table; raises SystemExit on anything it cannot account for."""
    raw: dict[str, tuple[str, bool, list[tuple[str, str, str, int, str]]]] = {}
    gogo_everywhere = True
    for path in FILES:
        src = proto_dir / path
        if not src.exists():
            raise SystemExit(f"missing {src}")
        pf = ProtoFile(src.read_text())
        gogo_everywhere &= pf.gogo
        for name, fields in pf.messages.items():
            raw[name] = (pf.package, pf.gogo, fields)
    if not gogo_everywhere:
        print("warning: some inputs carry no gogoproto options; their scalars are taken as "
              "non-pointer fields", file=sys.stderr)
    schema: dict[str, dict[str, str]] = json.loads(schema_path.read_text())["types"]

    for full, (spec, layout) in SPECIAL.items():
        have = tuple((n, name, t) for _, t, name, n, _ in raw[full][2])
        if have != layout:
            raise SystemExit(f"{full}: layout {have} differs from the decoder's {layout}")

    table: dict[str, Fields] = {}
    problems: list[str] = []
    todo = list(ROOTS)
    while todo:
        full = todo.pop()
        if full in table or full in SPECIAL:
            continue
        package, gogo, fields = raw[full]
        out: Fields = {}
        for label, type_, name, number, opts in fields:
            if label == "map":
                key, value = type_[4:-1].split(",")
                vspec = _spec(value, package, raw)
                spec, repeated = f"map:{key}:{vspec}", False
                refs = [vspec]
            else:
                spec, repeated = _spec(type_, package, raw), label == "repeated"
                refs = [spec]
            todo += [r for r in refs if r in raw and r not in SPECIAL]
            pointer = (gogo and type_ in _SCALARS and label == "optional"
                       and "nullable" not in opts)
            json_name = "" if (full, name) in INLINE else RENAMES.get((full, name), name)
            out[str(number)] = [json_name, spec, repeated, pointer]
        table[full] = dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    # Cross-check JSON names against schema.json. Inline messages are checked against
    # the schema of the message that embeds them.
    for full in sorted(table):
        sname = _schema_name(full, schema)
        if sname is None:
            continue
        problems += _check(full, table, schema[sname], sname)
    unchecked = sorted(m for m in table if _schema_name(m, schema) is None
                       and not _is_inlined(m, table))
    if unchecked:
        print(f"note: not in schema.json, names unchecked: {unchecked}", file=sys.stderr)
    if problems:
        raise SystemExit("schema cross-check failed:\n  " + "\n  ".join(problems))
    return dict(sorted(table.items()))


def _is_inlined(full: str, table: dict[str, Fields]) -> bool:
    return any(e[0] == "" and e[1] == full for fields in table.values() for e in fields.values())


def _json_names(full: str, table: dict[str, Fields]) -> list[tuple[str, str]]:
    """(JSON name, owning message) of every field, inline members spread out."""
    out: list[tuple[str, str]] = []
    for json_name, spec, _, _ in table[full].values():
        if json_name == "":
            out += _json_names(spec, table)
        else:
            out.append((json_name, full))
    return out


def _check(full: str, table: dict[str, Fields], fields: dict[str, str], sname: str) -> list[str]:
    problems = []
    for json_name, owner in _json_names(full, table):
        if json_name not in fields:
            problems.append(f"{owner} field {json_name!r} is not a field of {sname} "
                            f"(add it to RENAMES or INLINE)")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="render .proto texts from a Go binary's descriptors")
    ex.add_argument("--binary", type=Path, required=True)
    ex.add_argument("--out", type=Path, required=True)
    gen = sub.add_parser("generate", help="write proto.json from .proto texts")
    gen.add_argument("--proto-dir", type=Path, required=True)
    gen.add_argument("--schema", type=Path, default=Path("src/svcnet/api/schema.json"))
    gen.add_argument("--out", type=Path, default=Path("src/svcnet/api/proto.json"))
    args = ap.parse_args()
    if args.cmd == "extract":
        extract(args.binary, args.out)
        return
    table = generate(args.proto_dir, args.schema)
    text = json.dumps(table, indent=None, separators=(",", ":"))
    # One message per line: small diffs when upstream adds a field.
    text = text.replace('},"', '},\n"').replace('{"k8s', '{\n"k8s', 1)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}: {len(table)} messages, "
          f"{sum(len(f) for f in table.values())} fields", file=sys.stderr)


if __name__ == "__main__":
    main()
