"""Controllers: each a pure reconcile(inputs) -> plan plus a thin runner that applies it."""
