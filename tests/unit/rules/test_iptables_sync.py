"""Full and partial syncs (KEP-3453): what each writes, and that applying them in sequence
leaves the same kernel state as one full sync of the final snapshot."""

from __future__ import annotations

from typing import Any

from iptables_objects import COUNTERS, FIXTURE, chain_rules, ep, eps, loaded, snapshot, svc

from svcnet.dataplane.testing import FakeIPTables
from svcnet.proxy.snapshot import update_snapshot
from svcnet.rules import RuleSet, compile_full, compile_partial, render_restore
from svcnet.rules.iptables_names import sep_chain, svc_chain

SVC1, SVC2, SVC3 = (svc_chain(f"ns{i}/svc{i}:p80", "tcp") for i in (1, 2, 3))


def world(**changes: Any) -> list[dict[str, Any]]:
    objects = {
        "svc1": svc("ns1", "svc1", "172.30.0.41"),
        "svc2": svc("ns2", "svc2", "172.30.0.42"),
        "eps1": eps("ns1", "svc1", ep("10.0.1.1")),
        "eps2": eps("ns2", "svc2", ep("10.0.2.1")),
    }
    objects.update(changes)
    return [o for o in objects.values() if o is not None]


def nat_chains(rs: RuleSet) -> set[str]:
    return set(rs.nat_chains) - {"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
                                 "KUBE-MARK-MASQ"}


def test_partial_sync_writes_only_changed_services() -> None:
    first = compile_full(snapshot(*world()), FIXTURE)
    second = compile_partial(snapshot(*world(svc3=svc("ns3", "svc3", "172.30.0.43"),
                                             eps3=eps("ns3", "svc3", ep("10.0.3.1")))),
                             FIXTURE, {("ns3", "svc3")}, first)
    assert not second.full_sync and second.deleted_chains == ()
    assert nat_chains(second) == {SVC3, sep_chain("ns3/svc3:p80", "tcp", "10.0.3.1:80")}
    text = render_restore(second)
    # Shared chains are complete: every Service is still dispatched from KUBE-SERVICES.
    assert [r.split(" -j ")[-1] for r in chain_rules(text, "KUBE-SERVICES")] == [
        SVC1, SVC2, SVC3, "KUBE-NODEPORTS"]
    assert chain_rules(text, SVC1) == [] and len(chain_rules(text, SVC3)) == 2
    # ...and the unchanged Services' chains still count as active (they stay in the kernel).
    assert {SVC1, SVC2, SVC3} <= second.active_nat_chains
    assert second.nat_rules_total == compile_full(snapshot(*world(
        svc3=svc("ns3", "svc3", "172.30.0.43"), eps3=eps("ns3", "svc3", ep("10.0.3.1")))),
        FIXTURE).nat_rules_total


def test_deleted_service_chains_are_flushed_then_deleted() -> None:
    first = compile_full(snapshot(*world()), FIXTURE)
    second = compile_partial(snapshot(*world(svc2=None, eps2=None)), FIXTURE,
                             {("ns2", "svc2")}, first)
    sep2 = sep_chain("ns2/svc2:p80", "tcp", "10.0.2.1:80")
    assert second.deleted_chains == tuple(sorted((sep2, SVC2)))
    text = render_restore(second)
    nat = text.split("*nat\n", 1)[1].splitlines()
    assert nat.index(f":{SVC2} - [0:0]") < nat.index(f"-X {SVC2}")
    # KUBE-SERVICES lost its jump to SVC2, so it is rewritten; the -X lines come last,
    # after every rule (none of which jumps to them any more).
    assert nat[-3:] == [f"-X {sep2}", f"-X {SVC2}", "COMMIT"]
    assert not any(line.endswith(f"-j {SVC2}") for line in nat)
    assert SVC2 not in second.active_nat_chains
    # svc2 had endpoints, so no filter rule changes: the filter table is not written.
    assert "*filter" not in text


