"""Observability: /metrics by route template, X-Request-ID, one JSON line per request, audit, no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import opentelemetry._logs
import opentelemetry.metrics
import opentelemetry.trace
import pytest
from prometheus_client.parser import text_string_to_metric_families

import app.logs
from app.linstor.config import ConnectionConfig
from app.logs import FieldsRecord, JsonFormatter, LogFormat, TextFormatter, configure, info_fields, request_id
from app.main import create_app
from tests.api.conftest import service_settings
from tests.conftest import Emulator
from tests.support.api import POOL, create
from tests.support.server import free_port

SECRET_PASSWORD = "pw-5e6d1c0a-never-logged"
SECRET_TOKEN = "tok-9b8f7e6d-never-logged"
CLIENT_TOKEN = "client-4a3b2c1d-never-logged"
SECRETS = (SECRET_PASSWORD, SECRET_TOKEN, CLIENT_TOKEN)
VOLUME_ROUTE = "/v1/pools/{pool}/volumes/{type}/{name}"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line of the process, formatted as the service writes them in JSON."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # every line any code would write, at any level an operator could choose
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def observed(linstor: object, emulator: Emulator, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A service of its own, with LINSTOR credentials and a first controller that refuses connections.

    In-process (ASGITransport): the response comes back once the middleware has logged, so nothing races.
    """
    connection = ConnectionConfig(
        urls=(f"http://127.0.0.1:{free_port()}", emulator.url),
        username="admin",
        password=SECRET_PASSWORD,
        bearer_token=SECRET_TOKEN,
    )
    app = create_app(service_settings(tmp_path), linstor=connection)
    async with app.router.lifespan_context(app):
        # the start-up sync runs in the background: let it end, so that it takes no fault a test sets
        await app.state.services.cache_service.condition(wait=10)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            yield client


def _lines(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines() if line]


