"""Named deviations of the replay: exchanges of the real controller's recordings the emulator does not
reproduce, each with its reason. `test_replay.py` checks that each still differs and nothing else does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deviation:
    """Exchanges (1-based, as in the recording) of one transcript that differ in the named aspects."""

    name: str
    transcript: str
    exchanges: tuple[int, ...]
    aspects: frozenset[str]
    reason: str


API = "linstor-1.33.3-controller-api.jsonl"
GO = "linstor-1.33.3-golinstor-traffic.jsonl"
SERVICE = "linstor-1.33.3-service-traffic.jsonl"

DEVIATIONS: list[Deviation] = [
    Deviation(
        name="satellite-free-space",
        transcript=GO,
        exchanges=(93,),
        aspects=frozenset({"body"}),
        reason=(
            "free_capacity of a FILE_THIN pool is what the satellite's filesystem reports: it depends on the "
            "data the volumes hold at that moment (514004 KiB at controller-api #182, 514056 KiB here). The "
            "emulator writes no data, so it reports the recording's first figure throughout."
        ),
    ),
]


def deviation_for(transcript: str, number: int) -> Deviation | None:
    """The deviation that names this exchange, if any."""
    for deviation in DEVIATIONS:
        if deviation.transcript == transcript and number in deviation.exchanges:
            return deviation
    return None
