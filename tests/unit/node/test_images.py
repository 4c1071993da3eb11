"""The image catalog: reference normalization, image configs in image terms, and the
translation of image argv to node programs (built-ins, agnhost, busybox, nginx, redis)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from svcnet.node.images import (
    ImageCatalog,
    NodeArgv,
    make_applet_links,
    nginx_config,
    normalize,
)
from svcnet.node.types import ImageRef

SCRATCH = "/state/scratch/uid/c"


def catalog(**programs: str) -> ImageCatalog:
    calls: list[str] = []

    def applets(path: str) -> frozenset[str]:
        calls.append(path)
        return frozenset({"sh", "wget", "nslookup"})

    cat = ImageCatalog(which=programs.get, applets=applets, python="/py")
    cat.applet_calls = calls  # type: ignore[attr-defined]
    return cat


@pytest.mark.parametrize("ref,repo", [
    ("nginx", "nginx"),
    ("nginx:1.25", "nginx"),
    ("docker.io/library/nginx:1.25", "nginx"),
    ("index.docker.io/library/busybox:1.36", "busybox"),
    ("nginx@sha256:0123abcd", "nginx"),
    ("busybox:1.36@sha256:0123abcd", "busybox"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.39", "registry.k8s.io/e2e-test-images/agnhost"),
    ("localhost:5000/app:v1", "localhost:5000/app"),
    ("bitnami/redis:7", "bitnami/redis"),
    (" Redis ", "redis"),
])
def test_normalize(ref: str, repo: str) -> None:
    assert normalize(ref) == repo


@pytest.mark.parametrize("ref,family", [
    ("serve-hostname", "serve-hostname"),
    ("registry.k8s.io/serve_hostname:1.4", "serve-hostname"),
    ("k8s.gcr.io/serve_hostname", "serve-hostname"),
    ("netexec:1.1", "netexec"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.53", "agnhost"),
    ("k8s.gcr.io/e2e-test-images/agnhost:2.39", "agnhost"),
    ("docker.io/library/busybox:1.36", "busybox"),
    ("nginx:1.25-alpine", "nginx"),
    ("redis:7", "redis"),
    ("bitnami/redis:7", None),
    ("myorg/app:1", None),
])
def test_families(ref: str, family: str | None) -> None:
    assert catalog().family(ref) == family


def test_resolve_gives_image_terms() -> None:
    cat = catalog()
    assert cat.resolve("registry.k8s.io/e2e-test-images/agnhost:2.39") == ImageRef(
        entrypoint=("/agnhost",), default_args=("pause",))
    assert cat.resolve("busybox") == ImageRef(entrypoint=(), default_args=("sh",))
    assert cat.resolve("nginx").default_args == ("nginx", "-g", "daemon off;")  # type: ignore[union-attr]
    assert cat.resolve("foo:1") is None
    assert 'image "foo:1" is not in svcnet\'s catalog' in cat.unknown_image_message("foo:1")


AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.39"


@pytest.mark.parametrize("argv,out", [
    (("/agnhost", "netexec", "--http-port", "8080", "--udp-port=8081"),
     ("/py", "-m", "svcnet.images.netexec", "--http-port", "8080", "--udp-port=8081")),
    (("agnhost", "serve-hostname", "--udp"), ("/py", "-m", "svcnet.images.serve_hostname",
                                             "--udp")),
    (("/agnhost", "pause"), ("/py", "-c", "import signal; signal.pause()")),
    (("sh", "-c", "sleep 1"), ("sh", "-c", "sleep 1")),  # not agnhost: runs from the node
])
def test_agnhost(argv: tuple[str, ...], out: tuple[str, ...]) -> None:
    assert catalog().node_argv(AGNHOST, argv, scratch_dir=SCRATCH) == NodeArgv(argv=out)


def test_agnhost_unsupported_subcommand() -> None:
    res = catalog().node_argv(AGNHOST, ("/agnhost", "porter"), scratch_dir=SCRATCH)
    assert res.reason == "ErrImagePull" and "'porter'" in res.message
    assert "serve-hostname, netexec and pause" in res.message


def test_busybox_applets_and_pass_through() -> None:
    cat = catalog(busybox="/bin/busybox")
    img = "busybox:1.36"
    assert cat.node_argv(img, ("sh",), scratch_dir=SCRATCH).argv == ("/bin/busybox", "sh")
    assert cat.node_argv(img, ("/bin/wget", "-qO-", "http://web"), scratch_dir=SCRATCH).argv == (
        "/bin/busybox", "wget", "-qO-", "http://web")
    assert cat.node_argv(img, ("busybox", "nc"), scratch_dir=SCRATCH).argv == (
        "/bin/busybox", "nc")
    assert cat.node_argv(img, ("/opt/tool/sh",), scratch_dir=SCRATCH).argv == ("/opt/tool/sh",)
    assert cat.node_argv(img, ("curl", "x"), scratch_dir=SCRATCH).argv == ("curl", "x")
    assert cat.applet_calls == ["/bin/busybox"]  # type: ignore[attr-defined]  # cached


def test_busybox_missing() -> None:
    cat = catalog()
    res = cat.node_argv("busybox", ("sh",), scratch_dir=SCRATCH)
    assert res.reason == "ErrImagePull"
    assert res.message == ('image "busybox" runs the program busybox, which is not installed '
                           "on this node; install it with: apt-get install busybox")
    # an explicit command runs the node's own program
    assert cat.node_argv("busybox", ("sh", "-c", "x"), scratch_dir=SCRATCH).argv == (
        "sh", "-c", "x")


def test_nginx() -> None:
    res = catalog(nginx="/usr/sbin/nginx").node_argv(
        "nginx:1.25", ("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"),
        scratch_dir=SCRATCH + "/")
    assert res.scratch_dir == SCRATCH
    assert res.argv[:5] == ("/bin/sh", "-c", res.argv[2], "svcnet-nginx", SCRATCH)
    assert res.argv[5] == nginx_config(SCRATCH)
    assert res.argv[6:] == ("/usr/sbin/nginx", "-e", "stderr", "-p", SCRATCH + "/", "-c",
                            SCRATCH + "/nginx.conf", "-g", "daemon off;")
    conf = nginx_config(SCRATCH)
    assert f"pid {SCRATCH}/nginx.pid;" in conf and "listen 80 default_server;" in conf
    assert "daemon" not in conf and "/usr/share/nginx/html" in conf
    missing = catalog().node_argv("nginx", ("nginx", "-g", "daemon off;"), scratch_dir=SCRATCH)
    assert missing.reason == "ErrImagePull" and "apt-get install nginx" in missing.message


@pytest.mark.parametrize("argv,out", [
    (("docker-entrypoint.sh", "redis-server"),
     ("/usr/bin/redis-server", "--port", "6379", "--save", "", "--protected-mode", "no")),
    (("docker-entrypoint.sh", "--appendonly", "yes"),
     ("/usr/bin/redis-server", "--port", "6379", "--save", "", "--protected-mode", "no",
      "--appendonly", "yes")),
    (("redis-cli", "-h", "redis", "ping"), ("/usr/bin/redis-cli", "-h", "redis", "ping")),
])
def test_redis(argv: tuple[str, ...], out: tuple[str, ...]) -> None:
    cat = catalog(**{"redis-server": "/usr/bin/redis-server", "redis-cli": "/usr/bin/redis-cli"})
    assert cat.node_argv("redis:7", argv, scratch_dir=SCRATCH).argv == out


def test_redis_cli_missing_names_its_package() -> None:
    res = catalog().node_argv("redis", ("redis-cli", "ping"), scratch_dir=SCRATCH)
    assert "apt-get install redis-tools" in res.message


def test_unknown_image_passes_argv_through_and_empty_argv_fails() -> None:
    cat = catalog()
    assert cat.node_argv("myorg/app:1", ("/app", "-v"), scratch_dir=SCRATCH).argv == ("/app", "-v")
    assert cat.node_argv("busybox", (), scratch_dir=SCRATCH).reason == "RunContainerError"


def test_busybox_containers_get_the_applets_first_on_path(tmp_path: Path) -> None:
    cat = ImageCatalog(which={"busybox": "/bin/busybox"}.get,
                       applets=lambda _p: frozenset({"sh", "nc", "wget"}), python="/py",
                       bin_dir=str(tmp_path))
    res = cat.node_argv("busybox", ("sh", "-c", "nc -z web 80"), scratch_dir=SCRATCH)
    links = tmp_path / "busybox"
    assert res.argv == ("/bin/busybox", "sh", "-c", "nc -z web 80")
    assert res.path == str(links)
    assert sorted(p.name for p in links.iterdir()) == ["nc", "nslookup", "sh", "wget"]
    assert all(os.readlink(links / p) == "/bin/busybox" for p in ("nc", "sh", "wget"))
    # nslookup is svcnet's (busybox 1.28's), in a shell or run directly
    script = links / "nslookup"
    assert script.read_text() == '#!/bin/sh\nexec /py -m svcnet.images.nslookup "$@"\n'
    assert os.access(script, os.X_OK) and not script.is_symlink()
    direct = cat.node_argv("busybox", ("nslookup", "web"), scratch_dir=SCRATCH)
    assert direct.argv == ("/py", "-m", "svcnet.images.nslookup", "web")
    assert direct.path == str(links)
    # a program busybox lacks still runs from the node's PATH, with the applets first
    other = cat.node_argv("busybox", ("python3", "-V"), scratch_dir=SCRATCH)
    assert other.argv == ("python3", "-V") and other.path == str(links)
    # images other than busybox are untouched
    assert cat.node_argv("nginx", ("sleep", "1"), scratch_dir=SCRATCH).path == ""


def test_applet_links_are_repaired_and_failures_fall_back(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    (d / "nc").symlink_to("/old/busybox")
    assert make_applet_links(str(d), "/bin/busybox", ["nc", "bad/name", ""]) == str(d)
    assert os.readlink(d / "nc") == "/bin/busybox" and not (d / "bad").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert make_applet_links(str(blocker / "sub"), "/bin/busybox", ["nc"]) == ""
    # a script replaces the applet of its name, and a changed one is rewritten
    (d / "nslookup").symlink_to("/bin/busybox")
    assert make_applet_links(str(d), "/bin/busybox", ["nc", "nslookup"],
                             {"nslookup": "#!/bin/sh\necho v1\n"}) == str(d)
    assert (d / "nslookup").read_text() == "#!/bin/sh\necho v1\n"
    make_applet_links(str(d), "/bin/busybox", ["nslookup"], {"nslookup": "#!/bin/sh\n"})
    assert (d / "nslookup").read_text() == "#!/bin/sh\n"
