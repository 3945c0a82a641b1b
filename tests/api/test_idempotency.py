"""Idempotency-Key (issue 10, item 4): a retry replays the first answer and never acts twice; another request
with the key is 422, a retry while the first runs is 409; keys live in the cache, shared by replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cache.queries import StoredAnswer
from app.cache.store import CacheStore
from app.linstor import LinstorClient
from app.services import Services
from tests.api.conftest import Service, ServiceFactory
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem, create

VOLUMES = f"/v1/pools/{POOL}/volumes"
C1: dict[str, Any] = {"name": "c1", "type": "container", "size": "1GiB"}
SPAWN = r"/spawn$"


def keyed(key: str | None = None) -> dict[str, str]:
    """An Idempotency-Key header, as the draft writes it (an sf-string): a fresh key unless one is given."""
    return {"Idempotency-Key": f'"{key or uuid.uuid4()}"'}


async def identity_rds(linstor: LinstorClient, name: str = "c1") -> list[str]:
    """The RDs that carry a container's identity, looked up as Incus does (props filter, no cache)."""
    rds = await linstor.list_resource_definitions(props=[f"Aux/Incus/name=incus-volume-{name}"])
    return sorted(rd.name for rd in rds)


def assert_replay(replay: httpx.Response, first: httpx.Response) -> None:
    """The first answer again, marked as a replay."""
    assert replay.status_code == first.status_code, replay.text
    assert replay.content == first.content
    assert replay.headers.get("content-type") == first.headers.get("content-type")
    assert replay.headers.get("location") == first.headers.get("location")
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


