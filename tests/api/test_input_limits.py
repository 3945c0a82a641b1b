"""Input that cannot hurt: what LINSTOR or a cache cannot hold is a 422 before anything is written, sizes
are bounded by LINSTOR's maximum, and request bodies by a limit (413)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.linstor import LinstorClient
from app.naming import round_size_kib
from tests.api.conftest import ServiceFactory
from tests.support.api import POOL, assert_problem, create

VOLUMES = f"/v1/pools/{POOL}/volumes"


async def nothing_in_linstor(linstor: LinstorClient) -> None:
    """No resource definition was made (the test pool starts empty)."""
    assert await linstor.list_resource_definitions() == []


# ---- control characters ----------------------------------------------------------------------------------

CONTROLS = ["\x00", "\n", "\t", "\x1b", "\x7f", "\x85", "\x9f"]  # C0 (NUL, LF, TAB, ESC), DEL, C1 (NEL, APC)


@pytest.mark.parametrize("char", CONTROLS, ids=repr)
@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("project", "invalid_project"),
        ("description", "invalid_description"),
        ("name", "invalid_name"),
    ],
)
async def test_a_control_character_in_any_field_is_refused_before_linstor(
    api: httpx.AsyncClient, linstor: LinstorClient, field: str, char: str, code: str
) -> None:
    body: dict[str, Any] = {"name": "vol", "type": "custom", "size": "1GiB", field: f"a{char}b"}
    assert_problem(await api.post(VOLUMES, json=body), 422, code)
    await nothing_in_linstor(linstor)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"name": "c1", "type": "container", "size": "1GiB", "project": "a\\ud800b"}', "invalid_project"),
        (
            '{"name": "c1", "type": "container", "size": "1GiB", "description": "a\\udfffb"}',
            "invalid_description",
        ),
        ('{"name": "a\\ud800", "type": "custom", "size": "1GiB"}', "invalid_name"),
    ],
)
async def test_a_lone_surrogate_is_refused_not_a_500(
    api: httpx.AsyncClient, linstor: LinstorClient, raw: str, code: str
) -> None:
    """JSON's "\\ud800" decodes to a character UTF-8 cannot encode: LINSTOR's JSON and both caches need it."""
    response = await api.post(VOLUMES, content=raw, headers={"content-type": "application/json"})
    assert_problem(response, 422, code)
    await nothing_in_linstor(linstor)


async def test_every_way_a_project_comes_in_refuses_nul(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    """The query of lookups and lists, a copy's source, a rename target's project: all one rule."""
    vol = await create(api, name="c1", type="container")
    params = {"project": "a\x00b"}
    assert_problem(await api.get(VOLUMES, params=params), 422, "invalid_project")
    assert_problem(await api.get(f"{VOLUMES}/container/c1", params=params), 422, "invalid_project")
    assert_problem(
        await api.patch(f"{VOLUMES}/container/c1", params=params, json={"name": "c2"}), 422, "invalid_project"
    )
    copy = {
        "name": "c2",
        "type": "container",
        "source": {"type": "container", "name": "c1", "project": "a\x00b"},
    }
    assert_problem(await api.post(VOLUMES, json=copy), 422, "invalid_project")
    assert [rd.name for rd in await linstor.list_resource_definitions()] == [vol["linstor_name"]]


async def test_descriptions_fit_a_linstor_value_counted_in_utf16(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    """4096 UTF-16 code units, as LINSTOR counts: 2048 emoji fit, 2049 do not (4097 ASCII neither)."""
    for description in ("x" * 4097, "\U0001f600" * 2049):
        body = {"name": "c1", "type": "container", "size": "1GiB", "description": description}
        assert_problem(await api.post(VOLUMES, json=body), 422, "invalid_description")
    await nothing_in_linstor(linstor)
    created = await create(api, name="c1", type="container", description="\U0001f600" * 2048)
    props = (await linstor.get_resource_definition(created["linstor_name"])).props
    assert props["Aux/Incus/description"] == "\U0001f600" * 2048


async def test_projects_are_at_most_255_characters(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    body = {"name": "c1", "type": "container", "size": "1GiB", "project": "p" * 256}
    assert_problem(await api.post(VOLUMES, json=body), 422, "invalid_project")
    await nothing_in_linstor(linstor)
    await create(api, name="c1", type="container", project="p" * 255)


# ---- snapshot names --------------------------------------------------------------------------------------

BAD_SNAPSHOT_NAMES = ["a\x00b", "a\x1bb", "a\x85b", "snäp", "a=b", "a,b", "a*b", "a b", "x" * 173]


@pytest.mark.parametrize("name", BAD_SNAPSHOT_NAMES, ids=lambda n: repr(n)[:12])
async def test_snapshot_names_a_linstor_key_cannot_hold_are_refused(
    api: httpx.AsyncClient, linstor: LinstorClient, name: str
) -> None:
    """Create and rename alike: no LINSTOR snapshot is taken, no mapping key written."""
    vol = await create(api, name="c1", type="container")
    path = f"{VOLUMES}/container/c1/snapshots"
    assert_problem(await api.post(path, json={"name": name}), 422, "invalid_name")
    assert (await api.post(path, json={"name": "snap0"})).status_code == 201
    assert_problem(await api.patch(f"{path}/snap0", json={"name": name}), 422, "invalid_name")
    assert len(await linstor.list_snapshots(vol["linstor_name"])) == 1
    props = (await linstor.get_resource_definition(vol["linstor_name"])).props
    assert [k for k in props if "/snapshot-name/" in k] == ["Aux/Incus/snapshot-name/snap0"]


async def test_the_longest_snapshot_name_is_a_key_linstor_holds(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    vol = await create(api, name="c1", type="container")
    name = "x" * 172
    response = await api.post(f"{VOLUMES}/container/c1/snapshots", json={"name": name})
    assert response.status_code == 201, response.text
    assert (
        f"Aux/Incus/snapshot-name/{name}"
        in (await linstor.get_resource_definition(vol["linstor_name"])).props
    )


# ---- sizes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [99999999999999999999999999, "9999999EiB", 10**30, 2**50 + 1, "1025TiB", "9" * 60],
    ids=lambda s: repr(s)[:20],
)
async def test_a_size_linstor_cannot_hold_is_422_with_the_bound(
    api: httpx.AsyncClient, linstor: LinstorClient, size: object
) -> None:
    """Past LINSTOR's maximum (DRBD's 1 PiB) is refused before LINSTOR; past 64 bits it used to be a 500."""
    body = assert_problem(
        await api.post(VOLUMES, json={"name": "c1", "type": "container", "size": size}), 422, "invalid_size"
    )
    assert "1 PiB" in body["detail"]
    assert "1099511627776 KiB" in body["detail"]
    await nothing_in_linstor(linstor)


@pytest.mark.parametrize("size", [-5, "-5", "-5GiB", 0, "0B"], ids=repr)
async def test_a_negative_or_zero_size_must_be_positive(
    api: httpx.AsyncClient, linstor: LinstorClient, size: object
) -> None:
    body = assert_problem(
        await api.post(VOLUMES, json={"name": "c1", "type": "container", "size": size}), 422, "invalid_size"
    )
    assert "positive" in body["detail"]
    await nothing_in_linstor(linstor)


@pytest.mark.parametrize(
    ("size", "says"),
    [
        ("lots", "not a number"),
        ("5 parsecs", "unknown unit 'parsecs'"),
        ("10 GiB GiB", "not a number"),
        ("9" * 5000, "longer than any size"),
        (1.5, "whole number of bytes"),
        (True, "whole number of bytes"),
        ([1], "whole number of bytes"),
    ],
    ids=lambda v: repr(v)[:24],
)
async def test_a_size_that_cannot_be_read_says_why(
    api: httpx.AsyncClient, linstor: LinstorClient, size: object, says: str
) -> None:
    body = assert_problem(
        await api.post(VOLUMES, json={"name": "c1", "type": "container", "size": size}), 422, "invalid_size"
    )
    assert says in body["detail"]
    await nothing_in_linstor(linstor)


async def test_size_strings_are_read_as_before(api: httpx.AsyncClient) -> None:
    """ByteSize's units, case-insensitive, with decimals and an optional space: clients keep working."""
    for name, size, size_bytes in (
        ("c1", "1.5GiB", 3 << 29),
        ("c2", "10 gb", round_size_kib(10**10) * 1024),  # rounded up to 8 KiB as Incus rounds
        ("c3", "+8MiB", 8 << 20),
    ):
        assert (await create(api, name=name, type="container", size=size))["volumes"][0][
            "size_bytes"
        ] == size_bytes


