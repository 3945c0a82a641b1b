"""Async client for the LINSTOR controller REST API v1."""

from app.linstor.client import LinstorClient
from app.linstor.errors import (
    LinstorAccessDenied,
    LinstorApiError,
    LinstorConflict,
    LinstorError,
    LinstorExists,
    LinstorInvalid,
    LinstorNotFound,
    LinstorOperationalError,
    LinstorProtocolError,
    LinstorServerError,
    LinstorTimeout,
    LinstorUnavailable,
)

__all__ = [
    "LinstorAccessDenied",
    "LinstorApiError",
    "LinstorClient",
    "LinstorConflict",
    "LinstorError",
    "LinstorExists",
    "LinstorInvalid",
    "LinstorNotFound",
    "LinstorOperationalError",
    "LinstorProtocolError",
    "LinstorServerError",
    "LinstorTimeout",
    "LinstorUnavailable",
]