def test_full_sync_keeps_kube_proxy_order_with_tail_rule_last() -> None:
    first = compile_full(snapshot(*world()), FIXTURE, existing_chains=[
        "KUBE-SVC-AAAAAAAAAAAAAAAA"])
    nat = render_restore(first).split("*nat\n", 1)[1].splitlines()
    assert nat[-3:-1] == ["-X KUBE-SVC-AAAAAAAAAAAAAAAA", nat[-2]]
    assert "must be the last rule" in nat[-2]


def test_changed_endpoint_replaces_its_sep_chain() -> None:
    first = compile_full(snapshot(*world()), FIXTURE)
    second = compile_partial(snapshot(*world(eps1=eps("ns1", "svc1", ep("10.0.1.2")))),
                             FIXTURE, {("ns1", "svc1")}, first)
    old, new = (sep_chain("ns1/svc1:p80", "tcp", f"10.0.1.{i}:80") for i in (1, 2))
    assert nat_chains(second) == {SVC1, new, old}
    assert second.deleted_chains == (old,)


def test_unchanged_partial_sync_writes_nothing() -> None:
    first = compile_full(snapshot(*world()), FIXTURE)
    again = compile_partial(snapshot(*world()), FIXTURE, set(), first)
    assert again.nat_chains == () and again.filter_rules == () and again.deleted_chains == ()
    assert render_restore(again) == ""
    assert again.shared == first.shared
    assert again.active_nat_chains == first.active_nat_chains
    assert again.filter_rules_total == len(first.filter_rules)


def test_endpoint_change_writes_only_that_services_chains() -> None:
    first = compile_full(snapshot(*world()), FIXTURE)
    second = compile_partial(snapshot(*world(eps1=eps("ns1", "svc1", ep("10.0.1.2")))),
                             FIXTURE, {("ns1", "svc1")}, first)
    text = render_restore(second)
    assert "*filter" not in text and ":KUBE-SERVICES" not in text
    assert {c for c in second.nat_chains} == {SVC1, *(sep_chain(
        "ns1/svc1:p80", "tcp", f"10.0.1.{i}:80") for i in (1, 2))}


def test_last_endpoint_gone_rewrites_filter_and_kube_services() -> None:
    first = compile_full(snapshot(*world()), FIXTURE)
    second = compile_partial(snapshot(*world(eps1=None)), FIXTURE, {("ns1", "svc1")}, first)
    text = render_restore(second)
    # The REJECT rule appears in filter KUBE-SERVICES, the nat jump to SVC1 disappears.
    filter_part, nat_part = text.split("*nat\n", 1)
    assert ('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints"'
            in filter_part and "-j REJECT" in filter_part)
    assert ":KUBE-SERVICES - [0:0]" in nat_part and f"-j {SVC1}" not in nat_part
    assert SVC1 in second.deleted_chains


def test_partial_compile_reuses_unchanged_ports_by_identity() -> None:
    first_snap = snapshot(*world())
    first = compile_full(first_snap, FIXTURE)
    changed = update_snapshot(first_snap, {("ns1", "svc1"): svc("ns1", "svc1", "172.30.0.41")},
                              {("ns1", "svc1"): [eps("ns1", "svc1", ep("10.0.1.7"))]})
    second = compile_partial(changed, FIXTURE, {("ns1", "svc1")}, first)
    (p1,) = [p for p in second.ports if p.service == ("ns1", "svc1")]
    (p2,) = [p for p in second.ports if p.service == ("ns2", "svc2")]
    assert second.ports[p2] is first.ports[p2]
    assert second.ports[p1] is not first.ports[p1]


