"""Owner-only, atomic writes of secrets and state."""

from __future__ import annotations

from pathlib import Path

from svcnet.privatefile import write_private


def test_private_file_is_owner_only_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o600
    write_private(path, b"\x00bytes", durable=True)
    assert path.read_bytes() == b"\x00bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary left behind
