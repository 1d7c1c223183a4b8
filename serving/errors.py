"""The error format: every refusal of the service is a `RequestError`, rendered as::

    {"error": {"status": 422, "code": "wrong_type", "field": "instances[3].amount",
               "message": "instances[3].amount: expected a number or null, got a string",
               "issues": [{"field": "...", "code": "...", "message": "..."}, ...]},
     "request_id": "..."}

`issues` lists up to `MAX_ISSUES` problems of the request; `field` and `message` are
the first one's. Kept apart from the validators (`serving.validation`) so that the
layers that only refuse (auth, body reading, routing errors) need not import them; the
documented shape is `serving.openapi_models.ErrorResponse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

MAX_ISSUES = 20


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem of a request, at one field."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class RequestError(Exception):
    """A request the service refuses: HTTP status, a stable code, the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        issues: tuple[FieldIssue, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.field = field
        self.issues = issues or ((FieldIssue(field, code, message),) if field else ())
        self.headers = dict(headers or {})
        self.message = f"{field}: {message}" if field and not message.startswith(field) else message
        super().__init__(self.message)

    @classmethod
    def from_issues(cls, status: int, issues: list[FieldIssue], more: int = 0) -> RequestError:
        first = issues[0]
        message = f"{first.field}: {first.message}"
        if len(issues) > 1 or more:
            message += f" (and {len(issues) - 1 + more} more)"
        return cls(status, first.code, message, first.field, tuple(issues))

    def body(self, request_id: str | None) -> bytes:
        """The JSON error document."""
        error: dict[str, object] = {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "issues": [issue.as_dict() for issue in self.issues],
        }
        return orjson.dumps({"error": error, "request_id": request_id})
