"""Name and label syntax with apimachinery's messages."""

import pytest

from svcnet.api import names


@pytest.mark.parametrize("value,ok", [("web", True), ("a-1", True), ("1abc", False), ("Web", False),
                                      ("a_b", False), ("-a", False), ("a" * 63, True),
                                      ("a" * 64, False)])
def test_dns1035(value: str, ok: bool) -> None:
    assert (names.dns1035_label(value) == []) is ok


def test_dns1035_message_is_kubernetes_text() -> None:
    assert names.dns1035_label("Web") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name'"
        ",  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]


@pytest.mark.parametrize("value,ok", [("example.com", True), ("a.b-c.d", True), ("a..b", False),
                                      ("A.b", False), ("x" * 254, False), ("123", True)])
def test_subdomain(value: str, ok: bool) -> None:
    assert (names.dns1123_subdomain(value) == []) is ok


@pytest.mark.parametrize("key,ok", [("app", True), ("app.kubernetes.io/name", True),
                                    ("a/b/c", False), ("/x", False), ("x/", False),
                                    ("Has_Under.score", True), ("-bad", False)])
def test_qualified_name(key: str, ok: bool) -> None:
    assert (names.qualified_name(key) == []) is ok


def test_label_validation_paths() -> None:
    errs = names.validate_labels({"ok": "fine", "bad key!": "v", "k": "-bad"}, "metadata.labels")
    assert [e.field for e in errs] == ["metadata.labels", "metadata.labels"]
    assert 'Invalid value: "bad key!"' in str(errs[0])
