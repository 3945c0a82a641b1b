"""LINSTOR's errors in the service's words, translated once where a domain operation starts.

The domain's public operations are decorated with `translates_linstor_errors`: whatever LINSTOR client error
the operation did not handle itself (a step may catch `LinstorNotFound` to mean "absent") leaves it as a
service error with a stable problem code. httpx's `map_exceptions` is the model: one boundary, not a `with`
block around every call, so no call can be forgotten. The API's error handlers translate any client error
that still escapes (a new operation without the decorator) the same way, so none becomes a 500.

The same boundary opens the operation whose LINSTOR calls share one deadline (app/linstor/transport.py);
a 503/504 carries `retry_after`: the seconds after which asking again makes sense.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from app.errors import Conflict, UpstreamError
from app.linstor.errors import (
    LinstorAccessDenied,
    LinstorApiError,
    LinstorError,
    LinstorOperationalError,
    LinstorProtocolError,
    LinstorTimeout,
)
from app.linstor.transport import linstor_operation


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


P = ParamSpec("P")
R = TypeVar("R")


Operation = Callable[P, Awaitable[R]]


def translates_linstor_errors(action: str) -> Callable[[Operation[P, R]], Operation[P, R]]:
    """Decorate a domain operation: LINSTOR client errors it lets through become service errors."""

    def decorate(operation: Operation[P, R]) -> Operation[P, R]:
        @functools.wraps(operation)
        async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
            with linstor_errors(action), linstor_operation():
                return await operation(*args, **kwargs)

        return translated

    return decorate


@contextmanager
def linstor_errors(action: str) -> Iterator[None]:
    """Turn LINSTOR client errors into 409/502/503/504 service errors, the message prefixed by `action`."""
    try:
        yield
    except LinstorTimeout as exc:
        raise UpstreamError(
            "linstor_timeout",
            f"{action}: LINSTOR did not answer in time",
            status=504,
            linstor=linstor_detail(exc),
            retry_after=exc.retry_after,
        ) from exc
    except LinstorOperationalError as exc:
        raise UpstreamError(
            "linstor_unavailable",
            f"{action}: LINSTOR is unavailable",
            status=503,
            linstor=linstor_detail(exc),
            retry_after=exc.retry_after,
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
