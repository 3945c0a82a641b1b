"""Bearer-token authentication and scope checks: a pure ASGI middleware driven by one table of rules.

RULES says which scope each method and path needs; the first matching rule wins. A request without a
usable token is answered 401, one whose token lacks the scope 403, both problem+json with an RFC 6750
`WWW-Authenticate`. The token's name goes into the request's state (`token_name`) for audit lines. Without
any token configured the middleware lets everything through: `serve` then allows loopback only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import problem
from app.auth_tokens import Scope as TokenScope
from app.auth_tokens import TokenHash, verify

REALM = 'Bearer realm="linstor-names"'
SCHEME = "bearer"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Rule:
    """Requests whose method is in `methods` (None: any) and whose path is `prefix` or under it need `scope`
    (None: open). In `prefix`, `*` stands for one path segment."""

    methods: frozenset[str] | None
    prefix: str
    scope: TokenScope | None

    @property
    def regex(self) -> re.Pattern[str]:
        """The prefix as a regular expression over whole segments."""
        body = re.escape(self.prefix.rstrip("/")).replace(r"\*", "[^/]+")
        return re.compile(f"^{body}(?:/|$)")


_ADMIN = frozenset({"POST"})
RULES: tuple[Rule, ...] = (
    Rule(None, "/healthz", None),
    Rule(None, "/readyz", None),
    # the API documentation and its assets: the browser fetches them before anyone can press Authorize
    Rule(frozenset({"GET", "HEAD"}), "/docs", None),
    Rule(frozenset({"GET", "HEAD"}), "/redoc", None),
    Rule(frozenset({"GET", "HEAD"}), "/openapi.json", None),
    Rule(frozenset({"GET", "HEAD"}), "/static/docs", None),
    Rule(_ADMIN, "/v1/cache/rebuild", TokenScope.ADMIN),
    Rule(_ADMIN, "/v1/pools/*/orphans/repair", TokenScope.ADMIN),
    # everything else, /metrics included, and anything added later: closed unless a rule above opens it
    Rule(_WRITES, "/", TokenScope.WRITE),
    Rule(None, "/", TokenScope.READ),
)
_COMPILED = tuple((rule, rule.regex) for rule in RULES)


def required_scope(method: str, path: str) -> TokenScope | None:
    """The scope a request needs (None: open to all), from the first rule of RULES that matches."""
    for rule, regex in _COMPILED:
        if (rule.methods is None or method in rule.methods) and regex.match(path):
            return rule.scope
    return TokenScope.READ  # unreachable while the last rule matches every path; closed if it is removed


class Authenticate:
    """Answer 401/403 problem+json to requests whose bearer token is missing, unknown or lacks the scope."""

    def __init__(self, app: ASGIApp, tokens: Sequence[TokenHash]) -> None:
        self.app = app
        self.tokens = tuple(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request against RULES; record the token's name in the request's state."""
        if scope["type"] != "http" or not self.tokens:
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], _route_path(scope))
        if needed is None:
            await self.app(scope, receive, send)
            return
        presented = _bearer(Headers(scope=scope).get("authorization"))
        token = verify(self.tokens, presented) if presented else None
        if token is None:
            # RFC 6750 §3.1: a request without credentials gets no error code, a bad token invalid_token
            challenge = REALM if presented is None else f'{REALM}, error="invalid_token"'
            detail = "a bearer token is required" if presented is None else "the bearer token is not valid"
            await _refuse(scope, receive, send, 401, "unauthenticated", "Unauthenticated", detail, challenge)
            return
        if not token.allows(needed):
            challenge = f'{REALM}, error="insufficient_scope", scope="{needed.label}"'
            detail = f"the token {token.name!r} lacks the {needed.label!r} scope"
            await _refuse(scope, receive, send, 403, "forbidden", "Forbidden", detail, challenge)
            return
        scope.setdefault("state", {})["token_name"] = token.name
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the routes see: behind a proxy prefix (root_path) the rules still match."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :] or "/"
    return path


def _bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without one (or with another scheme)."""
    if header is None:
        return None
    kind, _, token = header.strip().partition(" ")
    if kind.lower() != SCHEME or not token.strip():
        return None
    return token.strip()


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    title: str,
    detail: str,
    challenge: str,
) -> None:
    response = problem(Request(scope), status, code, title, detail)
    response.headers["WWW-Authenticate"] = challenge
    await response(scope, receive, send)


# what the middleware answers on a closed operation (`code` unauthenticated and forbidden)
REFUSALS = {"401": "Unauthenticated: no token, or one the service does not know", "403": "Forbidden"}


def _problem_response(title: str, needed: TokenScope) -> dict[str, Any]:
    detail = f"{title} (this operation needs scope {needed.name.lower()})" if title == "Forbidden" else title
    return {
        "description": detail,
        "headers": {"WWW-Authenticate": {"description": "RFC 6750 challenge", "schema": {"type": "string"}}},
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def document_security(app: FastAPI) -> None:
    """Declare the bearer scheme in the OpenAPI document, on the operations RULES closes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        components = document.setdefault("components", {})
        components.setdefault("securitySchemes", {})[SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token made by `linstor-names token create`, with scopes read, write or admin "
            "(admin implies write, write implies read). Not needed when the service has no tokens.",
        }
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                needed = required_scope(method.upper(), path)
                if needed is not None:
                    operation["security"] = [{SCHEME: []}]
                    responses = operation.setdefault("responses", {})
                    for status, title in REFUSALS.items():
                        responses.setdefault(status, _problem_response(title, needed))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
