"""How an exec is planned: namespaces entered, argv through the image catalog, env, and the
errors a command that cannot start gets."""

from __future__ import annotations

from pathlib import Path

from svcnet.node.exec import exec_spec, exit_code
from svcnet.node.images import ImageCatalog
from svcnet.node.types import ContainerTarget


def target(image: str = "busybox", workdir: str = "") -> ContainerTarget:
    return ContainerTarget(pod_uid="u", pod_name="p", container="c", pid=4242, pid_start=1,
                           env=(("FOO", "bar"), ("PATH", "/usr/bin:/bin")), workdir=workdir,
                           image=image, scratch_dir="", attempt_dir=Path("/x"),
                           hostname="p")


def catalog() -> ImageCatalog:
    programs = {"busybox": "/usr/bin/busybox"}
    return ImageCatalog(which=programs.get, applets=lambda _p: frozenset({"sh", "tar", "cat"}),
                        python="/py")


def test_busybox_programs_resolve_to_busybox_applets_inside_the_container() -> None:
    spec = exec_spec(target(), ["tar", "cf", "-", "/tmp/x"], False, catalog(),
                     nsenter="/usr/bin/nsenter")
    assert spec.error == ""
    assert spec.argv == ("/usr/bin/nsenter", "--target=4242", "--net", "--mount", "--uts",
                         "--wd=/", "--", "/usr/bin/busybox", "tar", "cf", "-", "/tmp/x")
    assert spec.env["FOO"] == "bar" and spec.env["HOSTNAME"] == "p"
    assert "TERM" not in spec.env
    assert spec.command == ("tar", "cf", "-", "/tmp/x")


def test_tty_exec_gets_a_controlling_terminal_and_term() -> None:
    spec = exec_spec(target(workdir="/tmp"), ["sh"], True, catalog(), nsenter="nsenter",
                     setsid="/usr/bin/setsid")
    assert spec.argv[:3] == ("/usr/bin/setsid", "--ctty", "nsenter")
    assert "--wd=/tmp" in spec.argv
    assert spec.env["TERM"] == "xterm"


def test_a_missing_program_is_reported_like_runc() -> None:
    spec = exec_spec(target(image="unknown-image"), ["no-such-program-xyz"], False, catalog())
    assert spec.argv == ()
    assert spec.error == 'exec: "no-such-program-xyz": executable file not found in $PATH'
    spec = exec_spec(target(image="unknown-image"), ["/no/such/file"], False, catalog())
    assert "no such file or directory" in spec.error


def test_catalog_refusals_are_start_errors() -> None:
    spec = exec_spec(target(image="registry.k8s.io/e2e-test-images/agnhost:2.39"),
                     ["/agnhost", "dns-server"], False, catalog())
    assert spec.argv == () and "agnhost subcommands" in spec.error


def test_exit_codes_of_signal_deaths() -> None:
    assert exit_code(0) == 0 and exit_code(3) == 3
    assert exit_code(-9) == 137 and exit_code(-15) == 143


def test_busybox_exec_gets_the_applet_directory_on_path_unless_the_container_set_one(
        tmp_path: Path) -> None:
    cat = ImageCatalog(which={"busybox": "/usr/bin/busybox"}.get,
                       applets=lambda _p: frozenset({"sh", "nc"}), python="/py",
                       bin_dir=str(tmp_path))
    bare = ContainerTarget(pod_uid="u", pod_name="p", container="c", pid=1, pid_start=1,
                           env=(), workdir="", image="busybox", scratch_dir="",
                           attempt_dir=Path("/x"), hostname="p")
    spec = exec_spec(bare, ["sh", "-c", "nc -h"], False, cat, nsenter="nsenter")
    assert spec.env["PATH"].startswith(f"{tmp_path}/busybox:")
    assert exec_spec(target(), ["sh"], False, cat).env["PATH"] == "/usr/bin:/bin"
