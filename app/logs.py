"""Log lines for operators: JSON (one object a line) or text, each stamped with the request's id.

The request id lives in a contextvar set by the observing middleware (app/api/observe.py), so every line
logged while a request is served, the LINSTOR transport's retries included, carries it without being passed.
Fields given with `extra=` become keys of the JSON object; nothing else of the request (headers, bodies) is
ever logged, which is how bearer tokens and LINSTOR credentials stay out of the logs.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

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


class FieldsRecord(logging.LogRecord):
    """An INFO record of a message and extra fields, made at a third of LogRecord.__init__'s cost: for the
    line every request writes. It has every attribute a LogRecord has (formatters and filters read them),
    set as with configure()'s switches: no source location, thread or process."""

    def __init__(self, name: str, message: str, fields: dict[str, Any]) -> None:
        now = time.time_ns()
        seconds = now / 1e9
        self.__dict__.update(_BLANK)
        self.__dict__.update(fields)
        self.name = name
        self.msg = message
        self.created = seconds
        self.msecs = (now % 1_000_000_000) // 1_000_000 + 0.0
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

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        second, text = self._stamp
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._stamp = (second, text)
        line: dict[str, Any] = {
            "ts": f"{text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        # default=str: an extra field of any type is written rather than losing the line
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """Classic text lines, with the request id (when there is one) and the extra fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        text = super().format(record)
        extra = [f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")]
        rid = request_id.get()
        if rid is not None:
            extra.insert(0, f"request_id={rid}")
        return f"{text} [{' '.join(extra)}]" if extra else text


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter of `fmt`."""
    return JsonFormatter() if fmt is LogFormat.JSON else TextFormatter()


def configure(fmt: LogFormat, level: str = "info") -> None:
    """Send the root logger's lines to stderr in `fmt`, at `level`, replacing its handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    # Neither format writes the caller, thread or process of a line: the logging HOWTO's "Optimization"
    # switches save the ~10 µs a record spends finding them, on the one line every request logs
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
