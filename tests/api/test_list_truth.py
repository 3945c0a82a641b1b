"""Lists that tell the truth (issue 10): never a cold or half-rebuilt cache served as a complete hit, verify
mode confirmed by one LINSTOR list, failing resyncs said in /readyz and in the cache report."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app.identity import ContentType, VolumeType
from app.linstor import LinstorClient
from app.naming import AuxCodec, random_linstor_name
from app.specs import make_key
from tests.api.conftest import ServiceFactory
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem, create

VOLUMES = f"/v1/pools/{POOL}/volumes"
# the controller's resource-definition listing: what a sync, a list and a verify-mode lookup ask
LISTING = r"^/v1/resource-definitions$"
# the emulator's answer to an `error` fault, as the client reports it
FAULT = "An unknown error occurred."
SINCE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


async def made_behind_the_back(linstor: LinstorClient, name: str) -> str:
    """A container spawned as Incus spawns it (its identity in the spawn), past the service: its RD name."""
    key = make_key(POOL, "default", VolumeType.CONTAINER, name)
    props = AuxCodec("incus-volume-", "Incus").volume_props(key, ContentType.FILESYSTEM)
    rd_name = random_linstor_name("incus-volume-")
    await linstor.spawn(POOL, rd_name, [1 << 20], props=props)
    return rd_name


def listed(response: httpx.Response) -> tuple[str, list[str]]:
    """A list's Cache-Status and the names it holds (the status checked)."""
    assert response.status_code == 200, response.text
    return response.headers["cache-status"], [v["name"] for v in response.json()["volumes"]]


async def until(check: Callable[[], Awaitable[Any]], seconds: float = 5.0) -> Any:
    """Poll `check` until it returns something true, at most `seconds`; that value."""
    for _ in range(int(seconds / 0.02)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds}s")


async def report(api: httpx.AsyncClient) -> dict[str, Any]:
    """GET /v1/cache."""
    answer = await api.get("/v1/cache")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def warm(api: httpx.AsyncClient) -> None:
    """Wait for the start-up sync."""
    await until(lambda: _warm(api))


async def _warm(api: httpx.AsyncClient) -> bool:
    return bool((await report(api))["warm"])


@pytest.mark.parametrize("mode", ["verify", "trust"])
async def test_a_cold_cache_never_answers_a_list_as_a_hit(
    service: ServiceFactory, emulator: Emulator, linstor: LinstorClient, mode: str
) -> None:
    """Issue 10: started while LINSTOR could not list, a replica answered {"volumes": []} as a hit and was
    ready. Now: 503 while LINSTOR fails, LINSTOR's list (fwd=miss) once it answers, warming until a first
    sync of this process succeeds; then hits."""
    for name in ("c1", "c2"):
        await made_behind_the_back(linstor, name)
    emulator.state.add_fault(action="error", method="GET", path=LISTING)
    try:
        async with service(cache_mode=mode) as api:  # its start-up sync fails; the next is an hour away
            ready = await api.get("/readyz")
            assert ready.status_code == 503
            checks = ready.json()["checks"]
            assert checks["linstor"] == "ok"
            assert re.fullmatch(f"warming; resync failing since {SINCE}: {re.escape(FAULT)}", checks["cache"])
            assert_problem(await api.get(VOLUMES), 503, "linstor_unavailable")
            cold = await report(api)
            assert (cold["warm"], cold["rebuilding"], cold["last_error"]) == (False, False, FAULT)
            assert cold["last_error_at"] is not None
            assert cold["failing_since"] is not None

            emulator.state.clear_faults()  # the controller comes up
            assert listed(await api.get(VOLUMES)) == ("linstor-names; fwd=miss", ["c1", "c2"])
            still = await api.get("/readyz")
            assert still.status_code == 503
            assert still.json()["checks"]["cache"].startswith("warming; ")

            # a first sync of this process (asked for here; the periodic resync does the same)
            assert (await api.post("/v1/cache/rebuild")).status_code == 200
            ready = await api.get("/readyz")
            assert (ready.status_code, ready.json()["checks"]) == (200, {"linstor": "ok", "cache": "ok"})
            assert listed(await api.get(VOLUMES)) == ("linstor-names; hit", ["c1", "c2"])
            synced = await report(api)
            assert (synced["warm"], synced["last_error"], synced["failing_since"]) == (True, None, None)
    finally:
        emulator.state.clear_faults()


async def test_the_periodic_resync_warms_the_cache_once_linstor_answers(
    service: ServiceFactory, emulator: Emulator, linstor: LinstorClient
) -> None:
    await made_behind_the_back(linstor, "c1")
    emulator.state.add_fault(action="error", method="GET", path=LISTING, times=2)
    try:
        async with service(cache_mode="trust", cache_resync_interval=0.1) as api:
            ready = await until(lambda: _ready(api))
            assert ready.json()["checks"] == {"linstor": "ok", "cache": "ok"}
            assert listed(await api.get(VOLUMES)) == ("linstor-names; hit", ["c1"])
    finally:
        emulator.state.clear_faults()


async def _ready(api: httpx.AsyncClient) -> httpx.Response | None:
    response = await api.get("/readyz")
    return response if response.status_code == 200 else None


