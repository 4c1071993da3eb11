"""API errors as Kubernetes `metav1.Status` values.

kubectl formats what it prints purely from the Status (reason, code, details.kind,
details.name, details.causes), so the shapes and message texts here follow apimachinery's
error constructors and `field.Error` formatting (reference/apiserver.md §5.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# field.ErrorType -> (cause reason, text used in the message)
_FIELD_TYPES: dict[str, tuple[str, str]] = {
    "Required": ("FieldValueRequired", "Required value"),
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "TooLong": ("FieldValueTooLong", "Too long"),
    "TooMany": ("FieldValueTooMany", "Too many"),
    "Internal": ("InternalError", "Internal error"),
}


def format_value(value: Any) -> str:
    """Render a bad value as Go's %v/%q/%#v would in field errors."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(format_value(v) for v in value) + "}"
    if value is None:
        return "null"
    return repr(value)


@dataclass(frozen=True)
class FieldError:
    """One validation failure at a field path (apimachinery field.Error)."""

    type: str  # a key of _FIELD_TYPES
    field: str
    value: Any = None
    detail: str = ""
    # Required/Forbidden/TooMany print no value; others print it unless omit_value.
    omit_value: bool = False

    def body(self) -> str:
        """The message without the field path (what goes into a cause's `message`)."""
        text = _FIELD_TYPES[self.type][1]
        shows_value = self.type not in ("Required", "Forbidden", "Internal", "TooMany")
        if shows_value and not self.omit_value:
            text += f": {format_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        return {"reason": _FIELD_TYPES[self.type][0], "message": self.body(), "field": self.field}


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("Required", field, detail=detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid", field, value, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("Forbidden", field, detail=detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("Duplicate", field, value)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in supported)
    return FieldError("NotSupported", field, value, detail)


class StatusError(Exception):
    """An error the API answers with a Status body and HTTP `code`."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _details(resource: str, name: str, group: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        d["group"] = group
    return d


def not_found(resource: str, group: str, name: str) -> StatusError:
    qual = f"{resource}.{group}" if group else resource
    return StatusError(404, "NotFound", f'{qual} "{name}" not found',
                       _details(resource, name, group))


def already_exists(resource: str, group: str, name: str) -> StatusError:
    qual = f"{resource}.{group}" if group else resource
    return StatusError(409, "AlreadyExists", f'{qual} "{name}" already exists',
                       _details(resource, name, group))


def conflict(resource: str, group: str, name: str, why: str | None = None) -> StatusError:
    qual = f"{resource}.{group}" if group else resource
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return StatusError(409, "Conflict", f'Operation cannot be fulfilled on {qual} "{name}": {why}',
                       _details(resource, name, group))


def invalid_object(kind: str, group: str, name: str, errs: list[FieldError]) -> StatusError:
    """422 Invalid, aggregated the way apimachinery's NewInvalid does."""
    qual = f"{kind}.{group}" if group else kind
    agg = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [e.cause() for e in errs]}
    if group:
        details["group"] = group
    return StatusError(422, "Invalid", f'{qual} "{name}" is invalid: {agg}', details)


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def forbidden_request(user: str, verb: str, resource: str, group: str, namespace: str | None,
                      name: str | None = None, subresource: str = "") -> StatusError:
    """403 with the sentence kubectl users know from RBAC denials."""
    res = f"{resource}/{subresource}" if subresource else resource
    qualified = f"{resource}.{group}" if group else resource  # no subresource, as kube
    what = f'{qualified} "{name}"' if name else qualified
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    grp = f'in API group "{group}"'
    msg = f'{what} is forbidden: User "{user}" cannot {verb} resource "{res}" {grp}{scope}'
    return StatusError(403, "Forbidden", msg, _details(resource, name or "", group))


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType",
                       f'the body of the request was in an unknown format - accepted media types '
                       f'include: application/json-patch+json, application/merge-patch+json, '
                       f'application/strategic-merge-patch+json, application/apply-patch+yaml '
                       f'(got "{content_type}")')


def too_large() -> StatusError:
    return StatusError(413, "RequestEntityTooLarge",
                       "Request entity too large: limit is 3145728")


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")
