"""Cell formatting shared by the Table printers: label maps, label selectors, address lists.

Each function reproduces one apimachinery/printers helper exactly, because kubectl shows the
resulting strings verbatim (reference/apiserver.md §2.3): `labels.FormatLabels`,
`LabelSelectorAsSelector(...).String()`, `metav1.FormatLabelSelector`, the load-balancer
status stringer, `net.JoinHostPort` and the `a,b,c + N more...` lists.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["format_label_selector", "format_labels", "join_host_port", "label_selector_string",
           "lb_ingress", "list_with_more"]


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: `k=v` sorted by key, joined by ","; `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def label_selector_string(selector: Mapping[str, Any] | None) -> str:
    """`LabelSelectorAsSelector(sel).String()`: requirements sorted by key (stable).

    nil and empty selectors both give "". Raises ValueError where apimachinery returns an
    error (unknown operator, In/NotIn without values, Exists/DoesNotExist with values).
    Label key/value syntax is not re-validated: stored objects passed validation.
    """
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = [
        (k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = sorted(str(v) for v in (expr.get("values") or []))
        if op in ("In", "NotIn"):
            if not values:
                raise ValueError(f"for '{op}' operator, values set can't be empty")
            word = "in" if op == "In" else "notin"
            reqs.append((key, f"{key} {word} ({','.join(values)})"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise ValueError(f"values set must be empty for {op}")
            reqs.append((key, key if op == "Exists" else f"!{key}"))
        else:
            raise ValueError(f"{op!r} is not a valid label selector operator")
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: `app=web,tier in (a,b)`; `<none>` if empty; `<error>`."""
    try:
        text = label_selector_string(selector)
    except ValueError:
        return "<error>"
    return text or "<none>"


def lb_ingress(ingress: list[dict[str, Any]] | None) -> str:
    """Load-balancer ingress points: IP (else hostname), de-duplicated, sorted, joined by ","."""
    points = {i.get("ip") or i.get("hostname") for i in ingress or []}
    return ",".join(sorted(p for p in points if p))


def join_host_port(host: str, port: int) -> str:
    """net.JoinHostPort: IPv6 addresses are bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def list_with_more(items: list[str], count: int, limit: int = 3, empty: str = "<unset>") -> str:
    """First `limit` items joined by ",", then ` + N more...`; `empty` when there are none."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or empty
