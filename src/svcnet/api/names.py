"""Name, label and annotation syntax rules, with apimachinery's exact messages.

kubectl users see these texts verbatim (`metadata.name: Invalid value: "Web": a lowercase
RFC 1123 label must ...`), so the wording and the regexes follow
apimachinery's pkg/util/validation (reference/apiserver.md §5.2).
"""

from __future__ import annotations

import re

from svcnet.api.errors import FieldError, invalid

DNS1123_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + r")*"
DNS1035_LABEL_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

_DNS1123_LABEL = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(DNS1035_LABEL_FMT)
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)


def _regex_msg(what: str, rule: str, examples: list[str], fmt: str) -> str:
    ex = ",  or ".join(f"'{e}'" for e in examples)
    return f"{what} must consist of {rule} (e.g. {ex}, regex used for validation is '{fmt}')"


def dns1123_label(value: str) -> list[str]:
    """Problems with `value` as an RFC 1123 label (namespace names, port names, ...)."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.fullmatch(value):
        errs.append(_regex_msg(
            "a lowercase RFC 1123 label",
            "lower case alphanumeric characters or '-', and must start and end with an "
            "alphanumeric character", ["my-name", "123-abc"], DNS1123_LABEL_FMT))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """Problems with `value` as an RFC 1123 subdomain (most object names)."""
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(_regex_msg(
            "a lowercase RFC 1123 subdomain",
            "lower case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character", ["example.com"], DNS1123_SUBDOMAIN_FMT))
    return errs


def dns1035_label(value: str) -> list[str]:
    """Problems with `value` as an RFC 1035 label (Service names)."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(_regex_msg(
            "a DNS-1035 label",
            "lower case alphanumeric characters or '-', start with an alphabetic character, "
            "and end with an alphanumeric character", ["my-name", "abc-123"], DNS1035_LABEL_FMT))
    return errs


def qualified_name(value: str) -> list[str]:
    """Problems with a label/annotation key (`[prefix/]name`)."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in dns1123_subdomain(prefix)]
    else:
        return [_regex_msg(
            "a qualified name",
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character", ["MyName", "my.name", "123-abc"], _QUALIFIED_NAME_FMT)
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.fullmatch(name):
        errs.append("name part " + _regex_msg(
            "", "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character", ["MyName", "my.name", "123-abc"],
            _QUALIFIED_NAME_FMT).lstrip())
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        errs.append(_regex_msg(
            "a valid label",
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character", ["MyValue", "my_value", "12345"], _LABEL_VALUE_FMT
        ).replace("must consist of", "must be an empty string or consist of", 1))
    return errs


def validate_labels(labels: dict[str, str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for k, v in labels.items():
        out += [invalid(path, k, m) for m in qualified_name(k)]
        if not isinstance(v, str):
            continue
        out += [invalid(path, v, m) for m in label_value(v)]
    return out


def validate_annotations(annotations: dict[str, str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    total = 0
    for k, v in annotations.items():
        out += [invalid(path, k, m) for m in qualified_name(k.lower())]
        total += len(k) + len(v or "")
    if total > 256 * 1024:
        out.append(FieldError("TooLong", path, omit_value=True,
                              detail="must have at most 262144 bytes"))
    return out
