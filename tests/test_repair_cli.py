"""`linstor-names repair [--pool P] [--apply]`: one pass from the command line, its report printed."""

from __future__ import annotations

import asyncio
import time

import pytest

from app import markers
from app.cli import main
from app.linstor import LinstorClient
from app.linstor.config import ConnectionConfig
from app.linstor.models import ResourceGroupCreate
from tests.conftest import Emulator

STUCK = "incus-volume-0123456789abcdef0123456789abcdef"
BARE = "incus-volume-fedcba9876543210fedcba9876543210"


def arrange(url: str) -> None:
    """Two pools; in pool1 an identity-less RD left by a create of ours an hour ago, and one without marks."""

    async def run() -> None:
        async with LinstorClient(ConnectionConfig(urls=(url,))) as client:
            for pool in ("pool1", "pool2"):
                await client.create_resource_group(ResourceGroupCreate(name=pool))
            marks = markers.pending(STUCK, "create") | {markers.STARTED: f"{time.time() - 3600:.3f}"}
            await client.create_resource_definition(STUCK, resource_group="pool1", props=marks)
            await client.create_resource_definition(BARE, resource_group="pool1")

    asyncio.run(run())


def rd_names(url: str) -> set[str]:
    async def run() -> set[str]:
        async with LinstorClient(ConnectionConfig(urls=(url,))) as client:
            return {rd.name for rd in await client.list_resource_definitions()}

    return asyncio.run(run())


def test_a_dry_run_then_a_repair_of_every_pool(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LS_CONTROLLERS", emulator.url)
    arrange(emulator.url)

    main(["repair", "--pool", "pool1"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "pool pool1: 2 found (dry run: pass --apply to act; grace 600s)"
    assert out[1].startswith(f"  no_identity rd={STUCK} snapshot=- action=delete_rd outcome=planned reason=")
    assert out[2].startswith(f"  no_identity rd={BARE} snapshot=- action=none outcome=reported reason=")
    assert len(out) == 3
    assert {STUCK, BARE} <= rd_names(emulator.url)

    main(["repair", "--apply"])
    out = capsys.readouterr().out.splitlines()
    assert "pool pool1: 2 found (applied; grace 600s)" in out
    assert "pool pool2: 0 found (applied; grace 600s)" in out
    assert any(
        line.startswith(f"  no_identity rd={STUCK} snapshot=- action=delete_rd outcome=done") for line in out
    )
    names = rd_names(emulator.url)
    assert STUCK not in names
    assert BARE in names


def test_an_unknown_pool_is_one_line(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_CONTROLLERS", emulator.url)
    with pytest.raises(SystemExit) as stopped:
        main(["repair", "--pool", "nope"])
    assert stopped.value.code == "linstor-names repair: Pool (resource group) 'nope' not found"