async def _samples(api: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_by_route_template(observed: httpx.AsyncClient) -> None:
    volume = await create(observed, type="custom", name="m1")
    path = f"/v1/pools/{POOL}/volumes/custom/m1"
    for _ in range(3):
        assert (await observed.get(path)).status_code == 200
    assert (await observed.get(f"/v1/pools/{POOL}/volumes/custom/absent")).status_code == 404
    samples = await _samples(observed)
    requests = "linstor_names_http_requests_total"
    assert _value(samples, requests, method="GET", route=VOLUME_ROUTE, status="200") == 3
    assert _value(samples, requests, method="GET", route=VOLUME_ROUTE, status="404") == 1
    assert _value(samples, requests, method="POST", route="/v1/pools/{pool}/volumes", status="201") == 1
    assert (
        _value(samples, "linstor_names_http_request_duration_seconds_count", method="GET", route=VOLUME_ROUTE)
        == 4
    )
    # no label carries a name: neither the volume's nor its LINSTOR name
    text = (await observed.get("/metrics")).text
    assert 'route="/metrics"' in text
    assert "m1" not in text
    assert volume["linstor_name"] not in text


async def test_metrics_count_linstor_calls_and_cache_hits(observed: httpx.AsyncClient) -> None:
    await create(observed, type="custom", name="c1")
    before = await _samples(observed)
    assert (await observed.get(f"/v1/pools/{POOL}/volumes/custom/c1")).status_code == 200
    after = await _samples(observed)
    list_rds = {"method": "GET", "endpoint": "/v1/resource-definitions"}
    calls = "linstor_names_linstor_requests_total"
    assert _value(after, calls, **list_rds) == _value(before, calls, **list_rds) + 1
    duration = "linstor_names_linstor_request_duration_seconds_count"
    assert _value(after, duration, **list_rds) == _value(before, duration, **list_rds) + 1
    # verify mode: LINSTOR's answer agreed with the row the create wrote
    hits = "linstor_names_cache_hits_total"
    assert _value(after, hits) == _value(before, hits) + 1
    assert ("linstor_names_cache_misses_total", frozenset()) in after
    # the lifespan's start-up sync has run (or is under way): its figures are exposed
    assert ("linstor_names_cache_sync_duration_seconds_count", frozenset()) in after


async def test_request_id_is_echoed_or_generated(observed: httpx.AsyncClient) -> None:
    given = await observed.get("/healthz", headers={"X-Request-ID": "req-abc.123"})
    assert given.headers["x-request-id"] == "req-abc.123"
    generated = await observed.get("/healthz")
    first = generated.headers["x-request-id"]
    assert len(first) == 32
    assert (await observed.get("/healthz")).headers["x-request-id"] != first
    # an id that could forge log lines is replaced, not echoed
    forged = await observed.get("/healthz", headers={"X-Request-ID": "a b\tc"})
    assert forged.headers["x-request-id"] != "a b\tc"


async def test_one_json_line_per_request(observed: httpx.AsyncClient, log_lines: io.StringIO) -> None:
    await create(observed, type="custom", name="j1")
    response = await observed.get(f"/v1/pools/{POOL}/volumes/custom/j1", headers={"X-Request-ID": "rid-j1"})
    assert response.status_code == 200
    lines = [line for line in _lines(log_lines) if line["logger"] == "linstor_names.request"]
    assert len(lines) == 2
    line = lines[1]
    assert line["method"] == "GET"
    assert line["route"] == VOLUME_ROUTE
    assert line["status"] == 200
    assert line["request_id"] == "rid-j1"
    assert 0 < line["duration_ms"] < 30_000
    assert line["level"] == "info"


async def test_linstor_log_lines_carry_the_request_id(
    observed: httpx.AsyncClient, emulator: Emulator, log_lines: io.StringIO
) -> None:
    emulator.state.add_fault(action="error", method="GET", path="^/v1/resource-definitions$", times=1)
    response = await observed.get(f"/v1/pools/{POOL}/volumes/custom/x1", headers={"X-Request-ID": "rid-x1"})
    assert response.status_code == 503, response.text
    failed = [line for line in _lines(log_lines) if line["logger"] == "linstor_names.linstor"]
    assert len(failed) == 1
    assert failed[0]["request_id"] == "rid-x1"
    assert failed[0]["endpoint"] == "/v1/resource-definitions"
    assert failed[0]["kind"] == "server_error"
    samples = await _samples(observed)
    errors = "linstor_names_linstor_errors_total"
    labels = {"method": "GET", "endpoint": "/v1/resource-definitions", "kind": "server_error"}
    assert _value(samples, errors, **labels) == 1


async def test_audit_line_for_a_create(observed: httpx.AsyncClient, log_lines: io.StringIO) -> None:
    volume = await create(observed, type="custom", name="a1", project="p1")
    assert (await observed.get(f"/v1/pools/{POOL}/volumes/custom/a1?project=p1")).status_code == 200
    audit = [line for line in _lines(log_lines) if line["logger"] == "linstor_names.audit"]
    assert len(audit) == 1  # the read is not audited
    line = audit[0]
    assert line["who"] == "anonymous"
    assert line["action"] == "POST /v1/pools/{pool}/volumes"
    assert line["status"] == 201
    assert line["target"] == {"pool": POOL, "project": "p1", "type": "custom", "name": "a1"}
    assert line["linstor_name"] == volume["linstor_name"]


async def test_no_secret_in_logs_errors_or_metrics(
    log_lines: io.StringIO, observed: httpx.AsyncClient, emulator: Emulator
) -> None:
    # log_lines first: the lines of the start-up (the refusing controller, the first sync) are in too
    answers = [
        await observed.post(
            f"/v1/pools/{POOL}/volumes", json={"type": "custom", "name": "s1", "size": "1GiB"}
        )
    ]
    answers.append(await observed.get(f"/v1/pools/{POOL}/volumes/custom/s1"))
    # LINSTOR failures: an error answer, then a controller that drops the connection
    emulator.state.add_fault(action="error", method="GET", path="^/v1/resource-definitions$", times=1)
    answers.append(await observed.get(f"/v1/pools/{POOL}/volumes/custom/absent"))
    emulator.state.add_fault(action="drop", method="*", path="^/v1/", times=1)
    answers.append(await observed.delete(f"/v1/pools/{POOL}/volumes/custom/s1"))
    answers.append(await observed.get("/metrics"))
    assert [a.status_code for a in answers[:3]] == [201, 200, 503]
    assert answers[3].status_code >= 500
    logged = log_lines.getvalue()
    assert "linstor_names.linstor" in logged  # the failures were logged, so the grep below means something
    assert "unreachable" in logged  # the refusing controller too
    for secret in SECRETS:
        assert secret not in logged
        for answer in answers:
            assert secret not in answer.text
            assert secret not in str(answer.headers)


@pytest.mark.parametrize("created", [1_700_000_000.25, 1_700_000_059.999])
def test_json_lines_are_stamped_with_their_own_second_in_utc(created: float) -> None:
    # the formatter keeps the text of the last second it wrote: a line of another second gets its own
    formatter = JsonFormatter()
    for at in (created - 1, created, created + 61):
        record = logging.LogRecord("t", logging.INFO, "", 0, "m", None, None)
        record.created, record.msecs = at, (at - int(at)) * 1000
        stamp = json.loads(formatter.format(record))["ts"]
        assert stamp == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(record.msecs):03d}Z"


