"""Nothing duplicated: a timed-out create that LINSTOR completes anyway is adopted by the retry, never
doubled (issue 10; app/claims.py, app/markers.py)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.claims import claim_name
from app.identity import VolumeType
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.main import create_app
from app.markers import OWN_NAME, PENDING, STARTED
from app.specs import make_key
from tests.api.conftest import service_settings
from tests.conftest import Emulator
from tests.support.api import POOL, assert_problem
from tests.support.server import serve

C1 = {"name": "c1", "type": "container", "size": "1GiB"}


async def identity_rds(linstor: LinstorClient) -> list[str]:
    """The RDs that carry c1's identity."""
    rds = await linstor.list_resource_definitions(props=["Aux/Incus/name=incus-volume-c1"])
    return [rd.name for rd in rds]


async def test_a_timed_out_create_is_adopted_by_its_retry_not_doubled(
    linstor: LinstorClient, emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The spawn outlives the service's timeout and completes in LINSTOR; the retry within the claim's
    lifetime is told to wait, the retry after it gets the same volume, and one RD carries the identity."""
    settings = service_settings(
        tmp_path_factory.mktemp("slow"), cache_url="none", linstor_write_timeout=0.3, claim_timeout=1.5
    )
    app = create_app(settings, linstor=ConnectionConfig(urls=(emulator.url,)))
    emulator.state.add_fault(action="latency", method="POST", path=r"/spawn$", seconds=0.8, times=1)
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            first = await api.post(f"/v1/pools/{POOL}/volumes", json=C1)
            assert_problem(first, 504, "linstor_timeout")
            early = await api.post(f"/v1/pools/{POOL}/volumes", json=C1)
            assert_problem(early, 409, "operation_in_progress")
            made = await _one_identity_rd(linstor, within=10.0)  # the spawn has completed
            await _claim_expired(linstor, 1.5)
            assert PENDING in (await linstor.get_resource_definition(made)).props
            retry = await api.post(f"/v1/pools/{POOL}/volumes", json=C1)
            assert retry.status_code == 201, retry.text
            assert retry.json()["linstor_name"] == made
            assert await identity_rds(linstor) == [made]
            props = (await linstor.get_resource_definition(made)).props
            assert (PENDING in props, props[OWN_NAME]) == (False, made)
            again = await api.post(f"/v1/pools/{POOL}/volumes", json=C1)
            assert_problem(again, 409, "volume_exists")  # a finished volume is never adopted


async def test_a_timed_out_create_retried_with_its_key_ends_with_one_rd(
    linstor: LinstorClient, emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same with an Idempotency-Key (issue 10's proof, with a key): neither the 504 nor the 409 that
    asks to wait is kept, so the retry after the claim's lifetime runs and adopts the RD; later retries
    are replayed that 201 instead of being told 409 volume_exists."""
    settings = service_settings(
        tmp_path_factory.mktemp("slow-keyed"), linstor_write_timeout=0.3, claim_timeout=1.5
    )
    app = create_app(settings, linstor=ConnectionConfig(urls=(emulator.url,)))
    emulator.state.add_fault(action="latency", method="POST", path=r"/spawn$", seconds=0.8, times=1)
    key = {"Idempotency-Key": '"c1-create-2e8f4a"'}
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            first = await api.post(f"/v1/pools/{POOL}/volumes", json=C1, headers=key)
            assert_problem(first, 504, "linstor_timeout")
            early = await api.post(f"/v1/pools/{POOL}/volumes", json=C1, headers=key)
            assert_problem(early, 409, "operation_in_progress")
            # the spawn completes (a loaded machine may take longer than its 0.8 s), then the first
            # attempt's claim expires (claim_timeout 1.5 s after it was taken)
            made = await _one_identity_rd(linstor, within=10.0)
            await _claim_expired(linstor, 1.5)
            retry = await api.post(f"/v1/pools/{POOL}/volumes", json=C1, headers=key)
            assert retry.status_code == 201, retry.text
            assert "idempotent-replayed" not in retry.headers  # it ran: the failures were not kept
            assert retry.json()["linstor_name"] == made
            again = await api.post(f"/v1/pools/{POOL}/volumes", json=C1, headers=key)
            assert (again.status_code, again.headers["idempotent-replayed"]) == (201, "true")
            assert again.json() == retry.json()
            assert await identity_rds(linstor) == [made]
            assert PENDING not in (await linstor.get_resource_definition(made)).props


async def _one_identity_rd(linstor: LinstorClient, within: float) -> str:
    """The one RD holding c1's identity, once LINSTOR has it (polled for at most `within` seconds)."""
    deadline = time.monotonic() + within
    while not (found := await identity_rds(linstor)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (made,) = found
    return made


async def _claim_expired(linstor: LinstorClient, claim_timeout: float) -> None:
    """Wait until c1's claim is older than `claim_timeout`, by the start it records (app/claims.py), not
    by the test's clock: a loaded machine may take the claim a while after the request was sent."""
    rd = await linstor.get_resource_definition(
        claim_name(make_key(POOL, "default", VolumeType.CONTAINER, "c1"))
    )
    await asyncio.sleep(max(0.0, float(rd.props[STARTED]) + claim_timeout + 0.1 - time.time()))