def test_update_snapshot_equals_a_fresh_build() -> None:
    base = snapshot(*world())
    objects = world(svc2=None, eps2=None, svc3=svc("ns3", "svc3", "172.30.0.43"),
                    eps1=eps("ns1", "svc1", ep("10.0.1.5"), ep("10.0.1.6")),
                    eps3=eps("ns3", "svc3", ep("10.0.3.1")))
    changed = {("ns1", "svc1"), ("ns2", "svc2"), ("ns3", "svc3")}

    def service(key: tuple[str, str]) -> dict[str, Any] | None:
        return next((o for o in objects if o["kind"] == "Service"
                     and (o["metadata"]["namespace"], o["metadata"]["name"]) == key), None)

    def slices(key: tuple[str, str]) -> list[dict[str, Any]]:
        return [o for o in objects if o["kind"] == "EndpointSlice"
                and o["metadata"]["namespace"] == key[0]
                and o["metadata"]["labels"]["kubernetes.io/service-name"] == key[1]]
    updated = update_snapshot(base, {k: service(k) for k in changed},
                              {k: slices(k) for k in changed})
    fresh = snapshot(*objects)
    assert updated.service_ports == fresh.service_ports
    assert dict(updated.endpoints) == dict(fresh.endpoints)
    # unchanged entries are the same objects
    kept = [p for p in base.service_ports if p.name.service not in changed]
    assert all(any(p is q for q in updated.service_ports) for p in kept)


def apply(fake: FakeIPTables, rs: RuleSet) -> None:
    fake.restore(render_restore(rs))


def test_sequence_of_partial_syncs_equals_one_full_sync() -> None:
    steps: list[tuple[list[dict[str, Any]], set[tuple[str, str]]]] = [
        (world(svc3=svc("ns3", "svc3", "172.30.0.43"), eps3=eps("ns3", "svc3", ep("10.0.3.1"))),
         {("ns3", "svc3")}),
        (world(svc2=None, eps2=None, svc3=svc("ns3", "svc3", "172.30.0.43"),
               eps3=eps("ns3", "svc3", ep("10.0.3.1"), ep("10.0.3.2"))),
         {("ns2", "svc2"), ("ns3", "svc3")}),
        (world(svc2=None, eps2=None, eps1=None, svc3=svc("ns3", "svc3", "172.30.0.43"),
               eps3=eps("ns3", "svc3", ep("10.0.3.2"))),
         {("ns1", "svc1"), ("ns3", "svc3")}),
    ]
    fake = FakeIPTables(nfacct_counters=COUNTERS)
    previous = compile_full(snapshot(*world()), FIXTURE)
    apply(fake, previous)
    for objects, changed in steps:
        previous = compile_partial(snapshot(*objects), FIXTURE, changed, previous)
        apply(fake, previous)
        fresh = loaded(render_restore(compile_full(snapshot(*objects), FIXTURE)))
        assert fake.save() == fresh.save()
    assert not any(c.startswith("KUBE-SEP-") and "10.0.1" in c for c in fake.chain_names("nat"))


def test_full_sync_deletes_only_our_stale_chains() -> None:
    fake = loaded(render_restore(compile_full(snapshot(*world()), FIXTURE)))
    fake.restore("*nat\n:KUBE-SVC-LEFTOVER12345678 - [0:0]\n:MY-CHAIN - [0:0]\n"
                 ":KUBE-OTHER - [0:0]\nCOMMIT\n")
    rs = compile_full(snapshot(*world(svc2=None, eps2=None)), FIXTURE,
                      existing_chains=fake.chain_names("nat"))
    assert set(rs.deleted_chains) == {"KUBE-SVC-LEFTOVER12345678", SVC2,
                                      sep_chain("ns2/svc2:p80", "tcp", "10.0.2.1:80")}
    apply(fake, rs)
    assert {"MY-CHAIN", "KUBE-OTHER"} <= set(fake.chain_names("nat"))
    assert SVC2 not in fake.chain_names("nat")


def test_full_sync_without_existing_chains_deletes_nothing() -> None:
    rs = compile_full(snapshot(*world()), FIXTURE)
    assert rs.full_sync and rs.deleted_chains == ()
    assert not any(line.startswith("-X") for line in render_restore(rs).splitlines())