@pytest.mark.parametrize(
    "formatter", [JsonFormatter(), TextFormatter(), logging.Formatter(logging.BASIC_FORMAT)]
)
def test_a_request_line_record_is_an_info_record_with_its_fields(formatter: logging.Formatter) -> None:
    # the request line's record (FieldsRecord) skips LogRecord.__init__: it must still be a whole record
    fields = {"method": "GET", "route": VOLUME_ROUTE, "status": 200, "duration_ms": 0.5}
    logger = logging.getLogger("linstor_names.request")
    made = logger.makeRecord(
        logger.name, logging.INFO, "(unknown file)", 0, "GET / 200", (), None, "(unknown function)", fields
    )
    fast = FieldsRecord(logger.name, "GET / 200", fields)
    assert set(vars(fast)) == set(vars(made))
    assert abs(fast.created - made.created) < 1
    assert abs(fast.relativeCreated - made.relativeCreated) < 1000
    for same in ("created", "msecs", "relativeCreated", "thread", "threadName", "process", "processName"):
        setattr(made, same, getattr(fast, same))
    assert formatter.format(fast) == formatter.format(made)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """configure() changes the root logger and the module's handler: put both back after the test."""
    root = logging.getLogger()
    handlers, level, configured = root.handlers[:], root.level, app.logs._json_handler
    yield
    root.handlers[:], app.logs._json_handler = handlers, configured
    root.setLevel(level)


class Kept(logging.Handler):
    """Keeps the messages it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _drop_all(record: logging.LogRecord) -> bool:
    return False


# what else a request line's record may meet on its way, besides configure()'s JSON handler
LISTENERS = (
    "nothing else",
    "another handler on the root (pytest's caplog)",
    "a handler of the logger's own",
    "a filter on the JSON handler",
    "a filter on the logger",
    "the JSON handler above INFO",
    "a formatter of another kind",
)


def _listen(listener: str, logger: logging.Logger, handler: logging.Handler, kept: Kept) -> None:
    if listener == LISTENERS[1]:
        logging.getLogger().addHandler(kept)
    elif listener == LISTENERS[2]:
        logger.addHandler(kept)
    elif listener == LISTENERS[3]:
        handler.addFilter(_drop_all)
    elif listener == LISTENERS[4]:
        logger.addFilter(_drop_all)
    elif listener == LISTENERS[5]:
        handler.setLevel(logging.WARNING)
    elif listener == LISTENERS[6]:
        handler.setFormatter(TextFormatter())


@pytest.mark.parametrize("listener", LISTENERS)
def test_the_request_line_is_what_logging_would_make_of_it_whatever_listens(
    listener: str, logging_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """info_fields writes straight to the JSON handler's stream only when logging would send the record
    there alone, and then writes the very line logging writes; otherwise the record takes logging's path."""
    configure(LogFormat.JSON, "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    logger = logging.getLogger("linstor_names.test_request_line")
    kept = Kept()
    _listen(listener, logger, handler, kept)
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_456_789)
    fields = {"method": "GET", "route": VOLUME_ROUTE, "status": 200, "duration_ms": 0.5}
    token = request_id.set("0123abcd")
    try:
        outputs = []
        for straight_if_it_may in (True, False):
            if straight_if_it_may:
                info_fields(logger, "GET / 200", dict(fields))
            else:
                logger.handle(FieldsRecord(logger.name, "GET / 200", dict(fields)))
            outputs.append((stream.getvalue(), kept.messages[:]))
            stream.seek(0)
            stream.truncate()
            kept.messages.clear()
    finally:
        request_id.reset(token)
        logger.handlers.clear()
        logger.filters.clear()
    straight, through_logging = outputs
    assert straight == through_logging
    if listener == "nothing else":
        assert json.loads(straight[0])["ts"] == "2023-11-14T22:13:20.123Z"


