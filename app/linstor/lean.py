"""Lean msgspec models of the resource-definition listing that a full cache sync reads.

A full sync lists every RD of the namespace (100k in a big cluster). Decoded by orjson into dicts and then
into the pydantic models of models.py, a listing of 100k RDs cost ~520 MiB above its 67 MiB body; msgspec
decodes a page's bytes straight into these structs, which hold only the fields the cache needs (the rest of
each object is skipped without being built). They hold no cycles, so the garbage collector need not track
them (gc=False): a page of 10,000 no longer sets off collections that walk every object of the process.
"""

from __future__ import annotations

import msgspec

from app.linstor.errors import LinstorProtocolError


class LeanVolumeDefinition(msgspec.Struct, gc=False):
    """A volume definition's number and size."""

    volume_number: int = 0
    size_kib: int = 0


class LeanResourceDefinition(msgspec.Struct, gc=False):
    """A resource definition as a full sync reads it: name, group, props and volume sizes."""

    name: str
    resource_group_name: str = "DfltRscGrp"
    props: dict[str, str] = {}
    volume_definitions: list[LeanVolumeDefinition] = []

    def sizes_kib(self) -> tuple[int, ...]:
        """Volume definition sizes ordered by volume number."""
        vds = self.volume_definitions
        if len(vds) == 1:
            return (vds[0].size_kib,)
        return tuple(vd.size_kib for vd in sorted(vds, key=lambda v: v.volume_number))


_rd_list = msgspec.json.Decoder(list[LeanResourceDefinition])


def decode_rd_list(path: str, body: bytes) -> list[LeanResourceDefinition]:
    """The RDs of a listing's body; an answer of another shape is a LinstorProtocolError."""
    try:
        return _rd_list.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise LinstorProtocolError(f"GET {path}: unexpected answer: {exc}") from exc
