"""The on-bucket document shapes: FileHistory, HistoryEntry, LineageRef, and friends.

Field names are snake_case in Python and camelCase on the bucket. Unknown fields
written by other tools are kept (``extra="allow"``) and written back unchanged.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from .tracker import LoreTracker

__all__ = [
    "SCHEMA_VERSION",
    "ArchiveRef",
    "ErrorInfo",
    "FailedEntry",
    "FileHistory",
    "HistoryEntry",
    "LineageNode",
    "LineageRef",
    "OrchestratorInfo",
    "StepContext",
    "StepResult",
    "StepStatus",
    "new_entry_id",
    "utc_now",
]

SCHEMA_VERSION = 1


def utc_now() -> datetime:
    # Millisecond precision, as stored: a value read back compares equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    value = _as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ulid_lock = threading.Lock()
_ulid_last: list[int] = [0, 0]  # [ms, random] of the last id, for monotonic ids within a process


def new_entry_id() -> str:
    """A ULID: 26 characters that sort by creation time (monotonic within a process)."""
    with _ulid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _ulid_last[0]:
            ms = _ulid_last[0]
            rand = _ulid_last[1] + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # leave room to increment
        _ulid_last[0], _ulid_last[1] = ms, rand
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


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
        import traceback

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
    """A link to the entry of another file's history (``bucket`` only when it differs)."""

    file_key: str
    entry_id: str | None = None
    bucket: str | None = None

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


class LineageNode(BaseModel):
    """One file in a lineage tree: its history and the files it was derived from."""

    file_key: str
    bucket: str
    history: FileHistory | None = None
    via: LineageRef | None = None
    parents: list[LineageNode] = Field(default_factory=list)
    error: str | None = None

    def walk(self) -> list[LineageNode]:
        """This node and every ancestor, depth first."""
        out: list[LineageNode] = [self]
        for parent in self.parents:
            out.extend(parent.walk())
        return out


class FailedEntry(BaseModel):
    """A failed entry as the failure index knows it (no history read needed)."""

    file_key: str
    entry_id: str
    step: str
    bucket: str
    failed_at: datetime | None = None
    abandoned: bool = False


@dataclass
class StepResult:
    """What ``LoreTracker.run`` and ``replay`` return."""

    status: StepStatus
    entry_id: str
    file_key: str
    step: str
    output: Any = None
    error: ErrorInfo | None = None
    replay_of: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (StepStatus.SUCCESS, StepStatus.SKIPPED)


@dataclass
class StepContext:
    """Handed to a step handler: what it runs on, and a way to name produced files."""

    file_key: str
    bucket: str
    step: str
    entry_id: str
    input: Any
    tracker: LoreTracker
    attempt: int = 1
    replay_of: str | None = None
    produces: list[str] = field(default_factory=list)

    def produce(self, file_key: str) -> None:
        """Declare that this step wrote ``file_key``; it is recorded as derived from this entry."""
        if file_key not in self.produces:
            self.produces.append(file_key)


Handler = Callable[[StepContext], Any]