def test_a_request_line_written_straight_takes_no_record_and_survives_a_broken_stream(
    logging_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The straight path makes no LogRecord (that is its point); a stream that fails is handled as logging
    handles it (handleError), never raised into the request."""
    configure(LogFormat.JSON, "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    made: list[logging.LogRecord] = []
    monkeypatch.setattr(app.logs, "FieldsRecord", lambda *a: made.append(a) or FieldsRecord(*a))  # type: ignore[func-returns-value]
    logger = logging.getLogger("linstor_names.request")
    info_fields(logger, "GET / 200", {"status": 200})
    assert made == []

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("the pipe is gone")

    handler.setStream(Broken())
    errors: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", errors.append)
    info_fields(logger, "GET / 200", {"status": 200})
    assert [e.getMessage() for e in errors] == ["GET / 200"]


class Flushes(io.StringIO):
    """A stream that counts its flushes and what had been written at each."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_request_lines_of_one_turn_of_the_loop_are_flushed_once_after_it_and_any_other_line_at_once(
    logging_restored: None,
) -> None:
    """app/logs.py LoopFlushHandler: inside a running loop the request lines (info_fields) of one turn are
    flushed together when the loop turns; any other line at once, with the request lines before it, in
    order; outside a loop (a thread, no loop) a request line at once too."""
    configure(LogFormat.JSON, "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = Flushes()
    handler.setStream(stream)
    stream.flushed.clear()  # setStream flushes the stream it replaces: this one is new
    logger = logging.getLogger("linstor_names.test_flush")

    def messages(text: str) -> list[str]:
        return [json.loads(line)["message"] for line in text.splitlines()]

    async def turns() -> None:
        info_fields(logger, "one", {})
        info_fields(logger, "two", {})
        assert stream.flushed == []  # written, not yet flushed
        await asyncio.sleep(0)
        assert [messages(text) for text in stream.flushed] == [["one", "two"]]
        info_fields(logger, "three", {})
        logger.warning("four")  # through logging: flushed at once, "three" with it
        assert messages(stream.flushed[-1]) == ["one", "two", "three", "four"]
        flushes = len(stream.flushed)
        await asyncio.to_thread(info_fields, logger, "from a thread", {})
        assert messages(stream.flushed[flushes])[-1] == "from a thread"

    asyncio.run(turns())
    info_fields(logger, "no loop", {})
    assert messages(stream.flushed[-1])[-1] == "no loop"


def test_configured_lines_reach_the_stderr_descriptor_a_request_line_when_the_loop_turns(
    logging_restored: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """configure() writes through a layer of its own over stderr's buffer (sys.stderr writes at each
    newline): a request line logged in the loop is one write(2) with the rest of its turn; a line of any
    other kind, uvicorn's last ones at shutdown among them, is written at once."""
    configure(LogFormat.JSON, "info")
    logger = logging.getLogger("linstor_names.test_flush")
    seen: list[str] = []

    async def turn() -> None:
        info_fields(logger, "in the loop", {})
        seen.append(capfd.readouterr().err)
        await asyncio.sleep(0)
        seen.append(capfd.readouterr().err)
        logger.info("shutting down")
        seen.append(capfd.readouterr().err)

    asyncio.run(turn())
    assert seen[0] == ""
    assert json.loads(seen[1])["message"] == "in the loop"
    assert json.loads(seen[2])["message"] == "shutting down"


@pytest.mark.parametrize("otel", [False, True])
async def test_fastapi_opentelemetry_is_looked_for_only_when_asked(
    otel: bool, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI asks OpenTelemetry for its providers on every request (~3 us of a cached lookup, make bench):
    # LINSTOR_NAMES_OTEL=true asks it to, and only then does a request look
    looked: list[str] = []
    for module, name in (
        (opentelemetry.trace, "get_tracer_provider"),
        (opentelemetry.metrics, "get_meter_provider"),
        (opentelemetry._logs, "get_logger_provider"),
    ):
        monkeypatch.setattr(module, name, _counted(getattr(module, name), looked))
    app = create_app(service_settings(tmp_path, otel=otel), linstor=ConnectionConfig(urls=(emulator.url,)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            looked.clear()  # what the lifespan looked for is not a request's
            assert (await client.get("/healthz")).status_code == 200
    assert bool(looked) is otel


def _counted(original: Callable[[], object], calls: list[str]) -> Callable[[], object]:
    def counted() -> object:
        calls.append(original.__name__)
        return original()

    return counted
