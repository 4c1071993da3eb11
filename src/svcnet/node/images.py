"""The image catalog: what a container `image` means to a runtime that runs processes.

A process runtime cannot pull images, so svcnet gives a fixed set of image names a meaning:

* built-ins that svcnet implements itself (`serve-hostname`, `netexec`, and the names the
  Kubernetes docs use for them, including agnhost's `serve-hostname`/`netexec`/`pause`
  subcommands), run as `python -m svcnet.images.<name>`;
* well-known images mapped to the real program when it is installed on the node
  (busybox, nginx, redis);
* anything else runs only with an explicit `command:`.

The model is "an image is a set of programs". `resolve()` gives an image's ENTRYPOINT and
CMD *as the real image declares them* (`("/agnhost",)`, `("pause",)`), so the planner can
combine them with the Pod's command/args by the Kubernetes rules; `node_argv()` then
translates the resulting image argv into a node argv, program by program. That keeps
manifests written for the real images working: `command: ["/agnhost", "netexec"]`,
`args: ["netexec", "--http-port=8080"]`, `command: ["redis-server", "--appendonly",
"yes"]`, `command: ["sh", "-c", ...]` on busybox all mean what they mean upstream.
A program the image does not provide runs from the node's PATH, as written.

Lookups on the node (`which`, busybox's applet list) go through injected callables, so the
catalog is deterministic under test.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from svcnet.node.shim import DEFAULT_PATH
from svcnet.node.types import ImageRef

#: Why a container cannot start (kubelet's reason for an image it cannot get).
ERR_IMAGE_PULL = "ErrImagePull"

_STANDARD_BIN_DIRS = ("/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/",
                      "/usr/local/sbin/")
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")

# Image repositories (normalized, see `normalize`) -> family.
_FAMILIES: dict[str, str] = {
    **{k: "serve-hostname" for k in (
        "serve-hostname", "serve_hostname", "registry.k8s.io/serve_hostname",
        "k8s.gcr.io/serve_hostname", "gcr.io/google_containers/serve_hostname",
        "gcr.io/google-containers/serve_hostname")},
    **{k: "netexec" for k in (
        "netexec", "gcr.io/kubernetes-e2e-test-images/netexec",
        "registry.k8s.io/e2e-test-images/netexec", "k8s.gcr.io/e2e-test-images/netexec")},
    **{k: "agnhost" for k in (
        "agnhost", "registry.k8s.io/e2e-test-images/agnhost",
        "k8s.gcr.io/e2e-test-images/agnhost", "gcr.io/kubernetes-e2e-test-images/agnhost",
        "us.gcr.io/k8s-artifacts-prod/e2e-test-images/agnhost")},
    **{k: "busybox" for k in (
        "busybox", "registry.k8s.io/e2e-test-images/busybox", "k8s.gcr.io/busybox",
        "gcr.io/google-containers/busybox")},
    **{k: "nginx" for k in ("nginx", "registry.k8s.io/e2e-test-images/nginx")},
    "redis": "redis",
}

# family -> (ENTRYPOINT, CMD, WORKDIR) as the real image declares them.
_IMAGE_CONFIG: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "serve-hostname": (("/serve_hostname",), (), ""),
    "netexec": (("/netexec",), (), ""),
    "agnhost": (("/agnhost",), ("pause",), ""),
    "busybox": ((), ("sh",), ""),
    "nginx": (("/docker-entrypoint.sh",), ("nginx", "-g", "daemon off;"), ""),
    "redis": (("docker-entrypoint.sh",), ("redis-server",), ""),
}

# Node programs the mapped images need, and the Debian package that installs each.
_PACKAGES = {"busybox": "busybox", "nginx": "nginx", "redis-server": "redis-server",
             "redis-cli": "redis-tools"}

# busybox applets svcnet replaces with its own program (name -> module run with -m): see
# svcnet.images.nslookup for why the image's nslookup is busybox 1.28's.
_OWN_APPLETS = {"nslookup": "svcnet.images.nslookup"}

_REDIS_DEFAULTS = ("--port", "6379", "--save", "", "--protected-mode", "no")

# Writes the generated nginx.conf into the container's scratch dir, then execs nginx, so
# nginx stays the container's main process (signals reach it directly).
# $1 = scratch dir, $2 = config text, "$@" after shift = the nginx argv.
_NGINX_SCRIPT = ('set -e; d="$1"; conf="$2"; shift 2; mkdir -p -m 755 "$d/tmp"; '
                 'printf "%s\\n" "$conf" > "$d/nginx.conf"; exec "$@"')


def nginx_config(scratch_dir: str) -> str:
    """A minimal nginx config like the official image's default site: port 80 serving
    /usr/share/nginx/html, logs to stdout/stderr, pid and temp files under the container's
    own scratch dir so several nginx containers on one node never share them. No
    `daemon` directive: the image's default CMD passes `-g 'daemon off;'` as upstream."""
    t = f"{scratch_dir}/tmp"
    return "\n".join([
        "worker_processes 1;",
        f"pid {scratch_dir}/nginx.pid;",
        "error_log stderr notice;",
        "events { worker_connections 256; }",
        "http {",
        "    types { text/html html htm; text/css css; text/plain txt;"
        " application/javascript js; application/json json; image/png png; }",
        "    default_type application/octet-stream;",
        "    access_log /dev/stdout;",
        f"    client_body_temp_path {t}/body;",
        f"    proxy_temp_path {t}/proxy;",
        f"    fastcgi_temp_path {t}/fastcgi;",
        f"    uwsgi_temp_path {t}/uwsgi;",
        f"    scgi_temp_path {t}/scgi;",
        "    server {",
        "        listen 80 default_server;",
        "        server_name _;",
        "        root /usr/share/nginx/html;",
        "        index index.html index.htm;",
        # Debian's nginx-common ships /usr/share/nginx/html/index.html; without it, / still
        # answers with the welcome page, as the official image does.
        "        location = / { try_files /index.html @welcome; }",
        "        location @welcome { default_type text/html; return 200 '<!DOCTYPE html>"
        "<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!"
        "</h1><p>nginx on a svcnet node.</p></body></html>'; }",
        "    }",
        "}",
    ])


