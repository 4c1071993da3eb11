"""Cluster IP and node port allocators (reference/apiserver.md §5.5; Kubernetes' bitmap
allocators in pkg/registry/core/service/{ipallocator,portallocator}).

A range has a low "static" band kept for values users pick by hand; automatic picks come
from the upper band first and fall back to the low band only when the upper one is full.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from svcnet.apiserver.allocator import (IPAllocator, PortAllocator, RangeAllocator,
                                        parse_port_range, static_band)

NOT_IN_PORT_RANGE = ("provided port is not in the valid range. The range of valid ports is "
                     "30000-32767")


def ports(seed: int = 1) -> PortAllocator:
    return PortAllocator(30000, 32767, random.Random(seed))


def ips(cidr: str = "10.96.0.0/12", seed: int = 1) -> IPAllocator:
    return IPAllocator(cidr, random.Random(seed))


# --- static band sizes -------------------------------------------------------------------

@pytest.mark.parametrize("cidr,band", [("10.96.0.0/12", 256), ("10.43.0.0/16", 256),
                                       ("10.0.0.0/24", 16), ("10.0.0.0/27", 16),
                                       ("10.0.0.0/28", 0), ("10.0.0.0/29", 0),
                                       ("fd00::/108", 256)])
def test_ip_static_band(cidr: str, band: int) -> None:
    assert ips(cidr).range.offset == band


def test_ip_static_band_uses_cidr_size() -> None:
    # Kubernetes sizes the band from the whole CIDR: 1024/16 = 64 for a /22, not 1022/16.
    assert ips("10.0.0.0/22").range.offset == 64


def test_ip_range_excludes_network_and_broadcast() -> None:
    a = ips("10.0.0.0/29")
    assert a.range.size == 6
    assert not a.contains("10.0.0.0") and not a.contains("10.0.0.7")
    assert a.contains("10.0.0.1") and a.contains("10.0.0.6")


@pytest.mark.parametrize("first,last,band", [(30000, 32767, 86), (30000, 30015, 0),
                                             (30000, 30016, 16), (20000, 32767, 128)])
def test_port_static_band(first: int, last: int, band: int) -> None:
    assert PortAllocator(first, last, random.Random(0)).range.offset == band


def test_static_band_formula() -> None:
    assert static_band(2768, 16, 128, 32) == 86
    assert static_band(16, 16, 128, 32) == 0
    assert static_band(17, 16, 128, 32) == 16
    assert static_band(10**6, 16, 256, 16) == 256


# --- automatic picks ---------------------------------------------------------------------

def test_automatic_ports_come_from_the_upper_band() -> None:
    a = ports()
    picked = [a.allocate_next() for _ in range(200)]
    assert all(p is not None and 30086 <= p <= 32767 for p in picked)
    assert len(set(picked)) == 200


def test_automatic_ips_come_from_the_upper_band() -> None:
    a = ips()
    first_dynamic = ipaddress.ip_address("10.96.0.1") + 256  # 10.96.1.1
    for _ in range(100):
        ip = a.allocate_next()
        assert ip is not None and ipaddress.ip_address(ip) >= first_dynamic


def test_picks_are_random_but_reproducible_with_a_seed() -> None:
    a, b, c = ports(7), ports(7), ports(8)
    seq_a = [a.allocate_next() for _ in range(5)]
    assert seq_a == [b.allocate_next() for _ in range(5)]
    assert seq_a != [c.allocate_next() for _ in range(5)]
    assert seq_a != sorted(seq_a)  # not handed out in order


def test_falls_back_to_the_lower_band_when_the_upper_is_full() -> None:
    a = ports()
    for p in range(30086, 32768):
        assert a.allocate(p) is None
    low = {a.allocate_next() for _ in range(86)}
    assert low == set(range(30000, 30086))
    assert a.allocate_next() is None  # exhausted


def test_ip_exhaustion_returns_none() -> None:
    a = ips("10.0.0.0/29")  # 6 usable addresses, no static band
    got = {a.allocate_next() for _ in range(6)}
    assert got == {f"10.0.0.{i}" for i in range(1, 7)}
    assert a.allocate_next() is None


def test_range_allocator_exhaustion() -> None:
    r = RangeAllocator(4, 2, random.Random(3))
    first_two = {r.allocate_next(), r.allocate_next()}
    assert first_two == {2, 3}  # the upper band first
    assert {r.allocate_next(), r.allocate_next()} == {0, 1}
    assert r.allocate_next() is None


# --- user-chosen values ------------------------------------------------------------------

def test_user_chosen_port_anywhere_in_range() -> None:
    a = ports()
    for p in (30000, 30085, 30086, 32767):
        assert a.allocate(p) is None
    assert a.allocated() == [30000, 30085, 30086, 32767]


def test_port_already_allocated() -> None:
    a = ports()
    assert a.allocate(30080) is None
    assert a.allocate(30080) == "provided port is already allocated"


@pytest.mark.parametrize("port", [29999, 32768, 8080, 70000, -1])
def test_port_not_in_range(port: int) -> None:
    a = ports()
    assert a.allocate(port) == NOT_IN_PORT_RANGE
    assert a.allocated() == []


def test_user_chosen_ip_anywhere_in_range() -> None:
    a = ips()
    assert a.allocate("10.96.0.1") is None  # the `kubernetes` Service's address
    assert a.allocate("10.96.0.10") is None  # kube-dns, in the static band
    assert a.allocate("10.111.255.254") is None  # last usable address of the /12
    assert a.allocated() == ["10.96.0.1", "10.96.0.10", "10.111.255.254"]


def test_ip_already_allocated() -> None:
    a = ips()
    assert a.allocate("10.96.0.10") is None
    assert a.allocate("10.96.0.10") == "provided IP is already allocated"


@pytest.mark.parametrize("ip", ["1.1.1.1", "10.96.0.0", "10.111.255.255", "10.112.0.1",
                                "fd00::1"])
def test_ip_not_in_range(ip: str) -> None:
    assert ips().allocate(ip) == (f"the provided IP ({ip}) is not in the valid range. The "
                                  "range of valid IPs is 10.96.0.0/12")


def test_automatic_pick_skips_user_chosen_values() -> None:
    a = PortAllocator(30000, 30019, random.Random(5))  # band 16, upper band 30016-30019
    for p in (30016, 30017, 30019):
        assert a.allocate(p) is None
    assert a.allocate_next() == 30018


# --- release -----------------------------------------------------------------------------

def test_release_port_makes_it_available_again() -> None:
    a = ports()
    assert a.allocate(30080) is None
    a.release(30080)
    assert a.allocated() == []
    assert a.allocate(30080) is None


def test_release_ip_makes_it_available_again() -> None:
    a = ips()
    ip = a.allocate_next()
    assert ip is not None
    a.release(ip)
    assert a.allocated() == []
    assert a.allocate(ip) is None


def test_release_of_unknown_or_out_of_range_values_is_harmless() -> None:
    a, b = ports(), ips()
    a.release(30080)
    a.release(80)
    b.release("10.96.0.10")
    b.release("192.168.0.1")
    b.release("garbage")
    assert a.allocated() == [] and b.allocated() == []


def test_released_values_are_picked_again_after_exhaustion() -> None:
    a = ips("10.0.0.0/29")
    taken = [a.allocate_next() for _ in range(6)]
    assert a.allocate_next() is None
    a.release("10.0.0.3")
    assert a.allocate_next() == "10.0.0.3"
    assert sorted(taken) == sorted(a.allocated())


# --- construction ------------------------------------------------------------------------

def test_ipv6_range_is_capped() -> None:
    a = ips("fd00::/64")
    assert a.range.size == 65536 and a.range.offset == 256
    assert a.contains("fd00::1") and not a.contains("fd00::1:0:1")


@pytest.mark.parametrize("cidr", ["10.0.0.0/31", "10.0.0.0/32"])
def test_too_small_cidr(cidr: str) -> None:
    with pytest.raises(ValueError):
        IPAllocator(cidr)


def test_cidr_with_host_bits_rejected() -> None:
    with pytest.raises(ValueError):
        IPAllocator("10.96.0.1/12")


@pytest.mark.parametrize("text,expected", [("30000-32767", (30000, 32767)),
                                           ("30080", (30080, 30080))])
def test_parse_port_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["30000-", "abc", "0-100", "200-100", "1-65536"])
def test_parse_port_range_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_port_range(text)


def test_port_allocator_text_and_state() -> None:
    a = ports()
    assert a.text == "30000-32767"
    assert a.allocate(30500) is None
    assert a.allocated() == [30500]
