"""The search-path walk `svcnet dns explain` replays: glibc's order and stopping rule."""

from __future__ import annotations

import pytest

from svcnet.dns.explain import (
    ResolverConfig,
    Step,
    candidates,
    musl_stop_index,
    render,
    stop_index,
)

POD = ResolverConfig.from_text("nameserver 10.96.0.10\nsearch demo.svc.cluster.local "
                               "svc.cluster.local cluster.local\noptions ndots:5\n")


def test_resolver_config_from_a_pods_resolv_conf() -> None:
    assert POD == ResolverConfig(("10.96.0.10",), ("demo.svc.cluster.local",
                                                   "svc.cluster.local", "cluster.local"), 5)
    assert ResolverConfig.from_text("nameserver 1.1.1.1\n").ndots == 1
    assert ResolverConfig.from_text("options ndots:99\n").ndots == 15
    assert ResolverConfig.from_text("options ndots:x\n").ndots == 1
    # how long each query may take: glibc's defaults and caps
    assert (POD.timeout, POD.attempts) == (5.0, 2)
    tuned = ResolverConfig.from_text("options timeout:1 attempts:3 ndots:2\n")
    assert (tuned.timeout, tuned.attempts, tuned.ndots) == (1.0, 3, 2)
    capped = ResolverConfig.from_text("options timeout:99 attempts:0\n")
    assert (capped.timeout, capped.attempts) == (30.0, 1)


@pytest.mark.parametrize("name,expected", [
    ("mysql", ["mysql.demo.svc.cluster.local.", "mysql.svc.cluster.local.",
               "mysql.cluster.local.", "mysql."]),
    ("a.b.c.d.e.f", ["a.b.c.d.e.f.", "a.b.c.d.e.f.demo.svc.cluster.local.",
                     "a.b.c.d.e.f.svc.cluster.local.", "a.b.c.d.e.f.cluster.local."]),
    ("mysql.demo.svc.cluster.local.", ["mysql.demo.svc.cluster.local."]),
])
def test_candidates_follow_ndots(name: str, expected: list[str]) -> None:
    assert candidates(name, POD) == expected


def test_candidates_reject_an_empty_name_and_drop_duplicates() -> None:
    with pytest.raises(ValueError):
        candidates("", POD)
    dup = ResolverConfig((), ("x.local", "X.LOCAL."), 1)
    assert candidates("a", dup) == ["a.x.local.", "a."]


def test_glibc_goes_past_nodata_musl_does_not() -> None:
    steps = [Step("a.demo.svc.cluster.local.", "NXDOMAIN", ()),
             Step("a.svc.cluster.local.", "NOERROR", ()),
             Step("a.cluster.local.", "NXDOMAIN", ()),
             Step("a.", "NOERROR", ("A 192.0.2.1",))]
    assert stop_index(steps) == 3 and musl_stop_index(steps) == 1
    text = render("a", "A", POD, "10.96.0.10", steps)
    assert "-> 4. a." in text and "after 4 queries (glibc)" in text
    assert "musl-based images (Alpine) stop at step 2 (NOERROR)" in text


def test_render_explains_the_order_and_a_failed_lookup() -> None:
    steps = [Step(c, "NXDOMAIN", ()) for c in candidates("www.example.com", POD)]
    text = render("www.example.com", "A", POD, "10.96.0.10", steps)
    assert "2 dot(s) < ndots:5: each search domain first, then as written" in text
    assert text.endswith("result: not found after 4 queries")
    first = render("mysql", "A", POD, "x", [Step("mysql.demo.svc.cluster.local.", "NOERROR",
                                                 ("A 10.96.1.2",))])
    assert "-> 1. mysql.demo.svc.cluster.local." in first and "after 1 query" in first
