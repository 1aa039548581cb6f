"""Writing lineage: which file was derived from which, in both directions.

Promises: a derived file's document gets one ``derivedFrom`` ref per source file
(the newest entry) and inherits the sources' ``ancestry`` (each ancestor file once,
bounded by ``max_ancestry``), so reading a lineage graph of any depth costs two round
trips; the source's document gets one ``derivedTo`` ref per derived file, so direct
descendants cost one read. Each link is its own idempotent compare-and-swap.

Writes stay where they are configured: a derived file always lives in the tracker's
own bucket, and a source in another bucket gets its ``derivedTo`` ref only when that
bucket is in ``writable_buckets``; otherwise the link is recorded on the configured
store's side alone (the derived file's ``derivedFrom`` names the other bucket) and the
other bucket is never written. Such a bucket's histories are still read for ancestry
where they can be; one that cannot be read (denied, missing) counts as having none.
It does not read lineage back (``lineage.graph``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from . import keys
from .documents import DocKey, Documents
from .errors import AccessDeniedError, BucketNotFoundError, EntryNotFoundError, LoreError
from .models import FileHistory, LineageRef, StepStatus
from .mutations import link_derived_from, link_derived_to

__all__ = ["Derivation", "rebase", "with_default_entry"]

log = logging.getLogger("lore")


def rebase(ref: LineageRef, target_bucket: str) -> LineageRef:
    """``ref`` as written in a document of ``target_bucket`` (bucket only when it differs)."""
    if ref.bucket == target_bucket:
        return ref.model_copy(update={"bucket": None})
    return ref


def with_default_entry(ref: LineageRef, doc: FileHistory | None) -> LineageRef:
    """``ref`` pointing at the source's latest successful entry (or latest entry) when it names none."""
    if ref.entry_id is not None or doc is None:
        return ref
    latest = doc.latest(status=StepStatus.SUCCESS) or doc.latest()
    return ref.model_copy(update={"entry_id": latest.id if latest else None})


