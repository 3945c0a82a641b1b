"""The recording proxy before the emulator: what it forwards, answers and writes, and what it never writes."""

from __future__ import annotations

import asyncio
import gzip
import io
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message

from app.emulator import rc
from app.transcripts.format import Exchange, iter_exchanges, read_transcript
from app.transcripts.recorder import Recorder, Upstream
from tests.conftest import Emulator
from tests.linstor.tls import OPENSSL, Pki, make_pki, serve_https
from tests.support.asgi import http_scope
from tests.support.deps import skip_or_fail
from tests.support.server import free_port, serve

UNKNOWN_ERROR = rc.signed(rc.FAIL_UNKNOWN_ERROR)


class SlowSink(io.StringIO):
    """A transcript whose writes pause halfway, as a slow disk would: unguarded writers would interleave."""

    def __init__(self, pause: float = 0.005) -> None:
        super().__init__()
        self.pause = pause

    def write(self, text: str) -> int:
        half = len(text) // 2
        super().write(text[:half])
        time.sleep(self.pause)
        super().write(text[half:])
        return len(text)


def fields(exchange: Exchange) -> tuple[str, str, list[tuple[str, str]], str, int, str]:
    """Everything of an exchange but its timing."""
    return exchange.method, exchange.path, exchange.query, exchange.body, exchange.status, exchange.response


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the transcript goes."""
    return tmp_path / "recorded.jsonl"


@pytest.fixture
async def proxy(emulator: Emulator, out: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a recorder in front of the emulator; the transcript file stays open while the test runs."""
    with out.open("x", encoding="utf-8") as sink:
        async with (
            Recorder(Upstream(emulator.url), sink) as recorder,
            httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
        ):
            yield client


async def test_each_exchange_is_recorded_as_the_client_saw_it(proxy: httpx.AsyncClient, out: Path) -> None:
    body = '{"name": "rg1",  "select_filter": {"place_count": 1}}'  # odd spacing: the raw text is kept
    answers = [
        await proxy.get("/v1/controller/version"),
        await proxy.post("/v1/resource-groups", content=body, headers={"Content-Type": "application/json"}),
        await proxy.get("/v1/resource-definitions/nope"),
        await proxy.get("/v1/resource-definitions?props=Aux/b&props=Aux%2Fa&with_volume_definitions=true"),
        await proxy.delete("/v1/resource-groups/rg1"),
    ]
    assert [a.status_code for a in answers] == [200, 201, 404, 200, 200]

    # read while the recorder still holds the file open: every line must already be flushed
    recorded = read_transcript(out)
    assert [fields(e) for e in recorded] == [
        ("GET", "/v1/controller/version", [], "", 200, answers[0].text),
        ("POST", "/v1/resource-groups", [], body, 201, answers[1].text),
        ("GET", "/v1/resource-definitions/nope", [], "", 404, answers[2].text),
        (
            "GET",
            "/v1/resource-definitions",
            [("props", "Aux/b"), ("props", "Aux/a"), ("with_volume_definitions", "true")],
            "",
            200,
            answers[3].text,
        ),
        ("DELETE", "/v1/resource-groups/rg1", [], "", 200, answers[4].text),
    ]
    assert all(e.ms > 0 and e.ms == round(e.ms, 1) for e in recorded)


