"""The service's error tree; one handler (app/api/errors.py) turns it into RFC 9457 problem+json.

ServiceError                    status  code (stable, documented in the README)
 ├── MalformedBody                400   malformed_json (the body is not UTF-8 JSON text; app/api/errors.py)
 ├── InvalidInput                 422   invalid_name, invalid_project, invalid_size, invalid_content_type, ...
 ├── NotFound                     404   volume_not_found, pool_not_found, snapshot_not_found, ...
 ├── Conflict                     409   volume_exists, snapshot_exists, ambiguous_volume, linstor_refused, ...
 ├── ContentTooLarge              413   body_too_large (answered by the body limit, app/api/limits.py)
 └── UpstreamError                502/503/504  linstor_unavailable, linstor_timeout, clone_failed, ...
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """An error with a stable machine-readable code and an HTTP status."""

    status = 500
    title = "Internal error"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra

    @classmethod
    def answers(cls) -> dict[int, str]:
        """The statuses (and their titles) errors of this class are answered with."""
        return {cls.status: cls.title}


class MalformedBody(ServiceError):
    """The request body cannot be read as JSON at all (not UTF-8, or not JSON syntax)."""

    status = 400
    title = "Malformed request body"


class InvalidInput(ServiceError):
    """The request is well-formed JSON but asks for something invalid."""

    status = 422
    title = "Invalid input"


class NotFound(ServiceError):
    """The addressed object does not exist."""

    status = 404
    title = "Not found"


class Conflict(ServiceError):
    """The request conflicts with the current state."""

    status = 409
    title = "Conflict"


class ContentTooLarge(ServiceError):
    """The request body is larger than the service accepts (RFC 9110's 413 Content Too Large)."""

    status = 413
    title = "Content too large"


class UpstreamError(ServiceError):
    """LINSTOR could not do what was asked (502), is unreachable (503) or too slow (504)."""

    status = 502
    title = "LINSTOR error"
    TITLES: ClassVar[dict[int, str]] = {
        502: "LINSTOR error",
        503: "LINSTOR unavailable",
        504: "LINSTOR timeout",
    }

    def __init__(self, code: str, detail: str, *, status: int = 502, **extra: Any) -> None:
        super().__init__(code, detail, **extra)
        self.status = status
        self.title = self.TITLES[status]

    @classmethod
    def answers(cls) -> dict[int, str]:
        """502, 503 and 504."""
        return dict(cls.TITLES)


def answers() -> dict[int, str]:
    """Every status the error tree answers with, and its title: the API documents them from here."""
    out: dict[int, str] = {}
    pending: list[type[ServiceError]] = list(ServiceError.__subclasses__())
    while pending:
        cls = pending.pop()
        out.update(cls.answers())
        pending.extend(cls.__subclasses__())
    return dict(sorted(out.items()))
