"""Bearer-token authentication and the authorization rules for admins and nodes.

Tokens live in `DATA_DIR/tokens.json` ({token: {"user": ..., "groups": [...]}}), created on
first start with one admin token. Node tokens (user `system:node:<name>`, group
`system:nodes`) are added with `svcnet token create --node NAME`; the server rereads the
file when it changes, so no restart is needed. Authorization is a small fixed policy that
mirrors what Kubernetes' Node authorizer + `system:node` role allow a kubelet/kube-proxy:
read what a node needs to run Pods and program Services, write its own Node, Pod status,
Events. Anything else is 403, as RBAC would answer.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from svcnet.privatefile import write_private

ADMIN_USER = "admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups

    @property
    def node_name(self) -> str | None:
        if "system:nodes" in self.groups and self.name.startswith("system:node:"):
            return self.name[len("system:node:"):]
        return None


class TokenFile:
    """The token table, reloaded when the file's mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self._tokens: dict[str, User] = {}

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._tokens = {}
            return
        if st.st_mtime == self._mtime:
            return
        raw = orjson.loads(self.path.read_bytes() or b"{}")
        self._tokens = {t: User(v["user"], tuple(v.get("groups", ()))) for t, v in raw.items()}
        self._mtime = st.st_mtime

    def authenticate(self, token: str) -> User | None:
        self._load()
        for known, user in self._tokens.items():
            # constant-time compare: tokens are secrets
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        return None

    def token_for(self, user: str) -> str | None:
        """The token of `user` (the API server presents a node's own token to its agent)."""
        self._load()
        return next((t for t, u in self._tokens.items() if u.name == user), None)

    def add(self, user: str, groups: tuple[str, ...]) -> str:
        """Create a token for `user` (replacing an existing one of the same user)."""
        raw = orjson.loads(self.path.read_bytes()) if self.path.exists() else {}
        raw = {t: v for t, v in raw.items() if v.get("user") != user}
        token = secrets.token_hex(24)
        raw[token] = {"user": user, "groups": list(groups)}
        write_private(self.path, orjson.dumps(raw, option=orjson.OPT_INDENT_2))
        return token

    def admin_token(self) -> str:
        """The admin token, created on first use."""
        raw = orjson.loads(self.path.read_bytes()) if self.path.exists() else {}
        for t, v in raw.items():
            if v.get("user") == ADMIN_USER:
                return str(t)
        return self.add(ADMIN_USER, ADMIN_GROUPS)


# What a node may do: (verb set, resource) pairs; "*" = any verb.
_NODE_READ = {"get", "list", "watch"}
_NODE_RULES: dict[str, set[str]] = {
    "services": _NODE_READ, "endpoints": _NODE_READ, "endpointslices": _NODE_READ,
    "pods": _NODE_READ | {"delete"}, "pods/status": {"get", "update", "patch"},
    "nodes": _NODE_READ | {"create", "update", "patch"},
    "nodes/status": {"get", "update", "patch"},
    "events": {"create", "update", "patch"} | _NODE_READ,
    "configmaps": _NODE_READ, "secrets": _NODE_READ, "namespaces": _NODE_READ,
    "ingresses": _NODE_READ, "ingressclasses": _NODE_READ, "ingresses/status": {"update", "patch"},
    "networkpolicies": _NODE_READ,
}


def authorize(user: User, verb: str, resource: str, subresource: str, name: str | None) -> bool:
    """May `user` perform `verb` on `resource[/subresource]` (object `name`)?"""
    if user.is_admin:
        return True
    node = user.node_name
    if node is None:
        return False
    res = f"{resource}/{subresource}" if subresource else resource
    allowed = _NODE_RULES.get(res)
    if allowed is None or verb not in allowed:
        return False
    # A node may write only its own Node object.
    if resource == "nodes" and verb in ("update", "patch") and name not in (None, node):
        return False
    return True