async def test_a_create_retried_with_its_key_is_replayed_not_run(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    headers = keyed()
    first = await api.post(VOLUMES, json=C1, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["location"].endswith("/volumes/container/c1?project=default")
    retry = await api.post(VOLUMES, json=C1, headers=headers)
    assert_replay(retry, first)
    assert await identity_rds(linstor) == [first.json()["linstor_name"]]
    # without a key, the same request runs again and the domain refuses it
    assert_problem(await api.post(VOLUMES, json=C1), 409, "volume_exists")


async def test_a_key_is_the_same_quoted_or_bare(api: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    first = await api.post(VOLUMES, json=C1, headers={"Idempotency-Key": f'"{key}"'})
    assert first.status_code == 201, first.text
    assert_replay(await api.post(VOLUMES, json=C1, headers={"Idempotency-Key": key}), first)


async def test_a_key_sent_with_another_request_is_422(api: httpx.AsyncClient, linstor: LinstorClient) -> None:
    headers = keyed()
    first = await api.post(VOLUMES, json=C1, headers=headers)
    assert first.status_code == 201, first.text
    other_body = await api.post(VOLUMES, json={**C1, "name": "c2"}, headers=headers)
    assert_problem(other_body, 422, "idempotency_key_reused")
    other_query = await api.post(f"{VOLUMES}?x=1", json=C1, headers=headers)
    assert_problem(other_query, 422, "idempotency_key_reused")
    other_method = await api.patch(f"{VOLUMES}/container/c1", json={"name": "c2"}, headers=headers)
    assert_problem(other_method, 422, "idempotency_key_reused")
    assert await identity_rds(linstor, "c2") == []  # none of them ran
    assert_replay(await api.post(VOLUMES, json=C1, headers=headers), first)  # the key still replays


async def test_a_retry_while_the_first_runs_is_409_then_replayed(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    emulator.state.add_fault(action="latency", method="POST", path=SPAWN, seconds=1.0, times=1)
    headers = keyed()
    first = asyncio.create_task(api.post(VOLUMES, json=C1, headers=headers))
    await asyncio.sleep(0.3)  # the first holds its key and waits in the spawn
    running = await api.post(VOLUMES, json=C1, headers=headers)
    assert not first.done()  # the window was hit: the second came while the first ran
    assert_problem(running, 409, "idempotency_key_in_flight")
    assert running.headers["retry-after"] == "1"
    done = await first
    assert done.status_code == 201, done.text
    assert_replay(await api.post(VOLUMES, json=C1, headers=headers), done)
    assert await identity_rds(linstor) == [done.json()["linstor_name"]]


async def test_a_503_is_not_kept_and_a_retry_with_the_key_runs(
    api: httpx.AsyncClient, linstor: LinstorClient, emulator: Emulator
) -> None:
    """LINSTOR unavailable is worth retrying: the key is released, not bound to the failure."""
    emulator.state.add_fault(action="error", method="POST", path=SPAWN, times=1)
    headers = keyed()
    assert_problem(await api.post(VOLUMES, json=C1, headers=headers), 503, "linstor_unavailable")
    retry = await api.post(VOLUMES, json=C1, headers=headers)
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers  # it ran
    assert await identity_rds(linstor) == [retry.json()["linstor_name"]]
    assert_replay(await api.post(VOLUMES, json=C1, headers=headers), retry)


async def test_a_4xx_is_final_and_replayed(api: httpx.AsyncClient) -> None:
    """A refusal is the request's answer: replayed even after what refused it is gone."""
    await create(api, **C1)
    headers = keyed()
    refused = await api.post(VOLUMES, json=C1, headers=headers)
    assert_problem(refused, 409, "volume_exists")
    assert (await api.delete(f"{VOLUMES}/container/c1")).status_code == 204
    replay = await api.post(VOLUMES, json=C1, headers=headers)
    assert_problem(replay, 409, "volume_exists")
    assert_replay(replay, refused)


async def test_a_rename_retried_with_its_key_is_replayed(api: httpx.AsyncClient) -> None:
    vol = await create(api, **C1)
    headers = keyed()
    first = await api.patch(f"{VOLUMES}/container/c1", json={"name": "c2"}, headers=headers)
    assert first.status_code == 200, first.text
    retry = await api.patch(f"{VOLUMES}/container/c1", json={"name": "c2"}, headers=headers)
    assert_replay(retry, first)  # without the key: 404, c1 is gone
    assert retry.json()["linstor_name"] == vol["linstor_name"]
    assert (await api.get(f"{VOLUMES}/container/c2")).json()["linstor_name"] == vol["linstor_name"]


async def test_a_delete_retried_with_its_key_is_replayed(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    await create(api, **C1)
    headers = keyed()
    first = await api.delete(f"{VOLUMES}/container/c1", headers=headers)
    assert first.status_code == 204, first.text
    await create(api, **C1)  # a new c1: a delete that ran again would remove it
    retry = await api.delete(f"{VOLUMES}/container/c1", headers=headers)
    assert_replay(retry, first)
    assert len(await identity_rds(linstor)) == 1


@pytest.mark.parametrize(
    "value",
    ['""', "", '"' + "k" * 256 + '"', '"é"', '"unterminated', "two words", '"a\\b"'],
)
async def test_a_malformed_key_is_422(api: httpx.AsyncClient, linstor: LinstorClient, value: str) -> None:
    response = await api.post(VOLUMES, json=C1, headers={b"Idempotency-Key": value.encode("utf-8")})
    assert_problem(response, 422, "invalid_idempotency_key")
    assert await identity_rds(linstor) == []


async def test_two_key_fields_are_422(api: httpx.AsyncClient) -> None:
    response = await api.post(VOLUMES, json=C1, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    assert_problem(response, 422, "invalid_idempotency_key")


async def test_the_body_limit_comes_first_and_a_refused_body_takes_no_key(
    api: httpx.AsyncClient, service_server: Service
) -> None:
    """A chunked body past the limit is 413 before it is fingerprinted: the key stays free."""
    limit = service_server.app.state.services.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    headers = {**keyed(), "Content-Type": "application/json"}
    assert_problem(await api.post(VOLUMES, content=chunks(), headers=headers), 413, "body_too_large")
    created = await api.post(VOLUMES, json=C1, headers=headers)
    assert created.status_code == 201, created.text


async def test_reads_ignore_the_header(api: httpx.AsyncClient) -> None:
    await create(api, **C1)
    response = await api.get(f"{VOLUMES}/container/c1", headers={"Idempotency-Key": ""})
    assert response.status_code == 200
    assert "idempotent-replayed" not in response.headers


async def test_without_a_cache_a_key_is_refused_not_ignored(
    service: ServiceFactory, linstor: LinstorClient
) -> None:
    """The bug report: an ignored key gives 201 then 409. Without a cache there is nowhere to keep one."""
    async with service(cache_url="none") as api:
        refused = await api.post(VOLUMES, json=C1, headers=keyed())
        assert_problem(refused, 422, "idempotency_unavailable")
        assert await identity_rds(linstor) == []
        assert (await api.post(VOLUMES, json=C1)).status_code == 201  # without the key, it runs


async def test_a_failing_cache_refuses_keyed_requests_with_503(
    api: httpx.AsyncClient, service_server: Service, linstor: LinstorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never run unprotected a request whose client asked for protection."""
    services: Services = service_server.app.state.services

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(services.cache, "claim_idempotency_key", broken)
    response = await api.post(VOLUMES, json=C1, headers=keyed())
    assert_problem(response, 503, "idempotency_store_unavailable")
    assert response.headers["retry-after"] == "1"
    assert await identity_rds(linstor) == []


async def test_an_answer_is_forgotten_after_the_expiry(service: ServiceFactory) -> None:
    async with service(idempotency_expiry=0.5) as api:
        headers = keyed()
        first = await api.post(VOLUMES, json=C1, headers=headers)
        assert first.status_code == 201, first.text
        assert_replay(await api.post(VOLUMES, json=C1, headers=headers), first)
        await asyncio.sleep(0.6)
        again = await api.post(VOLUMES, json=C1, headers=headers)  # a new request: it runs
        assert_problem(again, 409, "volume_exists")
        assert "idempotent-replayed" not in again.headers


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheStore]:
    """A migrated cache of its own on each backend."""
    url = (
        f"sqlite:///{tmp_path / 'keys.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    cache = CacheStore.open(url, pool_size=2)
    await asyncio.to_thread(cache.upgrade)
    yield cache
    await cache.close()


async def test_a_key_is_held_once_answered_by_its_holder_and_then_replayed(store: CacheStore) -> None:
    first = await store.claim_idempotency_key("k", "f", lease=60)
    second = await store.claim_idempotency_key("k", "f", lease=60)
    assert (first.held, second.held, second.owner, second.answer) == (True, False, first.owner, None)
    answer = StoredAnswer(201, (("content-type", "application/json"),), b'{"a":1}')
    assert not await store.answer_idempotency_key("k", "someone else", answer, keep=60)
    await store.release_idempotency_key("k", "someone else")  # only the holder releases
    assert await store.answer_idempotency_key("k", first.owner, answer, keep=60)
    await store.release_idempotency_key("k", first.owner)  # an answered key stays
    assert (await store.claim_idempotency_key("k", "f", lease=60)).answer == answer


async def test_a_released_key_runs_again(store: CacheStore) -> None:
    first = await store.claim_idempotency_key("k", "f", lease=60)
    await store.release_idempotency_key("k", first.owner)
    retry = await store.claim_idempotency_key("k", "f", lease=60)
    assert retry.held
    assert retry.owner != first.owner


async def test_a_silent_holder_is_taken_over_after_its_lease_and_cannot_answer(store: CacheStore) -> None:
    crashed = await store.claim_idempotency_key("k", "f", lease=0.0)
    retry = await store.claim_idempotency_key("k", "f", lease=60)
    assert retry.held
    late = StoredAnswer(500, (), b"")
    assert not await store.answer_idempotency_key("k", crashed.owner, late, keep=60)


async def test_expired_keys_are_purged(store: CacheStore) -> None:
    for key in ("a", "b"):
        await store.claim_idempotency_key(key, "f", lease=0.0)
    await store.claim_idempotency_key("c", "f", lease=60)
    assert await store.purge_idempotency_keys(limit=1) == 1  # bounded
    assert await store.purge_idempotency_keys() == 1
    assert await store.purge_idempotency_keys() == 0
    assert not (await store.claim_idempotency_key("c", "f", lease=60)).held


@pytest.mark.postgres
async def test_two_replicas_sharing_a_postgresql_cache_run_a_key_once(
    service: ServiceFactory, linstor: LinstorClient, emulator: Emulator, pg_url: str
) -> None:
    """The same key through two replicas at once: one runs, the other is told 409, then replayed."""
    async with service(cache_url=pg_url) as a, service(cache_url=pg_url) as b:
        emulator.state.add_fault(action="latency", method="POST", path=SPAWN, seconds=0.8, times=2)
        headers = keyed()
        answers = await asyncio.gather(
            a.post(VOLUMES, json=C1, headers=headers), b.post(VOLUMES, json=C1, headers=headers)
        )
        ran = [r for r in answers if r.status_code == 201]
        assert len(ran) == 1, [(r.status_code, r.json()["code"]) for r in answers]
        (told,) = [r for r in answers if r.status_code != 201]
        assert_problem(told, 409, "idempotency_key_in_flight")
        for replica in (a, b):
            assert_replay(await replica.post(VOLUMES, json=C1, headers=headers), ran[0])
        assert await identity_rds(linstor) == [ran[0].json()["linstor_name"]]


async def test_a_replay_answers_what_was_sent_not_a_rerun(
    api: httpx.AsyncClient, linstor: LinstorClient
) -> None:
    """A copy replayed: the same RD name, though a second run would have made a new one."""
    await create(api, **C1)
    headers = keyed()
    copy: dict[str, Any] = {"name": "c2", "type": "container", "source": {"type": "container", "name": "c1"}}
    first = await api.post(VOLUMES, json=copy, headers=headers)
    assert first.status_code == 201, first.text
    assert_replay(await api.post(VOLUMES, json=copy, headers=headers), first)
    assert await identity_rds(linstor, "c2") == [first.json()["linstor_name"]]
