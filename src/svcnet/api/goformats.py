"""The string formats Go's decoding of Kubernetes types checks, with Go's error texts.

A `resource.Quantity` must parse as one (`1Gi`, `500m`, `1e3`), a `metav1.Time` as RFC 3339
the way Go's time.Parse reads it, and a `[]byte` as padded standard base64. kube-apiserver
rejects a body that breaks one of these while decoding it, before any validation, with the
parser's own message (`quantities must match the regular expression ...`, `parsing time
"x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"`, `illegal base64 data at
input byte 3`); `svcnet.api.decode` wraps these `FormatError`s as kube does.
"""

from __future__ import annotations

import binascii
import json
import re
from base64 import b64decode


class FormatError(Exception):
    """A Go-decoding error; `decode` wraps its text with the kind."""


# Quantity syntax (k8s.io/apimachinery resource.ParseQuantity): signed decimal number, then a
# binary-SI, decimal-SI or exponent suffix. The regex in the error text is upstream's wording.
QUANTITY_FORMAT_ERROR = ("quantities must match the regular expression "
                          "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
_QUANTITY = re.compile(r"[+-]?([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)")
_QUANTITY_SUFFIX = re.compile(r"(?:|[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)")


def check_quantity(text: str) -> None:
    """Raise resource.ParseQuantity's error for text that is not a quantity: the shape
    (number, then suffix letters, then an optional signed exponent) is a format error,
    a well-shaped but unknown suffix (`1ki`, `1Mm`) a suffix error."""
    m = _QUANTITY.fullmatch(text.strip())
    if m is None or not (m.group(1) or m.group(2)):
        raise FormatError(QUANTITY_FORMAT_ERROR)
    if not _QUANTITY_SUFFIX.fullmatch(m.group(3)):
        raise FormatError("unable to parse quantity's suffix")


# RFC 3339 as Go's time.Parse(time.RFC3339, s) accepts it (fractional seconds optional).
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?"
                      r"(?:Z|[+-](\d{2}):(\d{2}))")
_LAYOUT = "2006-01-02T15:04:05Z07:00"
# (layout element, pattern matching it at the start of the remaining text)
_LAYOUT_STEPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("2006", re.compile(r"\d{4}")), ("-", re.compile("-")), ("01", re.compile(r"\d{2}")),
    ("-", re.compile("-")), ("02", re.compile(r"\d{2}")), ("T", re.compile("T")),
    ("15", re.compile(r"\d{1,2}")), (":", re.compile(":")), ("04", re.compile(r"\d{2}")),
    (":", re.compile(":")), ("05", re.compile(r"\d{2}(?:[.,]\d+)?")),
    ("Z07:00", re.compile(r"Z|[+-]\d{2}:\d{2}")),
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def check_time(text: str) -> None:
    """Raise Go's time.Parse error for a string that is not RFC 3339."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        pos = 0
        for elem, pat in _LAYOUT_STEPS:
            step = pat.match(text, pos)
            if step is None:
                raise FormatError(f'parsing time {_go_quote(text)} as "{_LAYOUT}": cannot parse '
                                 f'{_go_quote(text[pos:])} as "{elem}"')
            pos = step.end()
        raise FormatError(f'parsing time {_go_quote(text)}: extra text: {_go_quote(text[pos:])}')
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    problem = ""
    if not 1 <= month <= 12:
        problem = "month"
    elif hour > 23:
        problem = "hour"
    elif minute > 59:
        problem = "minute"
    elif second > 59:
        problem = "second"
    elif not 1 <= day <= _DAYS[month - 1] or (month == 2 and day == 29 and not _leap(year)):
        problem = "day"
    if problem:
        raise FormatError(f"parsing time {_go_quote(text)}: {problem} out of range")


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def check_base64(text: str) -> None:
    """Go's base64.StdEncoding: padded standard alphabet; CR/LF ignored."""
    try:
        b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
        return
    except (binascii.Error, ValueError):
        pass
    offset = len(text)
    for i, ch in enumerate(text):
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=\r\n")):
            offset = i
            break
    else:
        stripped = [i for i, ch in enumerate(text) if ch not in "\r\n"]
        offset = stripped[len(stripped) - len(stripped) % 4] if len(stripped) % 4 else len(text)
    raise FormatError(f"illegal base64 data at input byte {offset}")
