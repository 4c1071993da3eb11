"""Errors of the dataplane layer, shared by the real appliers and their fakes.

An apply failure carries structure, never just stderr: which backend, which line of the
payload failed (1-based, as iptables-restore and nft report it), that line's text and the
reason. Callers log `ApplyError.context(payload)` and schedule a full resync; they never
parse messages.
"""

from __future__ import annotations


class DataplaneError(Exception):
    """Base of every dataplane error."""


class ApplyError(DataplaneError):
    """A payload (iptables-restore input, nft script) was rejected; nothing was applied.

    `line` is the 1-based line number in the payload (0 if not tied to a line) and `text`
    that line's content.
    """

    def __init__(self, backend: str, line: int, text: str, reason: str) -> None:
        self.backend = backend
        self.line = line
        self.text = text
        self.reason = reason
        where = f"line {line}: " if line else ""
        super().__init__(f"{backend}: {where}{reason}" + (f" [{text}]" if text else ""))

    def is_not_found(self) -> bool:
        """True if the failure was a reference to a chain/target/match that does not exist."""
        return "does not exist" in self.reason or "couldn't load" in self.reason.lower()

    def is_busy(self) -> bool:
        """True if the failure was deleting a chain that is still referenced or not empty."""
        return "still referenced" in self.reason or "not empty" in self.reason

    def context(self, payload: str, around: int = 3) -> str:
        """The failing line with `around` lines either side, numbered, for logs."""
        lines = payload.splitlines()
        lo, hi = max(1, self.line - around), min(len(lines), self.line + around)
        return "\n".join(f"{'>' if i == self.line else ' '}{i:5d} {lines[i - 1]}"
                         for i in range(lo, hi + 1))
