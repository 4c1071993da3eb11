"""HttpClient.from_kubeconfig: what it reads, and a clear ValueError for what it cannot."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import yaml

from svcnet.client.http import HttpClient

GOOD = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443",
                                                 "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "abc"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}


def write(tmp_path: Path, cfg: object) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg) if not isinstance(cfg, str) else cfg)
    return path


def test_reads_server_token_and_tls_settings(tmp_path: Path) -> None:
    client = HttpClient.from_kubeconfig(write(tmp_path, GOOD))
    assert client.server == "https://10.0.0.1:6443"
    assert client.headers == {"Authorization": "Bearer abc"} and client.ssl is False


def _without(path: tuple[str, ...]) -> dict[str, object]:
    import copy
    cfg = copy.deepcopy(GOOD)
    node: object = cfg
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]  # type: ignore[index]
    del node[path[-1]]  # type: ignore[attr-defined]
    return cfg


@pytest.mark.parametrize("cfg, message", [
    ("clusters: [", "not valid YAML at line 1"),
    ("- a\n- b\n", "not a kubeconfig"),
    (_without(("current-context",)), "no current-context"),
    ({**GOOD, "current-context": "other"}, "no context named 'other'"),
    ({**GOOD, "users": []}, "no user named 'u'"),
    (_without(("clusters", "0", "cluster", "server")), "cluster 'k' has no server"),
    ({**GOOD, "clusters": [{"name": "k", "cluster": {
        "server": "https://x", "certificate-authority-data": "%%%"}}]}, "is not base64"),
])
def test_what_it_cannot_use_is_a_value_error(tmp_path: Path, cfg: object,
                                             message: str) -> None:
    with pytest.raises(ValueError) as e:
        HttpClient.from_kubeconfig(write(tmp_path, cfg))
    assert message in str(e.value)


def test_a_ca_file_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        HttpClient.from_kubeconfig(tmp_path / "nope")
    cfg = {**GOOD, "clusters": [{"name": "k", "cluster": {
        "server": "https://x", "certificate-authority-data": base64.b64encode(b"junk").decode()}}]}
    with pytest.raises(ssl.SSLError):  # not a certificate: the TLS layer says so (an OSError)
        HttpClient.from_kubeconfig(write(tmp_path, cfg))
