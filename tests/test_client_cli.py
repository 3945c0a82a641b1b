"""The CLI client (`linstor-names volume|snapshot|resolve|cache status`) against a running service."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.cli import main
from tests.api import conftest as api_fixtures
from tests.api.conftest import Service, serve_without_linstor
from tests.support.api import POOL
from tests.support.server import free_port

# the fixtures of tests/api/, which pytest does not offer outside that directory
service_server, linstor, api = api_fixtures.service_server, api_fixtures.linstor, api_fixtures.api


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    """Run one client command in-process; its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--url", url])
    captured = capsys.readouterr()
    code = stopped.value.code
    assert isinstance(code, int)
    return code, captured.out, captured.err


@pytest.fixture
def url(api: httpx.AsyncClient, service_server: Service) -> str:
    """The service's URL, its cache emptied and the emulator reset with the test pool (the `api` fixture)."""
    return service_server.url


@pytest.fixture(scope="module")
def dead_linstor_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service pointed at a port where nothing listens."""
    with serve_without_linstor(tmp_path_factory.mktemp("dead"), retries=0) as service_url:
        yield service_url


async def test_a_volume_s_life_through_the_client(capsys: pytest.CaptureFixture[str], url: str) -> None:
    pool = ["--pool", POOL]
    code, out, err = run(capsys, url, "volume", "create", *pool, "custom", "data1", "--size", "1GiB")
    assert (code, err) == (0, "")
    assert "data1" in out

    code, out, _ = run(capsys, url, "volume", "show", *pool, "custom", "data1")
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines() if len(line.split(None, 1)) == 2)
    assert fields["name"] == "data1"
    assert fields["size"] == "1.0GiB"
    linstor_name = fields["linstor_name"]

    code, out, _ = run(capsys, url, "volume", "list", *pool)
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "TYPE", "PROJECT", "SIZE", "LINSTOR", "NAME"]
    assert [row.split() for row in rows] == [["data1", "custom", "default", "1.0GiB", linstor_name]]
    assert header.index("TYPE") == rows[0].index("custom")  # the columns are aligned

    code, out, _ = run(capsys, url, "volume", "list", *pool, "--output", "json")
    assert code == 0
    assert [v["name"] for v in json.loads(out)["volumes"]] == ["data1"]

    code, out, _ = run(capsys, url, "volume", "rename", *pool, "custom", "data1", "data2")
    assert code == 0
    assert "data2" in out

    code, _, _ = run(capsys, url, "snapshot", "create", *pool, "custom", "data2", "snap0")
    assert code == 0
    code, out, _ = run(capsys, url, "snapshot", "list", *pool, "custom", "data2", "-o", "json")
    assert code == 0
    assert [s["name"] for s in json.loads(out)["snapshots"]] == ["snap0"]
    code, out, _ = run(capsys, url, "snapshot", "list", *pool, "custom", "data2")
    assert out.splitlines()[1].split()[0] == "snap0"

    code, out, _ = run(capsys, url, "resolve", linstor_name, "-o", "json")
    assert code == 0
    resolved = json.loads(out)
    assert (resolved["kind"], resolved["volume"]["name"]) == ("resource-definition", "data2")

    code, out, _ = run(capsys, url, "volume", "copy", *pool, "custom", "data2", "data3", "-o", "json")
    assert code == 0
    assert json.loads(out)["name"] == "data3"

    code, out, err = run(capsys, url, "volume", "delete", *pool, "custom", "data3")
    assert (code, out, err) == (0, "", "")
    code, _, err = run(capsys, url, "volume", "show", *pool, "custom", "data3")
    assert code == 2


async def test_exit_codes(capsys: pytest.CaptureFixture[str], url: str) -> None:
    pool = ["--pool", POOL]
    code, out, err = run(capsys, url, "volume", "show", *pool, "custom", "missing")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert err.split(": ")[0] == "volume_not_found"

    assert run(capsys, url, "volume", "create", *pool, "custom", "twice", "--size", "1GiB")[0] == 0
    code, _, err = run(capsys, url, "volume", "create", *pool, "custom", "twice", "--size", "1GiB")
    assert code == 3
    assert len(err.splitlines()) == 1
    assert err.split(": ")[0] == "volume_exists"

    # refused by the service (422): a usage error, with the problem's detail
    code, _, err = run(capsys, url, "volume", "create", *pool, "custom", "bad", "--size", "-5")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.split(": ")[0] == "invalid_size"

    # refused by argparse: a usage error too, not argparse's 2 (which means "not found" here)
    assert run(capsys, url, "volume", "show", *pool, "no-such-type", "x")[0] == 1
    assert run(capsys, url, "volume", "list", *pool, "--bogus")[0] == 1
    assert run(capsys, url, "volume", "list")[0] == 1


async def test_cache_status_over_http(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, url, "cache", "status", "-o", "json")
    assert code == 0
    assert json.loads(out)["enabled"] is True
    code, out, _ = run(capsys, url, "cache", "rebuild")
    assert code == 0
    assert out.startswith("volumes")


def test_an_unreachable_linstor_exits_4(
    capsys: pytest.CaptureFixture[str], dead_linstor_service: str
) -> None:
    code, out, err = run(capsys, dead_linstor_service, "volume", "list", "--pool", POOL)
    assert (code, out) == (4, "")
    assert err.startswith("linstor_unavailable: ")


def test_an_unreachable_service_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, f"http://127.0.0.1:{free_port()}", "resolve", "incus-volume-x")
    assert code == 4
    assert err.startswith("unreachable: ")
