"""Bearer tokens and scopes: 401/403 problems with RFC 6750 challenges, the rule table, hashing, OpenAPI."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.api.auth import Authenticate, required_scope
from app.auth_tokens import Scope as TokenScope
from app.auth_tokens import TokenHash, create_token, load_tokens, parse_lines, verify
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.main import create_app
from app.settings import Settings
from tests.api.conftest import Service, service_settings
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem
from tests.support.server import serve

REALM = 'Bearer realm="linstor-names"'
TOKENS: dict[str, tuple[str, TokenHash]] = {
    scope.label: create_token(f"ci-{scope.label}", [scope]) for scope in TokenScope
}


def bearer(scope: str) -> dict[str, str]:
    """The Authorization header of the test token with `scope`."""
    return {"Authorization": f"Bearer {TOKENS[scope][0]}"}


@pytest.fixture(scope="module")
def auth_server(emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service with three tokens: read and write inline (`;`-separated), admin from a tokens file."""
    tokens_file = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens_file.write_text(f"# admins\n{TOKENS['admin'][1].line()}\n")
    settings = service_settings(
        tmp_path_factory.mktemp("cache"),
        tokens=f"{TOKENS['read'][1].line()};{TOKENS['write'][1].line()}",
        tokens_file=tokens_file,
    )
    app = create_app(settings, linstor=ConnectionConfig(urls=(emulator_server.url,)))
    with serve(app) as url:
        yield Service(url=url, app=app)


@pytest.fixture
async def client(linstor: LinstorClient, auth_server: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service with tokens, on the freshly reset emulator with the test pool."""
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as c:
        yield c


VOLUMES = f"/v1/pools/{POOL}/volumes"
BODY = {"name": "c1", "type": "container", "size": "1GiB"}


async def test_no_token_is_401_with_a_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(VOLUMES)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == REALM


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", f"Bearer {'x' * 43}"])
async def test_an_unknown_token_is_401_invalid_token(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get(VOLUMES, headers={"Authorization": authorization})
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == f'{REALM}, error="invalid_token"'


async def test_another_scheme_counts_as_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get(VOLUMES, headers={"Authorization": f"Basic {TOKENS['admin'][0]}"})
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == REALM


async def test_a_read_token_reads_but_may_not_create(client: httpx.AsyncClient) -> None:
    assert (await client.get(VOLUMES, headers=bearer("read"))).status_code == 200
    response = await client.post(VOLUMES, json=BODY, headers=bearer("read"))
    body = assert_problem(response, 403, "forbidden")
    assert "ci-read" in body["detail"]
    assert response.headers["www-authenticate"] == f'{REALM}, error="insufficient_scope", scope="write"'


async def test_a_write_token_creates_and_deletes(client: httpx.AsyncClient) -> None:
    assert (await client.post(VOLUMES, json=BODY, headers=bearer("write"))).status_code == 201
    response = await client.delete(f"{VOLUMES}/container/c1", headers=bearer("write"))
    assert response.status_code == 204


@pytest.mark.parametrize("path", ["/v1/cache/rebuild", f"/v1/pools/{POOL}/orphans/repair"])
async def test_admin_operations_need_admin(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, headers=bearer("write"))
    assert_problem(response, 403, "forbidden")
    assert response.headers["www-authenticate"] == f'{REALM}, error="insufficient_scope", scope="admin"'
    assert (await client.post(path, headers=bearer("admin"))).status_code == 200


async def test_admin_implies_write(client: httpx.AsyncClient) -> None:
    assert (await client.post(VOLUMES, json=BODY, headers=bearer("admin"))).status_code == 201


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_health_and_the_schema_stay_open(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_without_tokens_nothing_is_asked(api: httpx.AsyncClient) -> None:
    """The shared test service has no tokens: authentication is off (serve allows loopback only)."""
    assert (await api.get(VOLUMES)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/docs", None),
        ("GET", "/docs/oauth2-redirect", None),
        ("GET", "/static/docs/swagger/swagger-ui-bundle.js", None),
        ("POST", "/healthz", None),
        ("GET", "/healthzzz", TokenScope.READ),
        ("GET", "/metrics", TokenScope.READ),
        ("HEAD", VOLUMES, TokenScope.READ),
        ("GET", "/v1/cache", TokenScope.READ),
        ("POST", "/docs", TokenScope.WRITE),
        ("POST", VOLUMES, TokenScope.WRITE),
        ("PATCH", f"{VOLUMES}/container/c1", TokenScope.WRITE),
        ("DELETE", f"{VOLUMES}/container/c1/snapshots/s1", TokenScope.WRITE),
        ("POST", "/v1/cache/rebuild", TokenScope.ADMIN),
        ("POST", "/v1/cache/rebuild/", TokenScope.ADMIN),
        ("POST", "/v1/pools/p/orphans/repair", TokenScope.ADMIN),
        ("POST", "/v1/pools/{pool}/orphans/repair", TokenScope.ADMIN),
        ("GET", "/v1/pools/p/orphans", TokenScope.READ),
        ("POST", "/anything/new", TokenScope.WRITE),
    ],
)
def test_the_rule_table(method: str, path: str, scope: TokenScope | None) -> None:
    assert required_scope(method, path) == scope


async def _call(app: Authenticate, scope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run one request through the middleware; (status, the scope the inner app saw)."""
    seen: dict[str, Any] = {}
    status = 0

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status, seen


def _middleware(seen: dict[str, Any]) -> Authenticate:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return Authenticate(inner, [TOKENS["write"][1]])


def _scope(method: str, path: str, token: str | None, root_path: str = "") -> dict[str, Any]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": root_path,
        "headers": headers,
        "query_string": b"",
        "server": ("127.0.0.1", 80),
        "scheme": "http",
    }


