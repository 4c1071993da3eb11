"""Writing files only their owner may read (tokens, keys, kubeconfigs, cluster state).

`write_private(path, data)` writes to a temporary sibling created with mode 0600 and
renames it over `path`, so no other user can read the secret at any moment and a reader
sees the old or the new content, never half of either. With `durable=True` the data is
fsynced before the rename, for state that must survive a crash.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes | str, *, durable: bool = False) -> None:
    """Atomically replace `path` with `data`, readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
