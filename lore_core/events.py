"""Lifecycle events: what a tracker tells its subscribers as steps start and end.

Promises: ``tracker.on(kind, callback)`` (or ``"*"`` for every kind) is called with a
typed, immutable ``StepEvent`` after the history says so (``step.started`` once the
running entry is written, ``step.succeeded`` / ``step.failed`` once the final one is;
``step.abandoned`` once per entry and process when Lore finds a running entry past its
lease: ``list_failed`` saw it, or a later success of the step marked it ``LeaseExpired``.
Should its worker still finish it, that late end comes as ``step.succeeded`` /
``step.failed`` with ``extra["after_abandoned"]``: it is the last word);
a callback that raises is logged and never breaks the step nor another subscriber.
Callbacks run in the thread that wrote the entry: one that may block (a network sink)
hands the event to a thread of its own, as the OpenLineage sink does. Event sinks are
objects with ``emit(event)`` registered with ``tracker.add_sink(sink)``.
It does not write anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .models import HistoryEntry, LineageRef

__all__ = ["EVENT_KINDS", "EventBus", "EventKind", "EventSink", "StepEvent"]

log = logging.getLogger("lore")

EventKind = Literal["step.started", "step.succeeded", "step.failed", "step.abandoned"]
EVENT_KINDS: tuple[EventKind, ...] = ("step.started", "step.succeeded", "step.failed", "step.abandoned")


@dataclass(frozen=True)
class StepEvent:
    """One step of one file changed state; ``entry`` is the entry as stored (a copy of its own).

    ``sources`` are the files the entry was derived from (``derivedFrom`` refs, other
    buckets named), ``produces`` the files it produced.
    """

    kind: EventKind
    bucket: str
    prefix: str
    file_key: str
    entry: HistoryEntry
    sources: tuple[LineageRef, ...] = ()
    produces: tuple[str, ...] = ()
    #: For ``record()`` of a finished entry: there was no separate ``step.started``.
    recorded_finished: bool = False
    extra: dict[str, object] = field(default_factory=dict)


class EventSink(Protocol):
    def emit(self, event: StepEvent) -> None: ...


Callback = Callable[[StepEvent], object]


class EventBus:
    """Subscribers by kind; publishing never raises."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Callback]] = []
        self._lock = threading.Lock()

    def on(self, kind: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for events of ``kind`` (``"*"``: all); returns an unsubscribe function."""
        if kind != "*" and kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(EVENT_KINDS)} (or '*')")
        item = (kind, callback)
        with self._lock:
            self._subscribers.append(item)

        def off() -> None:
            with self._lock:
                if item in self._subscribers:
                    self._subscribers.remove(item)

        return off

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: StepEvent) -> None:
        with self._lock:
            wanted = [cb for kind, cb in self._subscribers if kind in ("*", event.kind)]
        for callback in wanted:
            try:
                callback(event)
            except Exception:  # a subscriber never breaks the step
                log.exception("lore: an event subscriber failed on %s of %r", event.kind, event.file_key)
