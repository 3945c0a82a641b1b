"""Copies (LINSTOR clone with the new identity) and failures: nothing left behind, a clear cause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.main import create_app
from tests.api.conftest import serve_without_linstor, service_settings
from tests.conftest import Emulator
from tests.support.api import FINGERPRINT, POOL, assert_problem, create
from tests.support.server import serve


async def test_copy_clones_with_the_new_identity_in_the_clone_request(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    src = await create(api, name="c1", type="container", size="2GiB")
    await api.post(f"/v1/pools/{POOL}/volumes/container/c1/snapshots", json={"name": "snap0"})
    response = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}},
    )
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["linstor_name"] != src["linstor_name"]
    assert copy["volumes"] == src["volumes"]
    assert copy["snapshots"] == []  # LINSTOR does not clone snapshots; the inherited keys are dropped
    props = (await linstor.get_resource_definition(copy["linstor_name"])).props
    assert props["Aux/Incus/name"] == "incus-volume-c2"
    assert props["cloned-from"] == src["linstor_name"]
    assert not [k for k in props if k.startswith("Aux/Incus/snapshot-name/")]
    assert (await api.get(f"/v1/pools/{POOL}/volumes/container/c1")).json()["snapshots"] == ["snap0"]


async def test_instance_from_image_is_a_clone_of_the_image_volume(api: httpx.AsyncClient) -> None:
    await create(api, name=FINGERPRINT, type="image", content_type="block", size="1GiB")
    response = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={"name": "v1", "type": "virtual-machine", "source": {"type": "image", "name": FINGERPRINT}},
    )
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "block"


async def test_source_is_never_ambiguous_while_a_clone_runs(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    """lxc/incus#2314: Incus clones without override_props, so while LINSTOR clones, its own lookup of the
    source (props filter on name and type) finds two RDs. Ours must never let that happen: the lookups here
    are Incus's, straight to LINSTOR, and run while clones are confirmed CLONING."""
    await create(api, name=FINGERPRINT, type="image", size="1GiB")
    emulator.state.set_clone_behaviour(seconds=0.5)
    copies = asyncio.gather(
        *(
            api.post(
                f"/v1/pools/{POOL}/volumes",
                json={"name": f"c{i}", "type": "container", "source": {"type": "image", "name": FINGERPRINT}},
            )
            for i in range(3)
        )
    )
    incus_lookup = [f"Aux/Incus/name=incus-volume-{FINGERPRINT}", "Aux/Incus/type=images"]
    matches: set[int] = set()
    cloning_seen = 0
    while not copies.done():
        everything = await linstor.list_resource_definitions()
        cloning = [rd for rd in everything if "CLONING" in rd.flags]
        matches.add(len(await linstor.list_resource_definitions(props=incus_lookup)))
        cloning_seen += bool(cloning)
        await asyncio.sleep(0.02)
    assert [r.status_code for r in await copies] == [201] * 3
    assert cloning_seen >= 3  # the window was hit: lookups ran while clones were CLONING
    assert matches == {1}
    lookup = await api.get(f"/v1/pools/{POOL}/volumes/image/{FINGERPRINT}")
    assert lookup.status_code == 200


async def test_copy_errors(api: httpx.AsyncClient) -> None:
    await create(api, name="c1", type="container")
    await create(api, name="c2", type="container")
    missing = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={"name": "c3", "type": "container", "source": {"type": "container", "name": "x"}},
    )
    assert_problem(missing, 404, "source_not_found")
    taken = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}},
    )
    assert_problem(taken, 409, "volume_exists")
    wrong_type = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={"name": "v1", "type": "virtual-machine", "source": {"type": "container", "name": "c1"}},
    )
    assert_problem(wrong_type, 422, "invalid_source")
    sized = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={
            "name": "c3",
            "type": "container",
            "size": "5GiB",
            "source": {"type": "container", "name": "c1"},
        },
    )
    assert_problem(sized, 422, "invalid_size")


