"""Log lines for operators: JSON (one object a line) or text, each stamped with the request's id.

The request id lives in a contextvar set by the observing middleware (app/api/observe.py), so every line
logged while a request is served, the LINSTOR transport's retries included, carries it without being passed.
Fields given with `extra=` become keys of the JSON object; nothing else of the request (headers, bodies) is
ever logged, which is how bearer tokens and LINSTOR credentials stay out of the logs.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, TextIO, cast

import orjson

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# what every LogRecord has: anything else on a record came from `extra=` and belongs in the JSON object
# (uvicorn's color_message repeats the message with terminal escapes)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


# every attribute a LogRecord has, as an INFO record without a source location, thread or process has them
_BLANK = {
    **vars(logging.LogRecord("", logging.INFO, "(unknown file)", 0, "", None, None, "(unknown function)")),
    "thread": None,
    "threadName": None,
    "process": None,
    "processName": None,
}

# when the logging module was loaded: what LogRecord.relativeCreated counts from
_LOGGING_STARTED = _BLANK["created"] - _BLANK["relativeCreated"] / 1000


def _split(now_ns: int) -> tuple[float, float]:
    """A time.time_ns() as a LogRecord's `created` (seconds) and `msecs`."""
    return now_ns / 1e9, (now_ns % 1_000_000_000) // 1_000_000 + 0.0


def _extra(record: logging.LogRecord) -> list[tuple[str, Any]]:
    """The fields a record was given (`extra=`, or a FieldsRecord's): its attributes no LogRecord has."""
    return [(k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")]


class FieldsRecord(logging.LogRecord):
    """An INFO record of a message and extra fields, made at a third of LogRecord.__init__'s cost: for the
    line every request writes. It has every attribute a LogRecord has (formatters and filters read them),
    set as with configure()'s switches: no source location, thread or process."""

    def __init__(self, name: str, message: str, fields: dict[str, Any]) -> None:
        seconds, msecs = _split(time.time_ns())
        self.__dict__.update(_BLANK)
        self.__dict__.update(fields)
        self.name = name
        self.msg = message
        self.created = seconds
        self.msecs = msecs
        self.relativeCreated = (seconds - _LOGGING_STARTED) * 1000


class LogFormat(StrEnum):
    """How log lines are written."""

    JSON = "json"
    TEXT = "text"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, then the record's extra fields."""

    # (second, its text): strftime once a second, as every request writes a line; one tuple, so a thread
    # logging at the same time reads a second and its text together
    _stamp: tuple[int, str] = (-1, "")

    def line(
        self,
        created: float,
        msecs: float,
        level: str,
        logger: str,
        message: str,
        fields: Iterable[tuple[str, Any]],
    ) -> dict[str, Any]:
        """The object of one line, before its exception."""
        second, text = self._stamp
        if int(created) != second:
            second = int(created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._stamp = (second, text)
        line: dict[str, Any] = {
            "ts": f"{text}.{int(msecs):03d}Z",
            "level": level,
            "logger": logger,
            "message": message,
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        line.update(fields)
        return line

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line = self.line(
            record.created,
            record.msecs,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            _extra(record),
        )
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return dumps(line)


def dumps(line: dict[str, Any]) -> str:
    """A line's object as JSON text; default=str: an extra field of any type is written, not the line lost."""
    return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """Classic text lines, with the request id (when there is one) and the extra fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        text = super().format(record)
        extra = [f"{k}={v}" for k, v in _extra(record)]
        rid = request_id.get()
        if rid is not None:
            extra.insert(0, f"request_id={rid}")
        return f"{text} [{' '.join(extra)}]" if extra else text


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter of `fmt`."""
    return JsonFormatter() if fmt is LogFormat.JSON else TextFormatter()


class LoopFlushHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler whose request lines may wait for the event loop's next turn to be flushed.

    info_fields() asks for `flush_soon`: inside a running loop the flush is left to a callback the loop runs
    at its next turn, so the request lines of that turn (under load, several requests') reach the stream's
    file in one write(2). Every other line is flushed at once, as by any StreamHandler, and the request lines
    waiting before it go with it: lines keep the order they were logged in (every write and flush holds the
    handler's lock), and a line logged just before the process ends (uvicorn re-raises SIGTERM once it has
    shut down: atexit never runs) is written. A crash loses at most one turn's request lines.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def flush_soon(self) -> None:
        """Flush at the running loop's next turn; at once outside a running loop (threads, start-up)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.acquire()
        try:
            if self._flush_on is not loop:  # else the loop flushes at its next turn already
                loop.call_soon(self._flush_now)
                self._flush_on = loop
        finally:
            self.release()

    def _flush_now(self) -> None:
        self._flush_on = None  # only the loop's own thread schedules: flush_soon runs there
        self.flush()


class _SharedStderr(io.TextIOWrapper):
    """A text layer of its own over sys.stderr's byte buffer, without sys.stderr's flush at every newline;
    closing it (or collecting it) flushes it and leaves the buffer, which is sys.stderr's, open."""

    def close(self) -> None:
        try:
            self.flush()
        except (OSError, ValueError):  # the buffer is closed already (at exit, or a capture that ended)
            pass


def _log_stream() -> TextIO:
    """stderr for the log handler, its lines written when the handler flushes: sys.stderr writes at each
    newline. sys.stderr itself when it has no byte buffer to share."""
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:
        return sys.stderr
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return _SharedStderr(buffer, encoding=encoding, errors="backslashreplace")


# the handler configure() made, while it writes JSON: the request line may be written to it straight
_json_handler: LoopFlushHandler | None = None


def info_fields(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """An INFO line of `message` and `fields` (an enabled level is the caller's to check): the line every
    request writes. When configure()'s JSON handler is the only place it can go (no other handler, no
    filter: what the service runs with), it is written to that handler's stream straight, the line
    logging's path would write, without that path's record, filters and locking twice; else it takes
    that path."""
    handler = _json_handler
    if handler is None or not _only_to(logger, handler):
        logger.handle(FieldsRecord(logger.name, message, fields))
        return
    formatter = cast(JsonFormatter, handler.formatter)  # _only_to checked it
    line = formatter.line(*_split(time.time_ns()), "info", logger.name, message, fields.items())
    handler.acquire()
    try:
        handler.stream.write(dumps(line) + handler.terminator)
        handler.flush_soon()
    except Exception:  # as StreamHandler.emit: reported by handleError, never raised into the request
        handler.handleError(FieldsRecord(logger.name, message, fields))
    finally:
        handler.release()


def _only_to(logger: logging.Logger, handler: logging.Handler) -> bool:
    """True when a record of `logger` would reach `handler` alone, unfiltered, and be formatted as JSON."""
    if logger.filters or logger.disabled:
        return False
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or not node.propagate:
            return False
        node = node.parent
    root = logging.root
    return (
        len(root.handlers) == 1
        and root.handlers[0] is handler
        and not handler.filters
        and handler.level <= logging.INFO
        and type(handler.formatter) is JsonFormatter
    )


def configure(fmt: LogFormat, level: str = "info") -> None:
    """Send the root logger's lines to stderr in `fmt`, at `level`, replacing its handlers."""
    handler = LoopFlushHandler(_log_stream())
    handler.setFormatter(formatter(fmt))
    # Neither format writes the caller, thread or process of a line: the logging HOWTO's "Optimization"
    # switches save the ~10 µs a record spends finding them, on the one line every request logs
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    global _json_handler
    _json_handler = handler if fmt is LogFormat.JSON else None
