"""The errors the LINSTOR client raises.

LinstorError
 ├── LinstorOperationalError        the controller could not answer: worth a retry, maps to 503/504
 │    ├── LinstorUnavailable         connection refused / DNS / TLS handshake, on every controller
 │    ├── LinstorTimeout             connect or read timeout, or the request's deadline passed
 │    └── LinstorServerError         5xx without a decodable LINSTOR error (or FAIL_UNKNOWN_ERROR/IMPL_ERROR)
 ├── LinstorProtocolError           the answer is not what LINSTOR sends (malformed JSON, wrong shape)
 └── LinstorApiError                LINSTOR refused the request with ApiCallRc entries
      ├── LinstorNotFound            FAIL_NOT_FOUND_* (codes 300-399; HTTP 404)
      ├── LinstorExists              FAIL_EXISTS_* (codes 500-599)
      ├── LinstorInvalid             FAIL_INVLD_* (200-299), FAIL_MISSING_* (600-699), JSON parse errors
      ├── LinstorAccessDenied        FAIL_ACC_DENIED_* (400-499), FAIL_SIGN_IN*: bad credentials or token
      └── LinstorConflict            the object's state forbids it: FAIL_IN_USE, FAIL_NOT_CONNECTED, ...

LINSTOR derives the HTTP status from the first error ret_code (linstor-rest-api.md §1.7): "exists" and
"invalid" come back as 500, so the class is decided by the ret_code, never by the status alone.
"""

from __future__ import annotations

from app.linstor.models import ApiCallRc

MASK_ERROR = 0xC000000000000000
MASK_WARN = 0x8000000000000000
MASK_INFO = 0x4000000000000000
MASK_BITS_CODE = 0x7FFF

API_CALL_PARSE_ERROR = 0x0FFFFFFFFFFFFFFD | MASK_ERROR
FAIL_IN_USE = 997
FAIL_UNKNOWN_ERROR = 998
FAIL_IMPL_ERROR = 999
FAIL_SIGN_IN = 10000
FAIL_SIGN_IN_MISSING_CREDENTIALS = 10001
WARN_NOT_FOUND = 3000
INFO_NO_RSC_SPAWNED = 10000


def rc_code(ret_code: int) -> int:
    """The code bits (0-14) of a ret_code."""
    return (ret_code & 0xFFFFFFFFFFFFFFFF) & MASK_BITS_CODE


def rc_is_error(ret_code: int) -> bool:
    """True for ERROR entries (both type bits set); negative Java longs work with Python's &."""
    return (ret_code & MASK_ERROR) == MASK_ERROR


def rc_is_warning(ret_code: int) -> bool:
    """True for WARN entries that are not errors."""
    return (ret_code & MASK_ERROR) == MASK_WARN


def rc_is_info(ret_code: int) -> bool:
    """True for INFO entries."""
    return (ret_code & MASK_ERROR) == MASK_INFO


class LinstorError(Exception):
    """Base of every error the LINSTOR client raises."""

    def __init__(self, message: str, *, controller: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.controller = controller


class LinstorOperationalError(LinstorError):
    """The controller could not be reached or did not answer properly."""

    # seconds after which asking again makes sense; the session sets it when it gives up
    retry_after: float | None = None


class LinstorUnavailable(LinstorOperationalError):
    """No controller accepted the connection."""


class LinstorTimeout(LinstorOperationalError):
    """The controller did not answer in time."""


class LinstorServerError(LinstorOperationalError):
    """The controller failed with a 5xx and no business error."""

    def __init__(
        self, message: str, *, status: int, rcs: list[ApiCallRc] | None = None, controller: str | None = None
    ) -> None:
        super().__init__(message, controller=controller)
        self.status = status
        self.rcs = rcs or []


class LinstorProtocolError(LinstorError):
    """The controller's answer does not have the shape LINSTOR gives."""


class LinstorApiError(LinstorError):
    """LINSTOR refused the request; `rcs` holds its ApiCallRc entries, `rc` the deciding one."""

    def __init__(
        self, rc: ApiCallRc, *, status: int, rcs: list[ApiCallRc], controller: str | None = None
    ) -> None:
        super().__init__(rc.message, controller=controller)
        self.rc = rc
        self.status = status
        self.rcs = rcs

    @property
    def code(self) -> int:
        """The code bits of the deciding ret_code."""
        return rc_code(self.rc.ret_code)

    def __str__(self) -> str:
        parts = [self.rc.message]
        if self.rc.cause:
            parts.append(f"cause: {self.rc.cause}")
        return "; ".join(parts)


class LinstorNotFound(LinstorApiError):
    """FAIL_NOT_FOUND_*."""


class LinstorExists(LinstorApiError):
    """FAIL_EXISTS_*."""


class LinstorInvalid(LinstorApiError):
    """FAIL_INVLD_*, FAIL_MISSING_*, JSON parse errors."""


class LinstorAccessDenied(LinstorApiError):
    """FAIL_ACC_DENIED_*, FAIL_SIGN_IN*: LINSTOR rejected the credentials, the token or the client."""


class LinstorConflict(LinstorApiError):
    """The object's state forbids the request (in use, not connected, ...)."""


def error_for(
    rcs: list[ApiCallRc], *, status: int, controller: str | None = None
) -> LinstorApiError | LinstorServerError | None:
    """The exception for an answer: 401/403 always deny access; otherwise None when `rcs` holds no error."""
    first = next((rc for rc in rcs if rc_is_error(rc.ret_code)), None)
    if status in (401, 403):
        # The HTTP status decides here: a refused credential is never an outage to ride out, whatever
        # ret_code (often FAIL_UNKNOWN_ERROR) or body the controller or a proxy in front of it sends.
        rc = first or ApiCallRc(ret_code=MASK_ERROR | FAIL_SIGN_IN, message=f"LINSTOR answered {status}")
        return LinstorAccessDenied(rc, status=status, rcs=rcs, controller=controller)
    if first is None:
        if status >= 500:
            return LinstorServerError(
                f"LINSTOR answered {status}", status=status, rcs=rcs, controller=controller
            )
        return None
    # JSON carries ret_codes as signed Java longs: compare the parse error as unsigned 64 bits.
    if first.ret_code & 0xFFFFFFFFFFFFFFFF == API_CALL_PARSE_ERROR:
        return LinstorInvalid(first, status=status, rcs=rcs, controller=controller)
    code = rc_code(first.ret_code)
    cls: type[LinstorApiError]
    if 300 <= code <= 399:
        cls = LinstorNotFound
    elif 500 <= code <= 599:
        cls = LinstorExists
    elif 200 <= code <= 299 or 600 <= code <= 699:
        cls = LinstorInvalid
    elif 400 <= code <= 499 or code in (FAIL_SIGN_IN, FAIL_SIGN_IN_MISSING_CREDENTIALS):
        cls = LinstorAccessDenied
    elif code in (FAIL_UNKNOWN_ERROR, FAIL_IMPL_ERROR):
        return LinstorServerError(first.message, status=status, rcs=rcs, controller=controller)
    else:
        cls = LinstorConflict
    return cls(first, status=status, rcs=rcs, controller=controller)