@dataclass(frozen=True)
class NodeArgv:
    """An image argv translated for the node: `argv` to exec, or `reason`/`message` when
    it cannot run. `scratch_dir` is set when the program uses the container's scratch dir;
    `path`, when the image's own programs live in a directory that belongs first on the
    container's PATH (busybox's applets, as the image's /bin holds them)."""

    argv: tuple[str, ...] = ()
    scratch_dir: str = ""
    reason: str = ""
    message: str = ""
    path: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason

    @property
    def search_path(self) -> str:
        """The PATH a container of this image gets when its Pod sets none."""
        return f"{self.path}:{DEFAULT_PATH}" if self.path else DEFAULT_PATH


def normalize(image: str) -> str:
    """The repository of an image reference, without tag, digest, Docker Hub registry or
    `library/`: `docker.io/library/nginx:1.25` -> `nginx`, `nginx@sha256:..` -> `nginx`,
    `registry.k8s.io/e2e-test-images/agnhost:2.39` -> that path without `:2.39`."""
    ref = image.strip().partition("@")[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], "/".join(parts[1:])
    else:
        registry, path = "docker.io", ref
    if registry in _DOCKER_HUB:
        return path.removeprefix("library/").lower()
    return f"{registry}/{path}".lower()


def _busybox_applets(path: str) -> frozenset[str]:
    """The applets a busybox binary provides (`busybox --list`)."""
    try:
        out = subprocess.run([path, "--list"], capture_output=True, text=True, timeout=5,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(out.split())


class ImageCatalog:
    """Resolves image references for the process runtime.

    `which(program)` finds a node program (default `shutil.which`); `applets(busybox)`
    lists busybox applets (default: runs `busybox --list` once, then cached); `python` is
    the interpreter that runs the built-in images (default: the agent's own). With
    `bin_dir`, busybox containers get `bin_dir/busybox` first on their PATH: a link per
    applet to the node's busybox, as the image's /bin has, so `sh -c 'nc ...; wget ...'`
    runs busybox's tools rather than whatever the node has (or nothing)."""

    def __init__(self, *, which: Callable[[str], str | None] = shutil.which,
                 applets: Callable[[str], frozenset[str]] = _busybox_applets,
                 python: str = sys.executable, bin_dir: str | None = None) -> None:
        self._which = which
        self._applets_fn = applets
        self._applets: dict[str, frozenset[str]] = {}
        self._python = python
        self._bin_dir = bin_dir
        self._linked: dict[str, str] = {}

    def family(self, image: str) -> str | None:
        """The catalog entry an image reference maps to (None: not in the catalog)."""
        return _FAMILIES.get(normalize(image))

    def resolve(self, image: str) -> ImageRef | None:
        """The image's ENTRYPOINT/CMD/WORKDIR in image terms, or None if svcnet does not
        know the image (then only a container with `command:` can run it)."""
        fam = self.family(image)
        if fam is None:
            return None
        entrypoint, cmd, workdir = _IMAGE_CONFIG[fam]
        return ImageRef(entrypoint=entrypoint, default_args=cmd, workdir=workdir)

    def unknown_image_message(self, image: str) -> str:
        """The waiting message for an unknown image without `command:`."""
        return (f'image "{image}" is not in svcnet\'s catalog; give the container a '
                "command: to run a program installed on the node (see svcnet docs: images)")

    def node_argv(self, image: str, argv: Sequence[str], *, scratch_dir: str) -> NodeArgv:
        """Translate the argv a container of `image` would run (image terms, `$(VAR)`
        already expanded) into the node argv. Programs the image provides map to their
        svcnet or node implementation; others pass through unchanged, to be found on the
        node's PATH. Only a program that is actually needed and missing is an error."""
        argv = tuple(argv)
        fam = self.family(image)
        if not argv:
            return NodeArgv(reason="RunContainerError",
                            message=f'image "{image}": no command to run')
        if fam is None:
            return NodeArgv(argv=argv)
        return self._translate(fam, image, argv, scratch_dir)

    # --- translation ---------------------------------------------------------------------

    def _module(self, name: str, rest: Sequence[str]) -> NodeArgv:
        return NodeArgv(argv=(self._python, "-m", f"svcnet.images.{name}", *rest))

    def _node_program(self, program: str, image: str) -> str | NodeArgv:
        path = self._which(program)
        if path:
            return path
        pkg = _PACKAGES.get(program, program)
        return NodeArgv(reason=ERR_IMAGE_PULL, message=(
            f'image "{image}" runs the program {program}, which is not installed on this '
            f"node; install it with: apt-get install {pkg}"))

    def _translate(self, fam: str, image: str, argv: tuple[str, ...],
                   scratch_dir: str) -> NodeArgv:
        name = _program_name(argv[0])
        rest = argv[1:]
        if fam in ("nginx", "redis") and name == "docker-entrypoint.sh":
            # The official images' entrypoint script: redis prepends redis-server when the
            # first argument is an option or a .conf file; both then exec their arguments.
            if fam == "redis" and rest and (rest[0].startswith("-") or
                                            rest[0].endswith(".conf")):
                rest = ("redis-server", *rest)
            if not rest:
                return NodeArgv(reason="RunContainerError",
                                message=f'image "{image}": no command to run')
            return self._translate(fam, image, rest, scratch_dir)
        if fam == "serve-hostname" and name in ("serve_hostname", "serve-hostname"):
            return self._module("serve_hostname", rest)
        if fam == "netexec" and name == "netexec":
            return self._module("netexec", rest)
        if fam == "agnhost" and name == "agnhost":
            return self._agnhost(image, rest)
        if fam == "busybox":
            return self._busybox(image, argv, name)
        if fam == "nginx" and name == "nginx":
            path = self._node_program("nginx", image)
            if isinstance(path, NodeArgv):
                return path
            d = scratch_dir.rstrip("/")
            return NodeArgv(argv=("/bin/sh", "-c", _NGINX_SCRIPT, "svcnet-nginx", d,
                                  nginx_config(d), path, "-e", "stderr", "-p", f"{d}/",
                                  "-c", f"{d}/nginx.conf", *rest), scratch_dir=d)
        if fam == "redis" and name in ("redis-server", "redis-cli"):
            path = self._node_program(name, image)
            if isinstance(path, NodeArgv):
                return path
            extra = _REDIS_DEFAULTS if name == "redis-server" else ()
            return NodeArgv(argv=(path, *extra, *rest))
        return NodeArgv(argv=argv)

    def _agnhost(self, image: str, rest: tuple[str, ...]) -> NodeArgv:
        sub = rest[0] if rest else ""
        if sub == "serve-hostname":
            return self._module("serve_hostname", rest[1:])
        if sub == "netexec":
            return self._module("netexec", rest[1:])
        if sub == "pause":
            # agnhost pause: sleep until a signal ends the process.
            return NodeArgv(argv=(self._python, "-c", "import signal; signal.pause()"))
        return NodeArgv(reason=ERR_IMAGE_PULL, message=(
            f'image "{image}": svcnet implements the agnhost subcommands serve-hostname, '
            f"netexec and pause, not {sub or '(none)'!r}; give the container a command: to "
            "run a program installed on the node instead"))

    def _busybox(self, image: str, argv: tuple[str, ...], name: str) -> NodeArgv:
        path = self._which("busybox")
        if path:
            links = self._applet_links(path)
            if name == "busybox":
                return NodeArgv(argv=(path, *argv[1:]), path=links)
            if name in _OWN_APPLETS:
                return NodeArgv(argv=(self._python, "-m", _OWN_APPLETS[name], *argv[1:]),
                                path=links)
            if name in self._applets_for(path):
                # The image's own tool, as in the real image (busybox nslookup, wget, sh).
                return NodeArgv(argv=(path, name, *argv[1:]), path=links)
            return NodeArgv(argv=argv, path=links)
        if name == "busybox" or argv == _IMAGE_CONFIG["busybox"][1]:
            missing = self._node_program("busybox", image)
            assert isinstance(missing, NodeArgv)
            return missing
        return NodeArgv(argv=argv)

    def _applets_for(self, path: str) -> frozenset[str]:
        if path not in self._applets:
            self._applets[path] = self._applets_fn(path)
        return self._applets[path]

    def _applet_links(self, busybox: str) -> str:
        """The directory of applet links to `busybox` (made once; "" without bin_dir or
        when it cannot be made: commands then fall back to the node's PATH)."""
        if self._bin_dir is None:
            return ""
        if busybox not in self._linked:
            scripts = {name: f"#!/bin/sh\nexec {shlex.quote(self._python)} -m {module} "
                             '"$@"\n' for name, module in _OWN_APPLETS.items()}
            self._linked[busybox] = make_applet_links(
                os.path.join(self._bin_dir, "busybox"), busybox, self._applets_for(busybox),
                scripts)
        return self._linked[busybox]


def make_applet_links(directory: str, busybox: str, applets: Iterable[str],
                      scripts: Mapping[str, str] | None = None) -> str:
    """Make `directory` hold a symlink NAME -> busybox per applet (busybox runs the applet
    its argv[0] names), replacing stale ones, and an executable file per entry of
    `scripts` (name -> content) instead of the applet of that name; returns the directory,
    or "" on failure."""
    scripts = scripts or {}
    try:
        os.makedirs(directory, exist_ok=True)
        for name, content in scripts.items():
            target = os.path.join(directory, name)
            if not os.path.islink(target) and os.path.isfile(target):
                with open(target) as f:
                    if f.read() == content:
                        continue
            tmp = f"{target}.tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            with open(tmp, "w") as f:
                f.write(content)
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        for applet in applets:
            if not applet or "/" in applet or applet in scripts:
                continue
            link = os.path.join(directory, applet)
            if os.path.islink(link) and os.readlink(link) == busybox:
                continue
            tmp = f"{link}.tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(busybox, tmp)
            os.replace(tmp, link)
    except OSError:
        return ""
    return directory


def _program_name(program: str) -> str:
    """The name to look a program up by: bare names and programs in the standard bin
    directories by basename (`/bin/sh` -> `sh`, `/agnhost` -> `agnhost`); other paths as
    given, so `/opt/app/run` never matches an image program by accident."""
    if "/" not in program:
        return program
    if program.count("/") == 1 and program.startswith("/"):
        return program[1:]
    if program.startswith(_STANDARD_BIN_DIRS):
        return posixpath.basename(program)
    return program
