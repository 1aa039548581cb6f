"""Lore: per-file step history and lineage, stored as JSON in the bucket beside the files.

Example::

    from lore_core import LoreTracker

    tracker = LoreTracker.from_url("memory://example")
    result = tracker.run("raw/a.csv", step="validate", handler=lambda ctx: {"rows": 3})
    print(result.status, tracker.get_history("raw/a.csv").entries[0].output)
"""

from .errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConcurrentUpdateError,
    ConditionalWritesUnsupportedError,
    CorruptHistoryError,
    EntryNotFoundError,
    HistoryNotFoundError,
    InvalidKeyError,
    InvalidStoreURLError,
    InvalidTransitionError,
    LoreConfigError,
    LoreError,
    StepNotRegisteredError,
    StoreError,
    StoreUnavailableError,
)
from .events import EventSink, StepEvent
from .lifecycle import ActiveStep
from .lineage import LineageNode, lineage_to_dot, lineage_to_json, lineage_to_mermaid, lineage_to_text
from .models import (
    ArchiveRef,
    ErrorInfo,
    FailedEntry,
    FileHistory,
    HistoryEntry,
    LineageRef,
    OrchestratorInfo,
    StepStatus,
)
from .steps import StepContext, StepResult, register_step
from .stores import FileStore, MemoryStore, S3Store, Store, make_s3_client, open_store
from .tracker import LoreTracker

__all__ = [
    "AccessDeniedError",
    "ActiveStep",
    "ArchiveRef",
    "BucketNotFoundError",
    "ConcurrentUpdateError",
    "ConditionalWritesUnsupportedError",
    "CorruptHistoryError",
    "EntryNotFoundError",
    "ErrorInfo",
    "EventSink",
    "FailedEntry",
    "FileHistory",
    "FileStore",
    "HistoryEntry",
    "HistoryNotFoundError",
    "InvalidKeyError",
    "InvalidStoreURLError",
    "InvalidTransitionError",
    "LineageNode",
    "LineageRef",
    "LoreConfigError",
    "LoreError",
    "LoreTracker",
    "MemoryStore",
    "OrchestratorInfo",
    "S3Store",
    "StepContext",
    "StepEvent",
    "StepNotRegisteredError",
    "StepResult",
    "StepStatus",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "lineage_to_dot",
    "lineage_to_json",
    "lineage_to_mermaid",
    "lineage_to_text",
    "make_s3_client",
    "open_store",
    "register_step",
]
__version__ = "0.1.0"
