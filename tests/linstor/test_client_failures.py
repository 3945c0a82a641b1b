"""Failure shapes the emulator cannot produce: unreachable controllers, timeouts, broken answers, retries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
import respx

from app.linstor import (
    LinstorApiError,
    LinstorClient,
    LinstorConflict,
    LinstorError,
    LinstorExists,
    LinstorInvalid,
    LinstorNotFound,
    LinstorProtocolError,
    LinstorServerError,
    LinstorTimeout,
    LinstorUnavailable,
)
from app.linstor.config import ConnectionConfig
from app.linstor.errors import LinstorAccessDenied
from app.linstor.models import CloneRequest
from app.linstor.transport import Deadlines, linstor_deadline, linstor_operation
from tests.support.ret_codes import (
    PARSE_ERROR,
    RAW_RD_NOT_FOUND,
    RD_CREATE_EXISTS,
    RD_CREATE_INVALID_NAME,
    RD_CREATE_INVALID_PROP,
    RD_CREATE_RG_MISSING,
    RD_CREATED,
    RD_DELETE_HAS_SNAPSHOTS,
    RD_DELETE_NOT_FOUND,
    RD_DELETED,
    RD_MODIFY_NOT_FOUND,
    SNAPSHOT_DELETE_NOT_FOUND,
    SNAPSHOT_NOT_CONNECTED,
    SPAWN_NO_RESOURCES,
    TOKEN_REJECTED,
    UNKNOWN_ERROR,
)

A = "http://ctrl-a:3370"
B = "http://ctrl-b:3370"
VERSION = {"version": "1.34.0", "git_hash": "x", "build_time": "now", "rest_api_version": "1.28.0"}


# ret_codes from linstor-rest-api.md §3.3
def rc(ret_code: int, message: str = "msg", **extra: Any) -> dict[str, Any]:
    """One ApiCallRc entry as LINSTOR writes it."""
    return {"ret_code": ret_code, "message": message, **extra}


@pytest.fixture
def router() -> respx.Router:
    """Routes for the fake controllers; an unrouted request fails the test."""
    return respx.Router(assert_all_called=False, assert_all_mocked=True)


@pytest.fixture
async def client(router: respx.Router) -> AsyncIterator[LinstorClient]:
    """A client of two controllers A and B, with quick retries."""
    config = ConnectionConfig(urls=(A, B))
    async with LinstorClient(
        config, retries=2, backoff=0.001, transport=httpx.MockTransport(router.async_handler)
    ) as c:
        yield c


# ---- failover ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_unreachable_first_controller_fails_over_and_moves_the_second_to_the_front(
    router: respx.Router, client: LinstorClient, failure: type[Exception]
) -> None:
    down = router.get(f"{A}/v1/controller/version").mock(side_effect=failure)
    up = router.get(f"{B}/v1/controller/version").mock(return_value=httpx.Response(200, json=VERSION))
    assert client.controller == A

    assert (await client.controller_version()).version == "1.34.0"
    assert client.controller == B
    assert (down.call_count, up.call_count) == (1, 1)

    # The next call goes straight to B.
    await client.controller_version()
    assert (down.call_count, up.call_count) == (1, 2)


async def test_failover_is_safe_for_post(router: respx.Router, client: LinstorClient) -> None:
    """A refused connection never reached a controller, so even a POST may go to the next one."""
    down = router.post(f"{A}/v1/resource-definitions").mock(side_effect=httpx.ConnectError)
    up = router.post(f"{B}/v1/resource-definitions").mock(
        return_value=httpx.Response(201, json=[rc(RD_CREATED)])
    )
    await client.create_resource_definition("vol1")
    assert (down.call_count, up.call_count) == (1, 1)


async def test_all_controllers_refused(router: respx.Router, client: LinstorClient) -> None:
    a = router.get(f"{A}/v1/controller/version").mock(side_effect=httpx.ConnectError)
    b = router.get(f"{B}/v1/controller/version").mock(side_effect=httpx.ConnectError)
    with pytest.raises(LinstorUnavailable, match="no LINSTOR controller reachable"):
        await client.controller_version()
    # Both controllers on each of the 1 + 2 attempts.
    assert (a.call_count, b.call_count) == (3, 3)
    assert client.controller == A


async def test_all_controllers_refused_post_is_not_retried(
    router: respx.Router, client: LinstorClient
) -> None:
    a = router.post(f"{A}/v1/resource-definitions").mock(side_effect=httpx.ConnectError)
    b = router.post(f"{B}/v1/resource-definitions").mock(side_effect=httpx.ConnectError)
    with pytest.raises(LinstorUnavailable):
        await client.create_resource_definition("vol1")
    assert (a.call_count, b.call_count) == (1, 1)


async def test_broken_connection_after_connecting_does_not_fail_over(
    router: respx.Router, client: LinstorClient
) -> None:
    """The request may have reached A: no failover; retried on A only because GET is idempotent."""
    a = router.get(f"{A}/v1/controller/version").mock(side_effect=httpx.RemoteProtocolError)
    b = router.get(f"{B}/v1/controller/version").mock(return_value=httpx.Response(200, json=VERSION))
    with pytest.raises(LinstorUnavailable) as info:
        await client.controller_version()
    assert info.value.controller == A
    assert (a.call_count, b.call_count) == (3, 0)


# ---- timeouts and retries ----------------------------------------------------------------------------


async def test_read_timeout_on_get_is_retried_then_raised(
    router: respx.Router, client: LinstorClient
) -> None:
    a = router.get(f"{A}/v1/resource-definitions").mock(side_effect=httpx.ReadTimeout)
    b = router.get(f"{B}/v1/resource-definitions").mock(return_value=httpx.Response(200, json=[]))
    with pytest.raises(LinstorTimeout) as info:
        await client.list_resource_definitions()
    assert info.value.controller == A
    assert (a.call_count, b.call_count) == (3, 0)


async def test_read_timeout_then_success(router: respx.Router, client: LinstorClient) -> None:
    route = router.get(f"{A}/v1/resource-definitions").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=[{"name": "vol1"}])]
    )
    assert [rd.name for rd in await client.list_resource_definitions()] == ["vol1"]
    assert route.call_count == 2


async def test_post_that_times_out_is_not_retried(router: respx.Router, client: LinstorClient) -> None:
    """The controller may have created the RD: repeating the POST could double it."""
    route = router.post(f"{A}/v1/resource-definitions").mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(LinstorTimeout):
        await client.create_resource_definition("vol1")
    assert route.call_count == 1


async def test_post_with_5xx_is_not_retried(router: respx.Router, client: LinstorClient) -> None:
    route = router.post(f"{A}/v1/resource-groups/rg1/spawn").mock(
        return_value=httpx.Response(502, text="Bad Gateway")
    )
    with pytest.raises(LinstorServerError):
        await client.spawn("rg1", "vol1", [1024])
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("PUT", lambda c: c.modify_resource_definition("vol1", override_props={"Aux/x": "1"})),
        ("DELETE", lambda c: c.delete_resource_definition("vol1")),
        ("GET", lambda c: c.get_resource_definition("vol1")),
    ],
)
async def test_idempotent_methods_are_retried_on_5xx(
    router: respx.Router, client: LinstorClient, method: str, call: Any
) -> None:
    ok: Any = [rc(RD_DELETED)] if method != "GET" else {"name": "vol1"}
    route = router.route(method=method, url=f"{A}/v1/resource-definitions/vol1").mock(
        side_effect=[
            httpx.Response(503, text="busy"),
            httpx.Response(503, text="busy"),
            httpx.Response(200, json=ok),
        ]
    )
    await call(client)
    assert route.call_count == 3


async def test_retry_count_is_bounded_and_backoff_doubles(
    router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    route = router.get(f"{A}/v1/controller/version").mock(return_value=httpx.Response(503, text="busy"))
    transport = httpx.MockTransport(router.async_handler)
    caplog.set_level(logging.WARNING, logger="app.linstor")
    async with LinstorClient(
        ConnectionConfig(urls=(A,)), retries=3, backoff=0.01, transport=transport
    ) as client:
        with pytest.raises(LinstorServerError) as info:
            await client.controller_version()
    assert info.value.status == 503
    assert route.call_count == 4
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry")]
    assert [m.split(":")[0] for m in retries] == [
        "retry 1/3 of GET /v1/controller/version in 0.01s",
        "retry 2/3 of GET /v1/controller/version in 0.02s",
        "retry 3/3 of GET /v1/controller/version in 0.04s",
    ]


async def test_no_retries(router: respx.Router) -> None:
    route = router.get(f"{A}/v1/controller/version").mock(side_effect=httpx.ReadTimeout)
    transport = httpx.MockTransport(router.async_handler)
    async with LinstorClient(ConnectionConfig(urls=(A,)), retries=0, transport=transport) as client:
        with pytest.raises(LinstorTimeout):
            await client.controller_version()
    assert route.call_count == 1


async def test_api_errors_are_not_retried(router: respx.Router, client: LinstorClient) -> None:
    route = router.get(f"{A}/v1/resource-definitions/nope").mock(
        return_value=httpx.Response(404, json=[rc(RAW_RD_NOT_FOUND, "Resource definition 'nope' not found.")])
    )
    with pytest.raises(LinstorNotFound):
        await client.get_resource_definition("nope")
    assert route.call_count == 1


# ---- deadlines ---------------------------------------------------------------------------------------

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def deadline_client(handler: Handler, *, read: float = 0.3, write: float = 5.0, **kw: Any) -> LinstorClient:
    """A client of controllers A and B with short deadlines, answering through `handler`."""
    kw.setdefault("retries", 10)
    kw.setdefault("backoff", 0.001)
    return LinstorClient(
        ConnectionConfig(urls=(A, B)),
        deadlines=Deadlines(read=read, write=write),
        transport=httpx.MockTransport(handler),
        **kw,
    )


async def test_retries_of_timed_out_reads_share_the_deadline() -> None:
    """Each attempt times out after 0.1 s: 11 attempts would take 1.1 s; the 0.3 s deadline stops them."""
    attempts: list[float] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        attempts.append(time.monotonic())
        await asyncio.sleep(0.1)
        raise httpx.ReadTimeout("slow", request=request)

    async with deadline_client(slow) as client:
        started = time.monotonic()
        with pytest.raises(LinstorTimeout) as info:
            await client.list_resource_definitions()
        elapsed = time.monotonic() - started
    assert 2 <= len(attempts) <= 3
    assert elapsed < 0.3 + 0.1
    assert all(t < started + 0.3 for t in attempts)  # no retry started past the deadline
    assert info.value.retry_after == 0.3


async def test_a_hung_attempt_is_cut_at_the_deadline() -> None:
    """A controller that never answers (httpx's read timeout of 30 s aside) costs one deadline, once."""
    calls = 0

    async def hung(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return httpx.Response(200, json=VERSION)

    async with deadline_client(hung) as client:
        started = time.monotonic()
        with pytest.raises(LinstorTimeout, match="did not answer in time"):
            await client.controller_version()
        assert time.monotonic() - started < 0.3 + 0.1
    assert calls == 1


async def test_each_attempt_gets_at_most_the_time_left() -> None:
    """Reading: min(read timeout, time left); connecting: its share of it among the controllers to try."""
    seen: list[dict[str, float]] = []

    async def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=VERSION)

    async with deadline_client(record, read=2.0) as client:
        await client.controller_version()
    timeout = seen[0]
    assert 1.9 < timeout["read"] <= 2.0  # not the 30 s read timeout
    assert 0.9 < timeout["connect"] <= 1.0  # half of it: B must still get its turn
    assert timeout["pool"] == timeout["connect"]


async def test_a_black_holed_first_controller_leaves_time_for_the_second() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "ctrl-a":
            await asyncio.sleep(request.extensions["timeout"]["connect"])
            raise httpx.ConnectTimeout("no SYN-ACK", request=request)
        return httpx.Response(200, json=VERSION)

    async with deadline_client(answer, read=0.4) as client:
        assert (await client.controller_version()).version == "1.34.0"
        assert client.controller == B


async def test_the_calls_of_one_operation_share_its_deadline() -> None:
    """Once its read deadline is spent, an operation's next read fails at once, without a request."""
    calls = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return httpx.Response(200, json=VERSION)

    async with deadline_client(answer) as client:
        with linstor_operation():
            await client.controller_version()
            await asyncio.sleep(0.15)
            with pytest.raises(LinstorTimeout, match="no time left"):
                await client.controller_version()
        assert calls == 1
        await client.controller_version()  # outside the operation, a call is an operation of its own
    assert calls == 2


async def test_an_operation_that_wrote_has_the_write_deadline_and_each_read_the_read_deadline() -> None:
    """A create's reads after its spawn are not cut by the read deadline counted from its start; but none
    of them waits longer than the read deadline."""

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            await asyncio.sleep(0.4)  # longer than the whole read deadline
            return httpx.Response(201, json=[rc(RD_CREATED)])
        if request.url.path.endswith("/hung"):
            await asyncio.sleep(30)
        return httpx.Response(200, json=[] if request.url.path.endswith("s") else {"name": "vol1"})

    async with deadline_client(answer) as client:
        with linstor_operation():
            await client.list_resource_definitions()
            await client.create_resource_definition("vol1")
            assert await client.list_resource_definitions() == []
            started = time.monotonic()
            with pytest.raises(LinstorTimeout):
                await client.get_resource_definition("hung")
            assert time.monotonic() - started < 0.3 + 0.1  # not the 5 s write deadline


async def test_an_explicit_deadline_bounds_every_call_inside(router: respx.Router) -> None:
    """/readyz's own deadline: shorter than the read deadline, retries of a refused connection included."""
    route = router.get(f"{A}/v1/controller/version").mock(side_effect=httpx.ConnectError)
    router.get(f"{B}/v1/controller/version").mock(side_effect=httpx.ConnectError)
    # a backoff slow enough that the retries meet the deadline
    async with deadline_client(router.async_handler, read=5.0, retries=100, backoff=0.02) as client:
        started = time.monotonic()
        with linstor_deadline(0.3), pytest.raises(LinstorUnavailable) as info:
            await client.controller_version()
        assert time.monotonic() - started < 0.3 + 0.1
    assert 2 <= route.call_count < 100
    assert info.value.retry_after == 5.0


async def test_an_explicit_deadline_may_be_longer_than_the_read_deadline() -> None:
    """A background job that reads the whole cluster sets its own, and operations inside join it."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.4)
        return httpx.Response(200, json=[])

    async with deadline_client(slow, read=0.3) as client:
        with linstor_deadline(2.0), linstor_operation():
            assert await client.list_resource_definitions() == []
            assert await client.list_resource_definitions() == []


# ---- answers that are not what LINSTOR sends ---------------------------------------------------------


async def test_5xx_with_a_body_that_is_not_json(router: respx.Router, client: LinstorClient) -> None:
    router.get(f"{A}/v1/resource-definitions").mock(
        return_value=httpx.Response(500, text="<html>Internal Server Error</html>")
    )
    with pytest.raises(LinstorServerError, match="not JSON") as info:
        await client.list_resource_definitions()
    assert info.value.status == 500
    assert info.value.controller == A


async def test_5xx_with_json_that_is_no_rc_list(router: respx.Router, client: LinstorClient) -> None:
    router.get(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(503, json={"error": "busy"}))
    with pytest.raises(LinstorServerError):
        await client.list_resource_definitions()


async def test_4xx_html(router: respx.Router, client: LinstorClient) -> None:
    router.get(f"{A}/v1/resource-definitions").mock(
        return_value=httpx.Response(
            400, text="<html>Bad request by proxy</html>", headers={"Content-Type": "text/html"}
        )
    )
    with pytest.raises(LinstorProtocolError, match="not JSON"):
        await client.list_resource_definitions()


async def test_redirect_is_not_followed(router: respx.Router, client: LinstorClient) -> None:
    """An HTTPS-only controller redirects /v1 to its https port; mutations must not follow it blindly."""
    route = router.post(f"{A}/v1/resource-definitions").mock(
        return_value=httpx.Response(302, headers={"Location": "https://ctrl-a:3371/v1/resource-definitions"})
    )
    with pytest.raises(LinstorProtocolError, match="302"):
        await client.create_resource_definition("vol1")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[{", "application/json"),
        (b"", "application/json"),
        (b'{"name": "vol1"}', "application/json"),
        (b'[{"props": {}}]', "application/json"),
        (b'[{"name": 1, "props": "x"}]', "application/json"),
        (b"<html></html>", "text/html"),
    ],
)
async def test_malformed_list_answers(
    router: respx.Router, client: LinstorClient, body: bytes, content_type: str
) -> None:
    router.get(f"{A}/v1/resource-definitions").mock(
        return_value=httpx.Response(200, content=body, headers={"Content-Type": content_type})
    )
    with pytest.raises(LinstorProtocolError):
        await client.list_resource_definitions()


async def test_wrong_shape_of_a_single_object(router: respx.Router, client: LinstorClient) -> None:
    router.get(f"{A}/v1/controller/version").mock(return_value=httpx.Response(200, json=[VERSION]))
    with pytest.raises(LinstorProtocolError):
        await client.controller_version()


async def test_malformed_rc_list(router: respx.Router, client: LinstorClient) -> None:
    router.post(f"{A}/v1/resource-definitions").mock(
        return_value=httpx.Response(201, json=[{"message": "x"}])
    )
    with pytest.raises(LinstorProtocolError, match="malformed ApiCallRc"):
        await client.create_resource_definition("vol1")


# ---- ApiCallRc lists ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ret_code", "expected"),
    [
        (500, RD_CREATE_EXISTS, LinstorExists),
        (404, RAW_RD_NOT_FOUND, LinstorNotFound),
        (404, RD_MODIFY_NOT_FOUND, LinstorNotFound),
        (404, RD_CREATE_RG_MISSING, LinstorNotFound),
        (500, RD_CREATE_INVALID_NAME, LinstorInvalid),
        (500, RD_CREATE_INVALID_PROP, LinstorInvalid),
        (400, PARSE_ERROR, LinstorInvalid),
        (500, RD_DELETE_HAS_SNAPSHOTS, LinstorExists),
        (500, SNAPSHOT_NOT_CONNECTED, LinstorConflict),
        (401, TOKEN_REJECTED, LinstorAccessDenied),
    ],
)
async def test_rc_errors_map_by_ret_code(
    router: respx.Router, client: LinstorClient, status: int, ret_code: int, expected: type[LinstorApiError]
) -> None:
    body = [rc(ret_code, "refused", cause="because", details="Resource definition: vol1")]
    route = router.post(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(expected) as info:
        await client.create_resource_definition("vol1")
    err = info.value
    assert type(err) is expected
    assert (err.status, err.rc.ret_code, err.controller) == (status, ret_code, A)
    assert str(err) == "refused; cause: because"
    assert route.call_count == 1


async def test_unknown_error_is_a_server_error(router: respx.Router, client: LinstorClient) -> None:
    router.put(f"{A}/v1/resource-definitions/vol1").mock(
        return_value=httpx.Response(500, json=[rc(UNKNOWN_ERROR, "An unknown error occurred.")])
    )
    with pytest.raises(LinstorServerError) as info:
        await client.modify_resource_definition("vol1", override_props={"Aux/x": "y"})
    assert [r.ret_code for r in info.value.rcs] == [UNKNOWN_ERROR]


@pytest.mark.parametrize(
    ("status", "response"),
    [
        (401, httpx.Response(401, json=[rc(UNKNOWN_ERROR, "An unknown error occurred.")])),
        (403, httpx.Response(403, json=[])),
        (401, httpx.Response(401, text="<html>401 Authorization Required</html>")),
    ],
    ids=["unknown-error-code", "no-entries", "proxy-html"],
)
async def test_401_and_403_are_access_denied_whatever_the_body(
    router: respx.Router, client: LinstorClient, status: int, response: httpx.Response
) -> None:
    # a refused credential is never an outage (stale answer) nor a protocol error (502 bad answer)
    router.get(f"{A}/v1/resource-definitions").mock(return_value=response)
    with pytest.raises(LinstorAccessDenied) as info:
        await client.list_resource_definitions()
    assert info.value.status == status


async def test_first_error_entry_decides(router: respx.Router, client: LinstorClient) -> None:
    body = [rc(RD_CREATED, "props set"), rc(RD_CREATE_INVALID_PROP, "bad prop"), rc(RD_CREATE_EXISTS, "dup")]
    router.post(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(500, json=body))
    with pytest.raises(LinstorInvalid, match="bad prop") as info:
        await client.create_resource_definition("vol1", props={"Foo/bar": "x"})
    assert len(info.value.rcs) == 3


async def test_error_entry_in_a_2xx_answer_still_raises(router: respx.Router, client: LinstorClient) -> None:
    router.put(f"{A}/v1/resource-definitions/vol1").mock(
        return_value=httpx.Response(200, json=[rc(RD_CREATE_INVALID_PROP)])
    )
    with pytest.raises(LinstorInvalid):
        await client.modify_resource_definition("vol1", delete_props=["Aux/x"])


async def test_error_status_without_error_entries(router: respx.Router, client: LinstorClient) -> None:
    router.post(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(500, json=[rc(RD_CREATED)]))
    with pytest.raises(LinstorServerError):
        await client.create_resource_definition("vol1")
    router.get(f"{A}/v1/resource-definitions/x").mock(return_value=httpx.Response(404, json=[]))
    with pytest.raises(LinstorProtocolError):
        await client.get_resource_definition("x")


async def test_delete_of_a_missing_rd_returns_false(router: respx.Router, client: LinstorClient) -> None:
    router.delete(f"{A}/v1/resource-definitions/gone").mock(
        return_value=httpx.Response(
            200, json=[rc(RD_DELETE_NOT_FOUND, "Resource definition: gone not found.")]
        )
    )
    router.delete(f"{A}/v1/resource-definitions/vol1").mock(
        return_value=httpx.Response(200, json=[rc(RD_DELETED, "Resource definition 'vol1' deleted.")])
    )
    assert await client.delete_resource_definition("gone") is False
    assert await client.delete_resource_definition("vol1") is True


async def test_delete_of_a_missing_snapshot_returns_false(
    router: respx.Router, client: LinstorClient
) -> None:
    router.delete(f"{A}/v1/resource-definitions/vol1/snapshots/s1").mock(
        return_value=httpx.Response(200, json=[rc(SNAPSHOT_DELETE_NOT_FOUND)])
    )
    assert await client.delete_snapshot("vol1", "s1") is False


async def test_spawn_without_resources(router: respx.Router, client: LinstorClient) -> None:
    router.post(f"{A}/v1/resource-groups/rg1/spawn").mock(
        return_value=httpx.Response(
            201, json=[rc(RD_CREATED), rc(SPAWN_NO_RESOURCES, "no resources deployed")]
        )
    )
    spawned = await client.spawn("rg1", "vol1", [1024], definitions_only=True)
    assert not spawned.placed
    assert [m.ret_code for m in spawned.messages] == [RD_CREATED, SPAWN_NO_RESOURCES]


# ---- request encoding --------------------------------------------------------------------------------


async def test_props_filters_are_repeated_and_url_encoded(
    router: respx.Router, client: LinstorClient
) -> None:
    route = router.get(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(200, json=[]))
    await client.list_resource_definitions(
        names=["vol1"],
        props=["Aux/Incus/name=incus-volume-c1", "Aux/Incus/type=a+b&c", "Aux/Incus/uuid"],
        with_volume_definitions=True,
    )
    query = route.calls.last.request.url.query.decode()
    assert query == (
        "resource_definitions=vol1"
        "&props=Aux%2FIncus%2Fname%3Dincus-volume-c1"
        "&props=Aux%2FIncus%2Ftype%3Da%2Bb%26c"
        "&props=Aux%2FIncus%2Fuuid"
        "&with_volume_definitions=true"
    )


async def test_resource_group_props_filter(router: respx.Router, client: LinstorClient) -> None:
    route = router.get(f"{A}/v1/resource-groups").mock(return_value=httpx.Response(200, json=[]))
    await client.list_resource_groups(props=["Aux/Incus/pool=p1"])
    assert route.calls.last.request.url.query == b"props=Aux%2FIncus%2Fpool%3Dp1"


async def test_pagination_params(router: respx.Router, client: LinstorClient) -> None:
    route = router.get(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(200, json=[]))
    await client.list_resource_definitions(offset=10, limit=5)
    assert route.calls.last.request.url.query == b"offset=10&limit=5"
    await client.list_resource_definitions(offset=10)
    assert route.calls.last.request.url.query == b""


async def test_names_in_paths_are_escaped(router: respx.Router, client: LinstorClient) -> None:
    route = router.get(url__regex=r".*/v1/resource-definitions/.*").mock(
        return_value=httpx.Response(404, json=[])
    )
    with pytest.raises(LinstorError):
        await client.get_resource_definition("a/b?c")
    assert route.calls.last.request.url.raw_path == b"/v1/resource-definitions/a%2Fb%3Fc"


# ---- clone -------------------------------------------------------------------------------------------


def clone_started(*messages: dict[str, Any]) -> dict[str, Any]:
    """A ResourceDefinitionCloneStarted body."""
    return {
        "location": "/v1/resource-definitions/src/clone/dst",
        "source_name": "src",
        "clone_name": "dst",
        "messages": list(messages),
    }


async def test_clone_started(router: respx.Router, client: LinstorClient) -> None:
    route = router.post(f"{A}/v1/resource-definitions/src/clone").mock(
        return_value=httpx.Response(201, json=clone_started(rc(RD_CREATED, "created")))
    )
    started = await client.clone("src", CloneRequest(name="dst", override_props={"Aux/Incus/name": "c"}))
    assert (started.clone_name, [m.ret_code for m in started.messages]) == ("dst", [RD_CREATED])
    sent = route.calls.last.request
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.content == b'{"name":"dst","override_props":{"Aux/Incus/name":"c"}}'


@pytest.mark.parametrize(
    ("status", "ret_code", "expected"),
    [
        (500, RD_CREATE_EXISTS, LinstorExists),
        (500, RD_CREATE_INVALID_NAME, LinstorInvalid),
        (201, RD_CREATE_EXISTS, LinstorExists),
    ],
)
async def test_clone_errors_inside_the_clone_started_body(
    router: respx.Router, client: LinstorClient, status: int, ret_code: int, expected: type[LinstorApiError]
) -> None:
    router.post(f"{A}/v1/resource-definitions/src/clone").mock(
        return_value=httpx.Response(status, json=clone_started(rc(ret_code, "clone refused")))
    )
    with pytest.raises(expected, match="clone refused") as info:
        await client.clone("src", CloneRequest(name="dst"))
    assert info.value.status == status


async def test_clone_of_a_missing_source(router: respx.Router, client: LinstorClient) -> None:
    router.post(f"{A}/v1/resource-definitions/nope/clone").mock(
        return_value=httpx.Response(
            404, json=[rc(RD_MODIFY_NOT_FOUND, "Resource definition 'nope' not found.")]
        )
    )
    with pytest.raises(LinstorNotFound):
        await client.clone("nope", CloneRequest(name="dst"))


async def test_clone_that_never_answers_times_out_once(router: respx.Router, client: LinstorClient) -> None:
    """LINSTOR never answers a clone request with bad JSON (reference §2.8): a POST, so no retry."""
    route = router.post(f"{A}/v1/resource-definitions/src/clone").mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(LinstorTimeout):
        await client.clone("src", CloneRequest(name="dst"))
    assert route.call_count == 1


async def test_clone_status_with_unknown_value(router: respx.Router, client: LinstorClient) -> None:
    router.get(f"{A}/v1/resource-definitions/src/clone/dst").mock(
        return_value=httpx.Response(200, json={"status": "WEIRD"})
    )
    with pytest.raises(LinstorProtocolError):
        await client.clone_status("src", "dst")


# ---- a full sync's pages (raw bytes, decoded by msgspec) --------------------------------------------------


async def test_a_sync_page_is_retried_fails_over_and_maps_errors_as_every_call(
    router: respx.Router, client: LinstorClient
) -> None:
    rds = [{"name": "vol1", "props": {"Aux/Incus/name": "x"}, "flags": [], "uuid": "u", "layer_data": []}]
    page = router.get(f"{A}/v1/resource-definitions").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=rds)]
    )
    (vol1,) = await client.resource_definition_page(props=["Aux/Incus/name"], offset=3, limit=2)
    assert (vol1.name, vol1.props, vol1.resource_group_name, vol1.sizes_kib()) == (
        "vol1",
        {"Aux/Incus/name": "x"},
        "DfltRscGrp",
        (),
    )
    assert page.call_count == 2
    query = page.calls.last.request.url.params
    assert query.get_list("props") == ["Aux/Incus/name"]
    assert (query["with_volume_definitions"], query["offset"], query["limit"]) == ("true", "3", "2")

    page.side_effect = None
    page.return_value = httpx.Response(500, json=[rc(UNKNOWN_ERROR, "boom")])
    with pytest.raises(LinstorServerError):
        await client.resource_definition_page(props=[])


@pytest.mark.parametrize(
    "body", [b'{"name": "vol1"}', b'[{"props": {}}]', b'[{"name": "v", "props": {"k": 1}}]', b"not json"]
)
async def test_a_sync_page_of_another_shape_is_a_protocol_error(
    router: respx.Router, client: LinstorClient, body: bytes
) -> None:
    router.get(f"{A}/v1/resource-definitions").mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(LinstorProtocolError, match="unexpected answer"):
        await client.resource_definition_page(props=[])