async def test_failed_clone_leaves_nothing_behind(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    src = await create(api, name="c1", type="container")
    emulator.state.set_clone_behaviour(fail=True)
    response = await api.post(
        f"/v1/pools/{POOL}/volumes",
        json={"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}},
    )
    assert_problem(response, 502, "clone_failed")
    assert [rd.name for rd in await linstor.list_resource_definitions()] == [src["linstor_name"]]
    assert (await api.get(f"/v1/pools/{POOL}/volumes/container/c1")).status_code == 200


async def test_clone_past_its_deadline_is_removed(
    emulator: Emulator, linstor: LinstorClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = create_app(
        service_settings(tmp_path_factory.mktemp("slowclone"), clone_timeout=0.2),
        linstor=ConnectionConfig(urls=(emulator.url,)),
    )
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as api:
            await create(api, name="c1", type="container")
            emulator.state.set_clone_behaviour(seconds=2.0)
            response = await api.post(
                f"/v1/pools/{POOL}/volumes",
                json={"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}},
            )
            assert_problem(response, 504, "clone_timeout")
    assert len(await linstor.list_resource_definitions()) == 1


async def test_linstor_failing_the_spawn_is_reported_and_leaves_nothing(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    emulator.state.add_fault(action="error", method="POST", path=r"/spawn$", times=1)
    response = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": 1 << 30}
    )
    assert_problem(response, 503, "linstor_unavailable")
    assert await linstor.list_resource_definitions() == []


async def test_failed_placement_removes_the_new_resource_definition(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    # DfltRscGrp places 2 replicas (controller-api.jsonl #9); with one node online the spawn's placement
    # fails with FAIL_NOT_ENOUGH_NODES (controller-api.jsonl #193) and LINSTOR rolls the spawn back
    emulator.state.set_node_online("server02", False)
    emulator.state.set_node_online("server03", False)
    response = await api.post(
        "/v1/pools/DfltRscGrp/volumes", json={"name": "c1", "type": "container", "size": 1 << 30}
    )
    assert_problem(response, 409, "linstor_refused")
    assert await linstor.list_resource_definitions() == []


async def test_not_enough_space_is_linstors_refusal_with_its_message(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    response = await api.post(
        f"/v1/pools/{POOL}/volumes", json={"name": "c1", "type": "container", "size": "900TiB"}
    )
    body = assert_problem(response, 409, "linstor_refused")
    assert body["linstor"]["message"]
    assert await linstor.list_resource_definitions() == []


@pytest.fixture
def dead_linstor_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service pointed at a port where nothing listens, with retries on."""
    with serve_without_linstor(tmp_path_factory.mktemp("dead"), retries=3) as url:
        yield url


async def test_linstor_unreachable_is_503_and_not_ready(dead_linstor_service: str) -> None:
    async with httpx.AsyncClient(base_url=dead_linstor_service) as api:
        started = time.monotonic()
        response = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
        assert time.monotonic() - started < 3 * 0.5  # the retries' backoff stops at the deadline
        body = assert_problem(response, 503, "linstor_unavailable")
        assert response.headers["retry-after"] == "1"  # the read deadline, in whole seconds
        assert (
            "unreachable" in body["linstor"]["message"]
            or "no LINSTOR controller" in body["linstor"]["message"]
        )
        ready = await api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["linstor"].startswith("unavailable")


async def test_hung_linstor_is_504_after_the_read_timeout_inside_the_deadline(
    emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = create_app(
        service_settings(tmp_path_factory.mktemp("hung"), cache_url="none", linstor_read_timeout=0.3),
        linstor=ConnectionConfig(urls=(emulator.url,)),
    )
    emulator.state.add_fault(action="hang", method="GET", path=r"^/v1/resource-definitions$", seconds=5)
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as api:
            started = time.monotonic()
            response = await api.get(f"/v1/pools/{POOL}/volumes/container/c1")
            assert time.monotonic() - started < 3 * 0.3  # the read timeout, shorter than the deadline
            assert_problem(response, 504, "linstor_timeout")
            assert response.headers["retry-after"] == "5"  # the default read deadline
    emulator.state.clear_faults()


async def test_linstor_refusing_our_credentials_is_502_access_denied(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    # a controller with token auth on answers 401 FAIL_ACC_DENIED_COMMAND (linstor-rest-api.md §7.1)
    denied = [{"ret_code": -4611686018427387492, "message": "Unauthorized: token invalid or not provided"}]
    emulator.state.add_fault(
        action="error", method="GET", path=r"^/v1/resource-groups/", status=401, body=denied
    )
    response = await api.get(f"/v1/pools/{POOL}/volumes")
    body = assert_problem(response, 502, "linstor_access_denied")
    assert body["linstor"]["status"] == 401
    emulator.state.clear_faults()


async def test_an_emulated_401_with_the_default_body_is_502_access_denied_not_503(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    # the emulator's 401 fault answers FAIL_UNKNOWN_ERROR by default: the HTTP status decides, not the code
    emulator.state.add_fault(action="error", method="GET", path=r"^/v1/resource-groups/", status=401)
    response = await api.get(f"/v1/pools/{POOL}/volumes")
    assert_problem(response, 502, "linstor_access_denied")
    emulator.state.clear_faults()
