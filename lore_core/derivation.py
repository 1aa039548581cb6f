"""Writing lineage: which file was derived from which, in both directions.

Promises: a derived file's document gets one ``derivedFrom`` ref per source file
(the newest entry) and inherits the sources' ``ancestry`` (each ancestor file once,
bounded by ``max_ancestry``), so reading a lineage graph of any depth costs two round
trips; the source's document gets one ``derivedTo`` ref per derived file, so direct
descendants cost one read. Each link is its own idempotent compare-and-swap.
It does not read lineage back (``lineage.graph``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from . import keys
from .documents import Documents
from .errors import EntryNotFoundError
from .models import FileHistory, LineageRef, StepStatus
from .mutations import link_derived_from, link_derived_to

__all__ = ["Derivation", "rebase", "with_default_entry"]


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
            source_doc = self.docs.load(source.file_key, source.bucket)
        ancestry = self.ancestry_for([source], {(source.bucket or self.bucket, source.file_key): source_doc})
        ref = rebase(source, self.bucket)

        def derive(key: str) -> None:
            mutate = link_derived_from(ref, ancestry, self.max_ancestry, lambda: self.docs.new_history(key))
            self.docs.update(key, mutate, assume_new=True)

        if len(derived_keys) == 1:
            derive(derived_keys[0])
            return
        with ThreadPoolExecutor(max_workers=min(16, len(derived_keys))) as pool:
            list(pool.map(derive, derived_keys))

    def link_forward(self, source: LineageRef, child: LineageRef) -> None:
        """Add ``child`` to the source's ``derivedTo`` (the source may live in another bucket)."""
        child = rebase(child.model_copy(update={"bucket": self.bucket}), source.bucket or self.bucket)
        mutate = link_derived_to(child, lambda: self.docs.new_history(source.file_key, source.bucket))
        self.docs.update(source.file_key, mutate, bucket=source.bucket)

    def register(self, derived_key: str, source: LineageRef, source_entry_id: str | None) -> None:
        source_doc = self.docs.load(source.file_key, source.bucket, fresh=True)
        if source_entry_id is not None and (source_doc is None or source_doc.entry(source_entry_id) is None):
            raise EntryNotFoundError(f"history of {source.file_key!r} has no entry {source_entry_id!r}")
        source = with_default_entry(source, source_doc)
        self.derive_many([derived_key], source, source_doc=source_doc)
        self.link_forward(source, LineageRef(file_key=derived_key, entry_id=source.entry_id))
