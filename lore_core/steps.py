"""What a step handler sees and returns, and where handlers are found by step name.

Promises: ``StepContext`` is what ``track()`` yields and ``run()`` hands a handler
(set ``ctx.output``, declare products with ``ctx.produce``); ``StepResult`` is what
``run()`` and ``replay()`` return; a replay finds its handler by step name, first
among the tracker's own (``@tracker.step``), then the process-wide ones
(``register_step``). It does not run or record anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .models import ErrorInfo, HistoryEntry, StepStatus

__all__ = ["Handler", "HandlerRegistry", "StepContext", "StepResult", "register_step"]

_F = TypeVar("_F", bound=Callable[..., Any])


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
    """Handed to a step handler (and yielded by ``track()``): what it runs on, and how to report back.

    ``tracker`` is the ``LoreTracker`` running the step. Set ``output`` (or return a
    value from a ``run()`` handler) to record it on success.
    """

    file_key: str
    bucket: str
    step: str
    entry_id: str
    input: Any
    tracker: Any
    replay_of: str | None = None
    produces: list[str] = field(default_factory=list)
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The entry as recorded once the step finished (set by ``track()``).
    recorded: HistoryEntry | None = None
    _attempt: int = field(default=1, repr=False)
    #: Waits for the running entry's write, which overlaps the handler (set by ``track()``).
    _await_start: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    @property
    def attempt(self) -> int:
        """1 + the earlier attempts of this step on this file (``try_number`` for Airflow tasks).

        The running entry is written while the handler runs; reading ``attempt`` waits
        for that write, which is what decides it.
        """
        wait = self._await_start
        if wait is not None:
            wait()
        return self._attempt

    @attempt.setter
    def attempt(self, value: int) -> None:
        self._attempt = value

    def wait_started(self) -> None:
        """Wait until the ``running`` entry is in the history (it is written while the step runs)."""
        if self._await_start is not None:
            self._await_start()

    def produce(self, file_key: str) -> None:
        """Declare that this step wrote ``file_key``; it is recorded as derived from this entry."""
        if file_key not in self.produces:
            self.produces.append(file_key)


Handler = Callable[[StepContext], Any]

_GLOBAL: dict[str, Handler] = {}
_global_lock = threading.Lock()


def register_step(name: str, handler: Handler | None = None) -> Any:
    """Register a step handler for every tracker in the process (usable as a decorator).

    A replay finds its handler by the entry's step name: first among the tracker's
    own (``@tracker.step``), then here.
    """
    if handler is not None:
        with _global_lock:
            _GLOBAL[name] = handler
        return handler

    def decorate(fn: _F) -> _F:
        with _global_lock:
            _GLOBAL[name] = fn
        return fn

    return decorate


class HandlerRegistry:
    """A tracker's own handlers, falling back to the process-wide ones."""

    def __init__(self) -> None:
        self._own: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        self._own[name] = handler

    def get(self, name: str) -> Handler | None:
        return self._own.get(name) or _GLOBAL.get(name)
