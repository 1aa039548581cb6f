"""The on-bucket document shapes: FileHistory, HistoryEntry, LineageRef, and friends.

Only shapes live here (no I/O, no policy). Field names are snake_case in Python
and camelCase on the bucket. Unknown fields written by other tools are kept
(``extra="allow"``) and written back unchanged, so readers that don't know Lore's
additions can ignore them.
"""

from __future__ import annotations

import json
import traceback
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, ValidationError
from pydantic.alias_generators import to_camel

from .ids import as_utc, format_timestamp, utc_now

__all__ = [
    "SCHEMA_VERSION",
    "ArchiveRef",
    "ErrorInfo",
    "FailedEntry",
    "FileHistory",
    "HistoryEntry",
    "LineageRef",
    "OrchestratorInfo",
    "StepStatus",
]

SCHEMA_VERSION = 1

#: Parsed by pydantic's own (compiled) datetime validator, so reading a long history costs no
#: Python call per timestamp. A value without a timezone (written by another tool) is taken as
#: UTC by ``parse_history`` / ``assume_utc``, the only places such a value can come in.
Timestamp = Annotated[
    AwareDatetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]

_TIMESTAMP_KEYS = (
    "startedAt",
    "completedAt",
    "leaseExpiresAt",
    "createdAt",
    "updatedAt",
    "started_at",
    "completed_at",
    "lease_expires_at",
    "created_at",
    "updated_at",
)


def assume_utc(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (a parsed document or entry) with timezone-less timestamps taken as UTC, in place."""
    for key in _TIMESTAMP_KEYS:
        value = raw.get(key)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                continue  # left for the model to reject with a clear message
            if parsed.tzinfo is None:
                raw[key] = as_utc(parsed)
        elif isinstance(value, datetime) and value.tzinfo is None:
            raw[key] = as_utc(value)
    for entry in raw.get("entries") or () if isinstance(raw.get("entries"), list) else ():
        if isinstance(entry, dict):
            assume_utc(entry)
    return raw


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


class _Doc(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_json_dict(self) -> dict[str, Any]:
        """The document as stored: camelCase, no nulls, unknown fields kept."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ErrorInfo(_Doc):
    message: str
    name: str | None = None
    stack: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        return cls(
            message=str(exc) or type(exc).__name__,
            name=type(exc).__name__,
            stack="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )


class OrchestratorInfo(_Doc):
    """Where an entry came from: the orchestrator's run, job and task, and a UI link."""

    system: str
    run_id: str | None = None
    job: str | None = None
    task: str | None = None
    partition: str | None = None
    try_number: int | None = None
    map_index: int | None = None
    url: str | None = None


class LineageRef(_Doc):
    """A link to the entry of another file's history (``bucket`` only when it differs).

    A document keeps one ref per related file: ``entry_id`` is the latest linked
    entry and ``count`` how many times the two files were linked (absent means 1).
    Each entry's own ``derivedFrom`` keeps the refs it used, so older links move to
    the archive segments with their entries.
    """

    file_key: str
    entry_id: str | None = None
    bucket: str | None = None
    count: int | None = None

    def same_file(self, other: LineageRef) -> bool:
        return self.file_key == other.file_key and self.bucket == other.bucket


class HistoryEntry(_Doc):
    id: str
    step: str
    description: str | None = None
    status: StepStatus
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    produces: list[str] | None = None
    started_at: Timestamp
    completed_at: Timestamp | None = None
    duration_ms: int | None = None
    metadata: dict[str, Any] | None = None
    # Lore's additions; other readers ignore them.
    replay_of: str | None = None
    attempt: int | None = None
    orchestrator: OrchestratorInfo | None = None
    lease_expires_at: Timestamp | None = None
    resolved_by: str | None = None
    # The sources this entry was derived from (the document's derivedFrom keeps one per file).
    derived_from: list[LineageRef] | None = None
    # Set once a running marker was written for this entry (its lease in seconds, part of the
    # marker's name), so whoever finishes or clears the entry removes the marker by name.
    marker_lease: int | None = None

    @property
    def finished(self) -> bool:
        return self.status is not StepStatus.RUNNING

    @property
    def abandoned(self) -> bool:
        """Still ``running`` but its lease expired: the worker died or stopped renewing it."""
        return (
            self.status is StepStatus.RUNNING
            and self.lease_expires_at is not None
            and self.lease_expires_at < utc_now()
        )

    @property
    def unresolved_failure(self) -> bool:
        """Failed (or abandoned) and not yet fixed by a later success: what replay is for."""
        return (self.status is StepStatus.FAILED or self.abandoned) and self.resolved_by is None


class ArchiveRef(_Doc):
    """An immutable segment object holding entries moved out of the live document."""

    key: str
    count: int
    first_entry_id: str
    last_entry_id: str


class FileHistory(_Doc):
    schema_version: int | None = None
    file_key: str
    bucket: str
    derived_from: list[LineageRef] = Field(default_factory=list)
    derived_to: list[LineageRef] = Field(default_factory=list)
    ancestry: list[LineageRef] | None = None
    entries: list[HistoryEntry] = Field(default_factory=list)
    archived: list[ArchiveRef] | None = None
    created_at: Timestamp
    updated_at: Timestamp

    def entry(self, entry_id: str) -> HistoryEntry | None:
        for item in self.entries:
            if item.id == entry_id:
                return item
        return None

    def latest(self, step: str | None = None, status: StepStatus | str | None = None) -> HistoryEntry | None:
        """The newest entry, optionally of one step and/or status."""
        wanted = StepStatus(status) if status is not None else None
        for item in reversed(self.entries):
            if (step is None or item.step == step) and (wanted is None or item.status is wanted):
                return item
        return None

    def failed_entries(self, include_resolved: bool = False) -> list[HistoryEntry]:
        """Failed and abandoned entries; by default only those no later success resolved."""
        return [
            e
            for e in self.entries
            if (e.status is StepStatus.FAILED or e.abandoned) and (include_resolved or e.resolved_by is None)
        ]

    def counts(self) -> dict[str, int]:
        """How many entries have each status."""
        out = {s.value: 0 for s in StepStatus}
        for item in self.entries:
            out[item.status.value] += 1
        return out


class FailedEntry(BaseModel):
    """A failed entry as the failure index knows it (no history read needed)."""

    file_key: str
    entry_id: str
    step: str
    bucket: str
    failed_at: datetime | None = None
    abandoned: bool = False
    #: The entry's error, when the entry was read to check it (``list_failed(verify=True)``).
    error: ErrorInfo | None = None


def parse_history(data: bytes | str) -> FileHistory:
    """A stored document as a ``FileHistory``: validated once, in compiled code.

    Only a document holding a timestamp without a timezone (another tool's) takes the slow
    path: parsed, its timestamps taken as UTC (``assume_utc``), validated again.
    """
    try:
        return FileHistory.model_validate_json(data)
    except ValidationError as exc:
        if not any(error["type"] == "timezone_aware" for error in exc.errors()):
            raise
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise TypeError("a history document must be a JSON object")
    return FileHistory.model_validate(assume_utc(raw))
