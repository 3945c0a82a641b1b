"""Full sync: make the cache match LINSTOR's resource-definition listing, in bounded memory.

The listing is read in pages of PAGE_SIZE RDs (a setting), each decoded from its bytes into lean structs
(app/linstor/lean.py). Each RD is fingerprinted (what the decoder reads of it: name, group, sizes, the
namespace's props); only an RD whose fingerprint the cache does not hold (read before the listing) is
decoded into a record and kept. A resync of an unchanged cache holds 100k fingerprints, not 100k records,
decodes nothing and writes nothing (replace.py).

Why pages that overlap: LINSTOR pages by offset over the filtered RDs in upper-cased name order, with no
cursor (linstor-rest-api.md §5.2), so an RD created or deleted before the window between two pages shifts
it: the next page would skip an RD or repeat one, and a skipped RD would be deleted from the cache. Each
page after the first therefore starts one RD early, at the last RD of the page before: when that RD is
where it was, the page holds exactly the RDs that follow it, whatever changed before it (each RD is then
seen as it was at some moment after `started_at`, which is all replace.py asks of a listing). When it is
not, the listing starts again; after PAGED_ATTEMPTS moved listings (a cluster busy creating volumes) it is
read in one GET, which cannot move, and holds the whole listing in memory once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.cache.queries import fingerprint_of
from app.cache.replace import Listing, MissingRecords, ReplaceResult
from app.cache.store import CacheStore
from app.cache.tables import name_key
from app.identity import VolumeRecord
from app.linstor.lean import LeanResourceDefinition
from app.linstor.transport import linstor_deadline
from app.naming import PropertyKeys

log = logging.getLogger(__name__)

Decoder = Callable[[LeanResourceDefinition], VolumeRecord | None]
# Below this many RDs decoding inline costs less than a thread hop (measured: ~2-5 µs an RD).
INLINE_DECODE_LIMIT = 200
# RDs a page (Settings.cache_sync_page_size): ~10 MiB of body, ~45 MiB while it is read and decoded. Each
# page costs the controller a scan of every RD (§5.3), so pages are large: 4 requests for 100k RDs, one up
# to 25,000. Measured at 100k against the emulator (rebuild, median of 3): 5,000 a page 6.5 s, 10,000 4.3 s,
# 25,000 3.7 s, one GET 2.9 s (decoded whole: ~90 MiB above its 41 MiB body, in-process tracemalloc).
PAGE_SIZE = 25_000
# Listings moved by concurrent creates or deletes before the sync falls back to one unpaged GET.
PAGED_ATTEMPTS = 3


class ResourceDefinitionLister(Protocol):
    """The part of LinstorClient a sync uses."""

    async def resource_definition_page(
        self, *, props: Sequence[str], offset: int = 0, limit: int = 0
    ) -> list[LeanResourceDefinition]:
        """GET /v1/resource-definitions with volume definitions; `limit` 0: every match."""
        ...


class ListingMoved(Exception):
    """An RD was created or deleted before the window between two pages: the listing starts again."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """Outcome of a full sync."""

    resource_definitions: int
    volumes: int
    written: int
    deleted: int
    started_at: float  # when the listing began, on the cache's clock
    finished_at: float  # on this host's clock (time.time())
    duration: float


async def full_sync(
    store: CacheStore,
    client: ResourceDefinitionLister,
    *,
    keys: PropertyKeys,
    decode: Decoder,
    rebuild: bool = False,
    page_size: int = PAGE_SIZE,
    page_deadline: float | None = None,
    salt: str = "",
) -> SyncResult:
    """List the namespace's RDs, then make the cache match in one write (replace.py).

    `page_deadline`: seconds each page may take (a read's deadline); without it, the caller's deadline
    covers the whole listing. `salt`: whatever `decode` reads beyond an RD's name, group, volume sizes and
    props under `keys.root` (the codec's prefix); it is part of every fingerprint.
    """
    started = time.monotonic()
    # the cache's clock, not ours: replicas sharing PostgreSQL compare stamps from one clock
    started_at = await store.clock()
    # nothing is written before the whole listing is decoded: when LINSTOR fails, the cache stays as it was
    known = await store.fingerprints()
    pages = _Pages(client, [keys.name], page_size, page_deadline, keys.root, salt)
    rds, listing = await _list(pages, decode, known)
    del known
    try:
        result: ReplaceResult = await store.replace_all(listing, started_at=started_at, rebuild=rebuild)
    except MissingRecords as exc:
        log.info("cache sync: %s; listing again with every record", exc)
        rds, listing = await _list(pages, decode, {})
        result = await store.replace_all(listing, started_at=started_at, rebuild=rebuild)
    await store.mark_synced(started_at)
    duration = time.monotonic() - started
    log.info(
        "cache sync: %d RDs, %d volumes, %d written, %d deleted in %.3fs",
        rds,
        len(listing.fingerprints),
        result.written,
        result.deleted,
        duration,
    )
    return SyncResult(
        resource_definitions=rds,
        volumes=len(listing.fingerprints),
        written=result.written,
        deleted=result.deleted,
        started_at=started_at,
        finished_at=time.time(),
        duration=duration,
    )


@dataclass(frozen=True, slots=True)
class _Pages:
    """How a sync reads the listing: from whom, filtered how, in pages of what size, each within what time."""

    client: ResourceDefinitionLister
    props: list[str]
    size: int
    deadline: float | None
    root: str  # the namespace's props: with the RD's name, group and sizes, all a decoder reads
    salt: str

    async def page(self, offset: int, limit: int) -> list[LeanResourceDefinition]:
        """One page (`limit` 0: the whole listing), within its own deadline if there is one."""
        # a sync is a background job reading the whole cluster: each page is one read and gets a read's
        # deadline, where the whole listing could not (20 pages of 100k RDs)
        with linstor_deadline(self.deadline) if self.deadline is not None else contextlib.nullcontext():
            return await self.client.resource_definition_page(props=self.props, offset=offset, limit=limit)


async def _list(pages: _Pages, decode: Decoder, known: Mapping[str, int]) -> tuple[int, Listing]:
    """The number of RDs listed and the listing; paged until PAGED_ATTEMPTS listings moved, then not."""
    for attempt in range(PAGED_ATTEMPTS + 1):
        listing = Listing()
        size = pages.size if attempt < PAGED_ATTEMPTS else 0
        try:
            add = functools.partial(_add, pages, decode, known, listing)
            rds = await _read_pages(pages, size, add)
        except ListingMoved:
            log.info("cache sync: the RD listing moved between pages (attempt %d); again", attempt + 1)
            continue
        return rds, listing
    raise AssertionError("unreachable: the last attempt is one GET")


async def _read_pages(
    pages: _Pages, page_size: int, add: Callable[[Sequence[LeanResourceDefinition]], None]
) -> int:
    """Feed every RD of the listing to `add`, page by page (see the module's doc); the number of RDs."""
    if page_size <= 0:
        page = await pages.page(0, 0)
        await _feed(add, page)
        return len(page)
    page_size = max(page_size, 2)  # a page holds the overlap and at least one new RD
    seen, last = 0, None
    # the next page is asked for while this one is decoded: the controller's scan and ours overlap
    pending = asyncio.ensure_future(pages.page(0, page_size))
    try:
        while True:
            page = await pending
            full = len(page) == page_size
            if last is not None:
                if not page or name_key(page[0].name) != last:
                    raise ListingMoved
                page = page[1:]
            if full:
                pending = asyncio.ensure_future(pages.page(seen + len(page) - 1, page_size))
            await _feed(add, page)
            seen += len(page)
            if not full:
                return seen
            last = name_key(page[-1].name)
    finally:
        # after a failure or a moved listing the page asked for is not wanted; its outcome is collected
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)


async def _feed(
    add: Callable[[Sequence[LeanResourceDefinition]], None], page: Sequence[LeanResourceDefinition]
) -> None:
    if len(page) <= INLINE_DECODE_LIMIT:
        add(page)
    else:
        await asyncio.to_thread(add, page)


def listed_fingerprint(rd: LeanResourceDefinition, root: str, salt: str) -> int:
    """The fingerprint of everything the decoder reads of an RD: equal fingerprints, equal records."""
    props = sorted((k, v) for k, v in rd.props.items() if k.startswith(root))
    return fingerprint_of(["rd", salt, root, rd.name, rd.resource_group_name, rd.sizes_kib(), props])


def _add(
    pages: _Pages,
    decode: Decoder,
    known: Mapping[str, int],
    listing: Listing,
    page: Sequence[LeanResourceDefinition],
) -> None:
    """Fingerprint each RD; decode only those whose fingerprint the cache does not hold."""
    for rd in page:
        rd_key, print_ = name_key(rd.name), listed_fingerprint(rd, pages.root, pages.salt)
        if known.get(rd_key) == print_:  # the cache holds what this RD decodes to: a volume
            listing.fingerprints[rd_key] = print_
        elif (record := decode(rd)) is not None:
            listing.fingerprints[rd_key] = print_
            listing.records[rd_key] = record
