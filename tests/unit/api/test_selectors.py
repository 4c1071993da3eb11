"""Label and field selector parsing and matching."""

import pytest

from svcnet.api import errors
from svcnet.api.selectors import (field_matches, format_selector, from_label_selector, matches,
                                  parse_field_selector, parse_label_selector)

LABELS = {"app": "web", "tier": "fe", "env": "prod"}


@pytest.mark.parametrize("text,expected", [
    ("app=web", True), ("app==web", True), ("app=db", False), ("app!=db", True),
    ("app!=web", False), ("app=web,tier=fe", True), ("app=web,tier=be", False),
    ("env in (prod, dev)", True), ("env in (dev)", False), ("env notin (dev)", True),
    ("env notin (prod)", False), ("missing notin (x)", True), ("app", True), ("missing", False),
    ("!missing", True), ("!app", False), ("", True), ("missing=", False),
])
def test_label_selector_matching(text: str, expected: bool) -> None:
    assert matches(parse_label_selector(text), LABELS) is expected


@pytest.mark.parametrize("text", ["app in web", "app in (a", "=x", "a b", "!"])
def test_bad_label_selector_is_400(text: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        parse_label_selector(text)
    assert e.value.code == 400 and "unable to parse requirement" in e.value.message


def test_label_selector_object() -> None:
    sel = from_label_selector({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]},
        {"key": "legacy", "operator": "DoesNotExist"}]})
    assert matches(sel, LABELS)
    assert not matches(sel, {"app": "web", "tier": "db"})
    assert format_selector(sel or ()) == "app=web,tier in (be,fe),!legacy"
    assert from_label_selector(None) is None and not matches(None, LABELS)
    assert matches(from_label_selector({}), {})
    with pytest.raises(errors.StatusError):
        from_label_selector({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def test_field_selectors() -> None:
    svc = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "NodePort"}}
    assert field_matches(parse_field_selector("metadata.name=web", "Service"), svc)
    assert not field_matches(parse_field_selector("metadata.name!=web", "Service"), svc)
    assert field_matches(parse_field_selector("spec.type==NodePort,metadata.namespace=default",
                                              "Service"), svc)
    ev = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Service", "name": "web"}}
    assert field_matches(parse_field_selector(
        "involvedObject.name=web,involvedObject.kind=Service", "Event"), ev)
    with pytest.raises(errors.StatusError) as e:
        parse_field_selector("spec.nodeName=x", "Service")
    assert e.value.message == "field label not supported: spec.nodeName"