# ---- the body limit --------------------------------------------------------------------------------------


async def chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends an iterator chunked."""
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


async def test_a_body_over_the_limit_by_its_length_is_413_and_the_service_goes_on(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    body = b'{"name": "c1", "type": "container", "size": "1GiB", "description": "' + b"x" * 1_000_000 + b'"}'
    response = await api.post(VOLUMES, content=body, headers={"content-type": "application/json"})
    problem = assert_problem(response, 413, "body_too_large")
    assert str(64 * 1024) in problem["detail"]
    await nothing_in_linstor(linstor)
    await create(api, name="c1", type="container")  # the next request is answered as ever


async def test_a_chunked_body_over_the_limit_is_413(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    """No Content-Length to go by: the chunks are counted as the app reads them."""
    response = await api.post(
        VOLUMES, content=chunks(1_000_000), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body_too_large")
    await nothing_in_linstor(linstor)
    await create(api, name="c1", type="container")


async def test_a_chunked_body_under_the_limit_is_read_as_ever(api: httpx.AsyncClient) -> None:
    body = b'{"name": "c1", "type": "container", "size": "1GiB"}'

    async def parts() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8):
            yield body[i : i + 8]

    response = await api.post(VOLUMES, content=parts(), headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


async def test_the_largest_legitimate_body_is_under_the_default_limit(api: httpx.AsyncClient) -> None:
    """A 4096-character description with every character \\u-escaped: the default limit leaves room."""
    escaped = "\\u00e9" * 4096
    body = f'{{"name": "c1", "type": "container", "size": "1GiB", "description": "{escaped}"}}'
    response = await api.post(VOLUMES, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "\u00e9" * 4096


async def test_a_client_waiting_for_100_continue_gets_the_413_at_once(service: ServiceFactory) -> None:
    """It never sends the body it announced: the 413 comes without it, and the connection is closed."""
    async with service(max_body_bytes=100) as api:
        url = httpx.URL(str(api.base_url))
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            f"POST {VOLUMES} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # to EOF: the server closes
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["code"] == "body_too_large"


async def test_the_limit_is_a_setting(service: ServiceFactory, linstor: LinstorClient) -> None:
    async with service(max_body_bytes=100) as api:
        small = {"name": "c1", "type": "container", "size": "1GiB"}
        assert (await api.post(VOLUMES, json=small)).status_code == 201
        large = {**small, "name": "c2", "description": "x" * 100}
        assert_problem(await api.post(VOLUMES, json=large), 413, "body_too_large")
        response = await api.post(
            VOLUMES, content=chunks(101, 10), headers={"content-type": "application/json"}
        )
        assert_problem(response, 413, "body_too_large")
    assert len(await linstor.list_resource_definitions()) == 1


# ---- the PostgreSQL cache --------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_nul_project_never_reaches_a_postgresql_cache(
    service: ServiceFactory, linstor: LinstorClient, pg_url: str
) -> None:
    """Issue 10: one accepted NUL broke every later resync ("text fields cannot contain NUL")."""
    async with service(cache_url=pg_url, cache_mode="trust") as api:
        for field, code in (("project", "invalid_project"), ("description", "invalid_description")):
            body = {"name": "c1", "type": "container", "size": "1GiB", field: "a\x00b"}
            assert_problem(await api.post(VOLUMES, json=body), 422, code)
        await nothing_in_linstor(linstor)
        # the longest project and name the rules allow, in 4-byte UTF-8, fit the cache's identity index
        await create(api, name="\U0001f600" * 200, type="custom", project="\U0001f600" * 255)
        rebuilt = await api.post("/v1/cache/rebuild")
        assert rebuilt.status_code == 200, rebuilt.text
        assert rebuilt.json()["volumes"] == 1
        assert (await api.get("/readyz")).status_code == 200