async def test_the_token_name_goes_into_the_request_state() -> None:
    seen: dict[str, Any] = {}
    status, _ = await _call(_middleware(seen), _scope("POST", VOLUMES, TOKENS["write"][0]))
    assert status == 200
    assert seen["state"]["token_name"] == "ci-write"


async def test_the_admin_rule_holds_behind_a_proxy_prefix() -> None:
    seen: dict[str, Any] = {}
    scope = _scope("POST", "/names/v1/cache/rebuild", TOKENS["write"][0], root_path="/names")
    status, _ = await _call(_middleware(seen), scope)
    assert status == 403
    assert not seen


def test_the_tokens_file_holds_hashes_only(tmp_path: Path) -> None:
    token, hashed = create_token("ops", [TokenScope.READ, TokenScope.WRITE])
    line = hashed.line()
    assert token not in line
    assert token.encode().hex() not in line
    path = tmp_path / "tokens"
    path.write_text(line + "\n")
    (loaded,) = load_tokens(None, path)
    assert loaded == hashed
    assert loaded.name == "ops"
    assert loaded.scopes == {TokenScope.READ, TokenScope.WRITE}
    assert verify([loaded], token) == loaded
    # two tokens with the same secret would still hash differently: the salt is random
    assert (
        create_token("ops", [TokenScope.READ])[1].digest != create_token("ops", [TokenScope.READ])[1].digest
    )


def test_verify_compares_every_token_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", spy)  # looked up at each call by app/auth_tokens.py
    tokens = [TOKENS[label][1] for label in ("read", "write", "admin")]
    assert verify(tokens, TOKENS["read"][0]) == TOKENS["read"][1]
    # no early exit at the first match: every token is compared, through hmac.compare_digest
    assert len(compared) == 3
    assert verify(tokens, "nope") is None


@pytest.mark.parametrize(
    "text",
    [
        "ops:read",
        "ops:root:sha256$00$" + "0" * 64,
        "ops:read:md5$00$" + "0" * 64,
        "ops::sha256$00$" + "0" * 64,
        "o p:read:sha256$00$" + "0" * 64,
        "ops:read:sha256$00$" + "0" * 64 + ";ops:write:sha256$00$" + "0" * 64,
    ],
)
def test_bad_token_lines_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_lines(text)


def test_the_schema_declares_the_bearer_scheme() -> None:
    document = create_app(Settings(cache_url="none")).openapi()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    volumes = document["paths"]["/v1/pools/{pool}/volumes"]
    assert volumes["post"]["security"] == [{"bearer": []}]
    assert volumes["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_every_closed_operation_documents_its_401_and_403_problems() -> None:
    document = create_app(Settings(cache_url="none")).openapi()
    closed = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            refusals = {status: operation["responses"].get(status) for status in ("401", "403")}
            if "security" not in operation:
                assert refusals == {"401": None, "403": None}, (method, path)
                continue
            closed += 1
            for status, response in refusals.items():
                assert response is not None, (method, path, status)
                content = response["content"]["application/problem+json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Problem"}
                assert "WWW-Authenticate" in response["headers"]
    assert closed > 10
    create = document["paths"]["/v1/pools/{pool}/volumes"]["post"]
    assert "scope write" in create["responses"]["403"]["description"]
