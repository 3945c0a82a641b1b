"""A fake LINSTOR listing for full syncs: pages as the controller does (linstor-rest-api.md §5.2)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from app.linstor.lean import LeanResourceDefinition
from app.linstor.models import ResourceDefinition


def lean(rd: ResourceDefinition) -> LeanResourceDefinition:
    """An RD as a sync's page holds it."""
    return msgspec.convert(rd.model_dump(), LeanResourceDefinition)


class FakePager:
    """Lists `rds` (taken as already filtered) in upper-cased name order, offset/limit applied after."""

    def __init__(self, rds: list[ResourceDefinition]) -> None:
        self.rds = rds
        self.calls: list[tuple[list[str], int, int]] = []

    async def resource_definition_page(
        self, *, props: Sequence[str], offset: int = 0, limit: int = 0
    ) -> list[LeanResourceDefinition]:
        """One page of the listing, as it stands when asked."""
        self.calls.append((list(props), offset, limit))
        await self.before_page(offset)
        ordered = sorted(self.rds, key=lambda rd: rd.name.upper())
        if limit > 0:
            ordered = ordered[offset : offset + limit]
        return [lean(rd) for rd in ordered]

    async def before_page(self, offset: int) -> None:
        """Called before the page at `offset` is read (0: a listing starts): a test changes LINSTOR here."""
