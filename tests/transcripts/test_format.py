"""The transcript line: byte for byte what the recorded files hold."""

from __future__ import annotations

from pathlib import Path

from app.transcripts.format import Exchange, read_transcript, write_exchanges

# shaped like line 80 of linstor-1.33.3-controller-api.jsonl: those files are ASCII, "ä" is written \u00e4
LINE = (
    r'{"method": "POST", "path": "/v1/resource-definitions", "query": [["props", "Aux/a"], ["props", "b"]], '
    r'"body": "{\"resource_definition\":{\"external_name\":\"t8c08aa-ext/\u00e4\"}}", "status": 201, '
    r'"response": "[{\"ret_code\":1}]", "ms": 12.5}'
)


def test_a_line_round_trips_to_the_same_text() -> None:
    exchange = Exchange.from_line(LINE)
    assert exchange.query == [("props", "Aux/a"), ("props", "b")]
    assert exchange.body == '{"resource_definition":{"external_name":"t8c08aa-ext/ä"}}'
    assert exchange.to_line() == LINE


def test_written_exchanges_are_read_back(tmp_path: Path) -> None:
    exchanges = [
        Exchange("GET", "/v1/nodes", [("props", "")], "", 200, "[]", 1.5),
        Exchange("PUT", "/v1/nodes/n1", [], '{"x": "\udcff"}', 500, "oops\n", 0.1),  # a lone surrogate
    ]
    path = tmp_path / "t.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_exchanges(handle, exchanges)
    assert read_transcript(path) == exchanges
