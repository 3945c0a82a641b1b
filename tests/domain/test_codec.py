"""What AuxCodec.decode refuses to call a volume (app/naming.py): RDs that are not volumes of ours."""

from __future__ import annotations

import pytest

from app.identity import ContentType, VolumeKey, VolumeType
from app.naming import AuxCodec

CODEC = AuxCodec("incus-volume-", "Incus")
GOOD = {
    "Aux/Incus/name": "incus-volume-default_vol",
    "Aux/Incus/type": "custom",
    "Aux/Incus/content-type": "block",
}


def test_a_volume_written_by_incus_decodes() -> None:
    """The baseline the rejections below differ from (the seed's layout, no project key)."""
    record = CODEC.decode("linstor", "incus-volume-1", GOOD)
    assert record is not None
    assert (record.key, record.content_type) == (
        VolumeKey("linstor", "default", VolumeType.CUSTOM, "vol"),
        ContentType.BLOCK,
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Aux/Incus/name": None}, "no name"),
        ({"Aux/Incus/type": None}, "no type"),
        ({"Aux/Incus/content-type": None}, "no content type"),
        ({"Aux/Incus/name": "other-prefix-default_vol"}, "another prefix"),
        ({"Aux/Incus/type": "buckets"}, "a type Incus does not store in LINSTOR"),
        ({"Aux/Incus/content-type": "tape"}, "an unknown content type"),
        ({"Aux/Incus/project": "foo"}, "a project key the name does not carry"),
        ({"Aux/Incus/project": "default", "Aux/Incus/name": "incus-volume-default_"}, "an empty name"),
        ({"Aux/Incus/project": "default", "Aux/Incus/name": "incus-volume-default_a/b"}, "a slash"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_decode_refuses(change: dict[str, str | None], why: str) -> None:
    """Each is not a volume of ours: decode says None rather than inventing one."""
    props = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    assert CODEC.decode("linstor", "incus-volume-1", props) is None, why