async def test_a_list_during_a_rebuild_holds_every_volume(
    service: ServiceFactory, emulator: Emulator, linstor: LinstorClient
) -> None:
    """Issue 10: a list during a rebuild returned 0 of 15. A trusted cache that an operator rebuilds
    because it is wrong (here: 15 volumes made behind the service) does not answer lists meanwhile."""
    async with service(cache_mode="trust") as api:
        await warm(api)
        for i in range(15):
            await made_behind_the_back(linstor, f"c{i:02}")
        # the rebuild's listing, and the list's, take a second: the list runs inside the rebuild
        emulator.state.add_fault(action="latency", method="GET", path=LISTING, seconds=1.0, times=2)
        try:
            rebuild = asyncio.create_task(api.post("/v1/cache/rebuild"))
            await until(lambda: _rebuilding(api))
            during = await api.get(VOLUMES)
            rebuilt = await rebuild
        finally:
            emulator.state.clear_faults()
        status, names = listed(during)
        assert (status, len(names)) == ("linstor-names; fwd=miss", 15)
        assert (rebuilt.status_code, rebuilt.json()["volumes"]) == (200, 15)
        assert (await report(api))["rebuilding"] is False
        status, names = listed(await api.get(VOLUMES))
        assert (status, len(names)) == ("linstor-names; hit", 15)


async def _rebuilding(api: httpx.AsyncClient) -> bool:
    return bool((await report(api))["rebuilding"])


async def test_verify_mode_lists_show_what_was_made_or_renamed_behind_the_service_at_once(
    service: ServiceFactory, linstor: LinstorClient
) -> None:
    async with service(cache_mode="verify") as api:
        await warm(api)
        c1 = await create(api, name="c1", type="container")
        assert listed(await api.get(VOLUMES)) == ("linstor-names; hit", ["c1"])
        await made_behind_the_back(linstor, "c2")
        await linstor.modify_resource_definition(
            c1["linstor_name"], override_props={"Aux/Incus/name": "incus-volume-c0"}
        )
        # one LINSTOR list for the page: what it holds is the answer, and the cache learns it
        assert listed(await api.get(VOLUMES)) == ("linstor-names; fwd=miss", ["c0", "c2"])
        assert listed(await api.get(VOLUMES)) == ("linstor-names; hit", ["c0", "c2"])
        got = await api.get(f"{VOLUMES}/container/c0")
        assert (got.status_code, got.headers["cache-status"]) == (200, "linstor-names; hit")


async def test_verify_mode_lookups_see_a_duplicate_identity_at_once(
    service: ServiceFactory, linstor: LinstorClient
) -> None:
    """A second RD with a volume's identity, made behind the service: the next lookup is 409, as Incus's
    own lookup would fail, not the cached RD confirmed by name."""
    async with service(cache_mode="verify") as api:
        c1 = await create(api, name="c1", type="container")
        hit = await api.get(f"{VOLUMES}/container/c1")
        assert (hit.status_code, hit.headers["cache-status"]) == (200, "linstor-names; hit")
        twin = await made_behind_the_back(linstor, "c1")
        body = assert_problem(await api.get(f"{VOLUMES}/container/c1"), 409, "ambiguous_volume")
        assert body["resource_definitions"] == sorted([c1["linstor_name"], twin])


@pytest.mark.parametrize("mode", ["verify", "trust"])
async def test_a_failing_resync_shows_in_readyz_and_the_cache_report(
    service: ServiceFactory, emulator: Emulator, mode: str
) -> None:
    """Verify mode answers from LINSTOR: ready, and says it. Trust mode serves ever staler answers: not
    ready after 3 failed resyncs in a row. Both recover with the next resync that succeeds."""
    async with service(cache_mode=mode, cache_resync_interval=0.1) as api:
        await warm(api)
        emulator.state.add_fault(action="error", method="GET", path=LISTING)
        try:
            failing = await until(lambda: _failing(api, trust=mode == "trust"))
        finally:
            emulator.state.clear_faults()
        cache_check = failing.json()["checks"]["cache"]
        if mode == "trust":
            assert failing.status_code == 503
            stale = r" \([3-9] in a row; trusted answers grow stale\)"
            assert re.fullmatch(f"resync failing since {SINCE}: {re.escape(FAULT)}{stale}", cache_check)
        else:
            assert failing.status_code == 200
            assert re.fullmatch(f"resync failing since {SINCE}: {re.escape(FAULT)}", cache_check)
        recovered = await until(lambda: _failing(api, trust=False, ok=True))
        assert recovered.json()["checks"] == {"linstor": "ok", "cache": "ok"}
        assert (await report(api))["last_error"] is None


async def _failing(api: httpx.AsyncClient, *, trust: bool, ok: bool = False) -> httpx.Response | None:
    """/readyz once its cache check says the resyncs fail (trust: once it is 503); `ok`: once all is well."""
    response = await api.get("/readyz")
    cache_check = response.json()["checks"]["cache"]
    if ok:
        return response if cache_check == "ok" else None
    if not cache_check.startswith("resync failing") or (trust and response.status_code != 503):
        return None
    assert (await report(api))["last_error"] == FAULT
    return response
