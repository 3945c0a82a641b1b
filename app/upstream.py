"""Translate LINSTOR client errors that the domain did not handle into service errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.errors import Conflict, UpstreamError
from app.linstor.errors import (
    LinstorAccessDenied,
    LinstorApiError,
    LinstorError,
    LinstorOperationalError,
    LinstorProtocolError,
    LinstorTimeout,
)


def linstor_detail(exc: LinstorError) -> dict[str, Any]:
    """LINSTOR's own words, for the `linstor` field of a problem."""
    detail: dict[str, Any] = {"message": exc.message}
    if isinstance(exc, LinstorApiError):
        detail.update(ret_code=exc.rc.ret_code, status=exc.status)
        if exc.rc.cause:
            detail["cause"] = exc.rc.cause
        if exc.rc.details:
            detail["details"] = exc.rc.details
    if exc.controller:
        detail["controller"] = exc.controller
    return detail


@contextmanager
def upstream(action: str) -> Iterator[None]:
    """Run a LINSTOR interaction; turn unhandled client errors into 409/502/503/504 service errors."""
    try:
        yield
    except LinstorTimeout as exc:
        raise UpstreamError(
            "linstor_timeout",
            f"{action}: LINSTOR did not answer in time",
            status=504,
            linstor=linstor_detail(exc),
        ) from exc
    except LinstorOperationalError as exc:
        raise UpstreamError(
            "linstor_unavailable",
            f"{action}: LINSTOR is unavailable",
            status=503,
            linstor=linstor_detail(exc),
        ) from exc
    except LinstorAccessDenied as exc:
        # our credentials (LS_USERNAME/LS_PASSWORD, LS_BEARER_TOKEN_FILE, client certificate) are not accepted
        raise UpstreamError(
            "linstor_access_denied", f"{action}: LINSTOR refused our credentials", linstor=linstor_detail(exc)
        ) from exc
    except LinstorApiError as exc:
        # LINSTOR refused a well-formed request because of its state (no space, not connected, in use, ...)
        raise Conflict(
            "linstor_refused", f"{action}: LINSTOR refused: {exc}", linstor=linstor_detail(exc)
        ) from exc
    except LinstorProtocolError as exc:
        raise UpstreamError(
            "linstor_bad_answer", f"{action}: {exc.message}", linstor=linstor_detail(exc)
        ) from exc
