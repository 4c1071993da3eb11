"""open_store: pick a Store backend by name (the server's `--datastore` flag)."""

from __future__ import annotations

import os

from svcnet.store.interface import Store
from svcnet.store.memory import MemoryStore
from svcnet.store.sqlite import SqliteStore

__all__ = ["DATASTORES", "open_store"]

#: Accepted `datastore` names, default first.
DATASTORES = ("sqlite", "memory")


async def open_store(datastore: str, data_dir: str) -> Store:
    """Open the named backend: "sqlite" keeps its file at `<data_dir>/state.db` (created,
    with `data_dir`, if absent); "memory" ignores `data_dir` and keeps nothing.
    Raises ValueError for any other name."""
    if datastore == "sqlite":
        return SqliteStore.open(os.path.join(data_dir, "state.db"))
    if datastore == "memory":
        return MemoryStore()
    raise ValueError(f'unknown datastore "{datastore}": supported: {", ".join(DATASTORES)}')
