"""One exchange per JSON line, the format of `shared/linstor/transcripts` (see their README)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request and the controller's answer: raw texts, as a recording proxy saw them."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    status: int = 200
    response: str = ""
    ms: float = 0.0

    def to_line(self) -> str:
        """The JSON line, keys in the transcripts' order."""
        data = asdict(self)
        data["query"] = [list(pair) for pair in self.query]
        # ASCII with \u escapes, as the recorded files are: a line round-trips to the same bytes
        return json.dumps(data)

    @classmethod
    def from_line(cls, line: str) -> Exchange:
        """Parse one line; query pairs become tuples."""
        raw = json.loads(line)
        return cls(
            method=str(raw["method"]),
            path=str(raw["path"]),
            query=[(str(k), str(v)) for k, v in raw.get("query") or []],
            body=str(raw.get("body") or ""),
            status=int(raw["status"]),
            response=str(raw.get("response") or ""),
            ms=float(raw.get("ms") or 0.0),
        )


def read_transcript(path: str | Path) -> list[Exchange]:
    """Every exchange of a JSONL file, in order; blank lines are skipped."""
    with Path(path).open(encoding="utf-8") as handle:
        return list(iter_exchanges(handle))


def iter_exchanges(handle: IO[str]) -> Iterator[Exchange]:
    """Exchanges from an open text stream."""
    for line in handle:
        if line.strip():
            yield Exchange.from_line(line)


def write_exchanges(handle: IO[str], exchanges: Iterable[Exchange]) -> None:
    """Append exchanges, one line each, flushed so a killed recorder loses at most the line in flight."""
    for exchange in exchanges:
        handle.write(exchange.to_line() + "\n")
    handle.flush()