class Derivation:
    def __init__(self, docs: Documents, max_ancestry: int) -> None:
        self.docs = docs
        self.bucket = docs.bucket
        self.max_ancestry = max_ancestry

    def writable(self, bucket: str | None) -> bool:
        """True for the tracker's own bucket and the buckets in ``writable_buckets``."""
        return bucket is None or bucket == self.bucket or bucket in self.docs.options.writable_buckets

    def load_source(self, ref: LineageRef, *, fresh: bool = False) -> FileHistory | None:
        """A source's history; None when a bucket Lore may not write cannot be read either."""
        try:
            return self.docs.load(ref.file_key, ref.bucket, fresh=fresh)
        except (AccessDeniedError, BucketNotFoundError) as exc:
            if self.writable(ref.bucket):
                raise
            log.debug("lore: no history read from bucket %r (%s); linking %r without it", ref.bucket, exc, ref.file_key)
            return None

    def fetch_sources(self, sources: Sequence[LineageRef]) -> dict[DocKey, FileHistory | None]:
        """The histories of ``sources``, read in parallel (one round trip; see ``load_source``).

        A ref that names its entry needs the source's document only for the ancestry it
        passes on: the version this tracker last read or wrote is used when it has one (no
        request; an adapter that just read the source to find that entry reads it once).
        A ref without an entry is pointed at the source's latest entry, read fresh.
        """
        unique = {(s.bucket or self.bucket, s.file_key): s for s in sources}

        def load(ref: LineageRef) -> FileHistory | None:
            return self.load_source(ref, fresh=ref.entry_id is None)

        if len(unique) <= 1:
            return {ident: load(ref) for ident, ref in unique.items()}
        with ThreadPoolExecutor(max_workers=min(32, len(unique))) as pool:
            return dict(zip(unique, pool.map(load, unique.values()), strict=True))

    def source_ref(self, ref: LineageRef | str) -> LineageRef:
        if isinstance(ref, str):
            ref = LineageRef(file_key=ref)
        keys.validate_file_key(ref.file_key, self.docs.prefix)
        bucket = None if ref.bucket in (None, self.bucket) else ref.bucket
        return ref.model_copy(update={"bucket": bucket})

    def ancestry_for(
        self, sources: Sequence[LineageRef], source_docs: dict[tuple[str, str], FileHistory | None]
    ) -> list[LineageRef]:
        """What a file derived from ``sources`` inherits: the sources, then their ancestors (each file once)."""
        out: list[LineageRef] = []
        seen: set[tuple[str | None, str]] = set()

        def add(ref: LineageRef) -> None:
            ident = (ref.bucket, ref.file_key)
            if ident not in seen:
                seen.add(ident)
                out.append(LineageRef(file_key=ref.file_key, entry_id=ref.entry_id, bucket=ref.bucket))

        for source in sources:
            add(rebase(source, self.bucket))
        for source in sources:
            source_bucket = source.bucket or self.bucket
            doc = source_docs.get((source_bucket, source.file_key))
            if doc is None:
                continue
            inherited = doc.ancestry if doc.ancestry is not None else doc.derived_from
            for ref in inherited:
                absolute = ref if ref.bucket else ref.model_copy(update={"bucket": source_bucket})
                add(rebase(absolute, self.bucket))
            if len(out) >= self.max_ancestry:
                break
        return out[: self.max_ancestry]

    def derive_many(
        self, derived_keys: Sequence[str], source: LineageRef, source_doc: FileHistory | None = None
    ) -> None:
        """Point each derived file's history at ``source`` (one write each when the file is new)."""
        if source_doc is None:
            source_doc = self.load_source(source)
        ancestry = self.ancestry_for([source], {(source.bucket or self.bucket, source.file_key): source_doc})
        ref = rebase(source, self.bucket)
        # A file the source already names in derivedTo has a history: a create would be refused
        # (412) and cost a read and a second write; any other is created in one write.
        known = self.known_derived(source_doc)

        def derive(key: str) -> None:
            mutate = link_derived_from(ref, ancestry, self.max_ancestry, lambda: self.docs.new_history(key))
            self.docs.update(key, mutate, assume_new=key not in known)

        if len(derived_keys) == 1:
            derive(derived_keys[0])
            return
        with ThreadPoolExecutor(max_workers=min(16, len(derived_keys))) as pool:
            list(pool.map(derive, derived_keys))

    def known_derived(self, source_doc: FileHistory | None) -> set[str]:
        """Keys in this bucket that ``source_doc`` already names as derived from it."""
        if source_doc is None:
            return set()
        return {r.file_key for r in source_doc.derived_to if r.bucket in (None, self.bucket)}

    def prefetch(self, source_key: str, derived_keys: Sequence[str]) -> None:
        """Read the histories of files about to be derived from ``source_key`` that already have one.

        Called while the step runs (off its critical path): the final write then links each
        of them with one conditional write, in parallel with the entry's own.
        """
        wanted = [k for k in derived_keys if k in self.known_derived(self.docs.load(source_key))]
        for key in wanted:
            try:
                self.docs.load(key)
            except LoreError as exc:  # only a head start: the link reads it again if it must
                log.debug("lore: could not read %r ahead of linking it (%s)", key, exc)

    def link_forward(self, source: LineageRef, child: LineageRef) -> None:
        """Add ``child`` to the source's ``derivedTo`` when the source's bucket is writable (else nothing)."""
        if not self.writable(source.bucket):
            return  # recorded on our side only: the child's derivedFrom names the other bucket
        child = rebase(child.model_copy(update={"bucket": child.bucket or self.bucket}), source.bucket or self.bucket)
        mutate = link_derived_to(child, lambda: self.docs.new_history(source.file_key, source.bucket))
        self.docs.update(source.file_key, mutate, bucket=source.bucket)

    def register(
        self, derived_key: str, source: LineageRef, source_entry_id: str | None, derived_bucket: str | None = None
    ) -> None:
        """Link ``derived_key`` (in ``derived_bucket``, default ours) to ``source`` on every side we may write.

        A derived file of another bucket is never written: the source's ``derivedTo`` names it.
        """
        source_doc = self.load_source(source, fresh=True)
        if source_entry_id is not None and (source_doc is None or source_doc.entry(source_entry_id) is None):
            raise EntryNotFoundError(f"history of {source.file_key!r} has no entry {source_entry_id!r}")
        source = with_default_entry(source, source_doc)
        ours = derived_bucket in (None, self.bucket)
        if ours:
            self.derive_many([derived_key], source, source_doc=source_doc)
        child_bucket = None if ours else derived_bucket
        self.link_forward(source, LineageRef(file_key=derived_key, entry_id=source.entry_id, bucket=child_bucket))