async def test_the_answer_is_the_upstream_answer_unchanged(
    emulator: Emulator, proxy: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as direct:
        expected = await direct.get("/v1/controller/version")
    got = await proxy.get("/v1/controller/version")
    assert (got.status_code, got.headers["content-type"], got.content) == (
        expected.status_code,
        expected.headers["content-type"],
        expected.content,
    )


async def test_headers_and_the_raw_target_are_forwarded(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def controller(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        compressed = gzip.compress(b'[{"ret_code": -1, "message": "teapot"}]')
        headers = {"Content-Type": "text/x-odd; charset=utf-8", "Content-Encoding": "gzip", "X-Linstor": "1"}
        return httpx.Response(418, headers=headers, content=compressed)

    sink = io.StringIO()
    upstream = Upstream("http://controller:3370/base/")
    async with (
        Recorder(upstream, sink, transport=httpx.MockTransport(controller)) as recorder,
        httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
    ):
        answer = await client.put(
            "/v1/nodes/n1?props=Aux%2Fa&props=b&empty=",
            content=b'{"x": 1}',
            headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer t0ken",
                "User-Agent": "golinstor/0.64.1",
                "Accept-Encoding": "gzip",
            },
        )

    (request,) = seen
    assert request.method == "PUT"
    assert request.url.raw_path == b"/base/v1/nodes/n1?props=Aux%2Fa&props=b&empty="
    assert request.content == b'{"x": 1}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["user-agent"] == "golinstor/0.64.1"
    assert request.headers["accept-encoding"] == "identity"  # so that the recorded answer is plain text
    assert request.headers["host"] == "controller:3370"

    assert answer.status_code == 418
    assert answer.headers["content-type"] == "text/x-odd; charset=utf-8"
    assert answer.headers["x-linstor"] == "1"
    assert "content-encoding" not in answer.headers  # httpx already decoded it: passing it on would lie
    assert answer.text == '[{"ret_code": -1, "message": "teapot"}]'
    (recorded,) = iter_exchanges(io.StringIO(sink.getvalue()))
    assert fields(recorded) == (
        "PUT",
        "/v1/nodes/n1",
        [("props", "Aux/a"), ("props", "b"), ("empty", "")],
        '{"x": 1}',
        418,
        answer.text,
    )


async def call_raw(
    method: str, headers: list[tuple[bytes, bytes]], messages: list[Message]
) -> tuple[list[httpx.Request], list[Message], str]:
    """Drive the recorder as raw ASGI (an httpx client would add its own default headers first) in front of
    a controller that answers 200; the requests it saw, the messages sent back, the transcript."""
    seen: list[httpx.Request] = []

    def controller(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    scope = http_scope(method, "/v1/nodes", headers, port=3371)
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    sink = io.StringIO()
    upstream = Upstream("http://c:3370")
    async with Recorder(upstream, sink, transport=httpx.MockTransport(controller)) as app:
        await app(scope, receive, send)
    return seen, sent, sink.getvalue()


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", [], {}),
        # an empty POST still goes with Content-Length: 0 (a server may answer 411 without it)
        ("POST", [(b"content-length", b"0")], {"content-length": "0"}),
    ],
)
async def test_no_header_is_added_but_host_and_accept_encoding(
    method: str, headers: list[tuple[bytes, bytes]], expected: dict[str, str]
) -> None:
    request = {"type": "http.request", "body": b"", "more_body": False}
    seen, sent, _ = await call_raw(method, headers, [request])
    assert sent[0]["status"] == 200
    assert dict(seen[0].headers) == {"host": "c:3370", "accept-encoding": "identity", **expected}


async def test_a_client_that_leaves_mid_request_is_not_forwarded() -> None:
    partial = {"type": "http.request", "body": b'{"node": ', "more_body": True}
    seen, sent, recorded = await call_raw("POST", [], [partial, {"type": "http.disconnect"}])
    assert (seen, sent, recorded) == ([], [], "")


async def test_an_unreachable_controller_is_a_502_and_not_recorded() -> None:
    sink = io.StringIO()
    url = f"http://127.0.0.1:{free_port()}"
    async with (
        Recorder(Upstream(url), sink) as recorder,
        httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
    ):
        answer = await client.get("/v1/controller/version")
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "application/json"
    (entry,) = answer.json()
    assert entry["ret_code"] == UNKNOWN_ERROR
    assert url in entry["message"]
    assert "ConnectError" in entry["cause"]
    assert sink.getvalue() == ""


async def test_a_dropped_connection_is_a_502_and_not_recorded(
    emulator: Emulator, proxy: httpx.AsyncClient, out: Path
) -> None:
    emulator.state.add_fault(action="drop", path="^/v1/resource-groups$", times=1)
    dropped = await proxy.get("/v1/resource-groups")
    assert dropped.status_code == 502
    assert dropped.json()[0]["ret_code"] == UNKNOWN_ERROR
    answered = await proxy.get("/v1/resource-groups")
    assert answered.status_code == 200
    assert [fields(e) for e in read_transcript(out)] == [
        ("GET", "/v1/resource-groups", [], "", 200, answered.text)
    ]


async def test_a_timeout_is_a_504_and_not_recorded(emulator: Emulator) -> None:
    emulator.state.add_fault(action="hang", path="^/v1/resource-groups$", times=1)
    sink = io.StringIO()
    async with (
        Recorder(Upstream(emulator.url, timeout=0.3), sink) as recorder,
        httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
    ):
        started = time.monotonic()
        answer = await client.get("/v1/resource-groups")
    assert time.monotonic() - started < 5
    assert answer.status_code == 504
    (entry,) = answer.json()
    assert entry["ret_code"] == UNKNOWN_ERROR
    assert "no answer within 0.3s" in entry["message"]
    assert sink.getvalue() == ""


async def test_concurrent_exchanges_give_whole_lines(emulator: Emulator) -> None:
    sink = SlowSink()
    # answers that name their request: a line cut by another one no longer parses, or no longer matches
    paths = [f"/v1/resource-definitions/rd{i}" if i % 2 else f"/v1/resource-groups/rg{i}" for i in range(20)]
    async with (
        Recorder(Upstream(emulator.url), sink) as recorder,
        httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
    ):
        answers = await asyncio.gather(*(client.get(path) for path in paths))

    lines = sink.getvalue().splitlines()
    assert len(lines) == 20
    recorded = [Exchange.from_line(line) for line in lines]  # raises on a line cut by another one
    assert sorted((e.path, e.status, e.response) for e in recorded) == sorted(
        (path, a.status_code, a.text) for path, a in zip(paths, answers, strict=True)
    )


def test_the_line_is_written_before_the_client_has_its_answer(emulator: Emulator) -> None:
    """Under uvicorn (lifespan opens the client): a client that got an answer finds its line written."""
    sink = SlowSink(pause=0.05)
    with serve(Recorder(Upstream(emulator.url), sink)) as url, httpx.Client(base_url=url) as client:
        for count in range(1, 4):
            assert client.get("/v1/controller/version").status_code == 200
            assert sink.getvalue().count("\n") == count


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server certificate for 127.0.0.1 and a client certificate."""
    if OPENSSL is None:
        skip_or_fail("the openssl CLI is needed to make test certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_url(pki: Pki) -> Iterator[str]:
    """An HTTPS controller stand-in that requires a client certificate signed by the test CA."""
    with serve_https(pki, require_client_cert=True) as url:
        yield url


async def test_an_https_controller_with_a_ca_file_and_a_client_certificate(pki: Pki, mtls_url: str) -> None:
    upstream = Upstream(
        mtls_url, ca_file=str(pki.ca_cert), client_cert=str(pki.client_cert), client_key=str(pki.client_key)
    )
    sink = io.StringIO()
    async with (
        Recorder(upstream, sink) as recorder,
        httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
    ):
        answer = await client.get("/v1/controller/version")
    assert answer.status_code == 200
    assert answer.json()["version"] == "1.34.0"
    (recorded,) = iter_exchanges(io.StringIO(sink.getvalue()))
    assert fields(recorded) == ("GET", "/v1/controller/version", [], "", 200, answer.text)


async def test_an_https_controller_is_verified(mtls_url: str) -> None:
    sink = io.StringIO()
    async with (
        Recorder(Upstream(mtls_url), sink) as recorder,
        httpx.AsyncClient(transport=httpx.ASGITransport(recorder), base_url="http://recorder") as client,
    ):
        answer = await client.get("/v1/controller/version")
    assert answer.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in answer.json()[0]["cause"]
    assert sink.getvalue() == ""


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        ({"url": "controller:3370"}, "give an http:// or https:// URL"),
        ({"url": "http://c:3370", "client_key": "k.pem"}, "needs its client certificate"),
        ({"url": "http://c:3370", "timeout": 0}, "must be positive"),
    ],
)
def test_bad_upstream_settings_are_refused(upstream: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Upstream(**upstream)


def test_the_proxy_runs_without_the_emulators_extra() -> None:
    """`linstor-names record` must work where python-linstor (GPL-3.0, the emulator's extra) is absent."""
    code = "import sys; sys.modules['linstor'] = None; import app.transcripts.recorder"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
