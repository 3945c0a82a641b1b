"""The /_emulator controls: off unless enabled; save and load confined to the state directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.emulator import EmulatorState, create_emulator_app


async def test_controls_are_off_by_default() -> None:
    state = EmulatorState()
    app = create_emulator_app(state=state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as client:
        for method, path in [
            ("POST", "/_emulator/faults"),
            ("POST", "/_emulator/reset"),
            ("GET", "/_emulator/faults"),
        ]:
            response = await client.request(method, path, json={"action": "error"})
            assert response.status_code == 404, (method, path)
    assert state.faults.rules() == []


@pytest.fixture
async def confined(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An emulator with its controls on, save/load inside tmp_path/state."""
    (tmp_path / "state").mkdir()
    app = create_emulator_app(controls=True, state_dir=tmp_path / "state")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as client:
        yield client


async def test_controls_answer_when_enabled(confined: httpx.AsyncClient) -> None:
    assert (await confined.get("/_emulator/faults")).status_code == 200


async def test_save_and_load_inside_the_state_directory(confined: httpx.AsyncClient, tmp_path: Path) -> None:
    assert (await confined.post("/_emulator/save", json={"path": "one.json"})).status_code == 200
    assert (tmp_path / "state" / "one.json").is_file()
    absolute = str(tmp_path / "state" / "two.json")
    assert (await confined.post("/_emulator/save", json={"path": absolute})).status_code == 200
    assert (await confined.post("/_emulator/load", json={"path": "one.json"})).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [("../escaped.json", 400), ("sub/../../escaped.json", 400), ("/tmp/escaped.json", 403), ("", 400)],
)
async def test_save_outside_the_state_directory_is_refused(
    confined: httpx.AsyncClient, tmp_path: Path, path: str, status: int
) -> None:
    for action in ("save", "load"):
        response = await confined.post(f"/_emulator/{action}", json={"path": path})
        assert response.status_code == status, response.text
    assert not (tmp_path / "escaped.json").exists()


async def test_a_symbolic_link_does_not_lead_out(confined: httpx.AsyncClient, tmp_path: Path) -> None:
    (tmp_path / "state" / "out").symlink_to(tmp_path)
    response = await confined.post("/_emulator/save", json={"path": "out/escaped.json"})
    assert response.status_code == 403
    assert not (tmp_path / "escaped.json").exists()


async def test_save_without_a_state_directory_is_refused(tmp_path: Path) -> None:
    app = create_emulator_app(controls=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://emu") as client:
        response = await client.post("/_emulator/save", json={"path": str(tmp_path / "x.json")})
    assert response.status_code == 403
    assert not (tmp_path / "x.json").exists()
