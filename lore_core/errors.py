"""Errors raised by Lore. Every message names the thing that was wrong."""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "BucketNotFoundError",
    "ConcurrentUpdateError",
    "ConditionalWritesUnsupportedError",
    "CorruptHistoryError",
    "EntryNotFoundError",
    "HistoryNotFoundError",
    "InvalidKeyError",
    "InvalidStoreURLError",
    "InvalidTransitionError",
    "LoreConfigError",
    "LoreError",
    "StepNotRegisteredError",
    "StoreError",
    "StoreUnavailableError",
]


class LoreError(Exception):
    """Base class of every error Lore raises on purpose."""


class InvalidKeyError(LoreError, ValueError):
    """A file key or history prefix is empty, escapes the prefix or is otherwise unusable."""


class LoreConfigError(LoreError, ValueError):
    """An option has a value Lore cannot work with (the message names the option)."""


class InvalidStoreURLError(LoreError, ValueError):
    """A store URL could not be understood."""


class StoreError(LoreError):
    """The store refused or failed a request."""


class StoreUnavailableError(StoreError):
    """The store kept failing with transient errors (5xx, timeouts, dropped connections) past the outage timeout."""


class ConditionalWritesUnsupportedError(StoreError):
    """The store ignores ``If-Match`` / ``If-None-Match``, so concurrent updates would be lost silently."""


class BucketNotFoundError(StoreError):
    """The bucket does not exist."""


class AccessDeniedError(StoreError):
    """The credentials in use may not read or write the object."""


class CorruptHistoryError(LoreError):
    """A history document exists but does not parse. Lore never overwrites it."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"history document {location} is corrupt and was left untouched: {reason}")
        self.location = location
        self.reason = reason

    def __reduce__(self) -> tuple[type[CorruptHistoryError], tuple[str, str]]:
        # Picklable, so it can cross a process pool (a failed unpickle hangs the pool).
        return (type(self), (self.location, self.reason))


class ConcurrentUpdateError(LoreError):
    """A compare-and-swap update kept losing to other writers and gave up."""


class HistoryNotFoundError(LoreError):
    """No history exists for the file key."""


class InvalidTransitionError(LoreError):
    """An entry was asked to end in a state its history rules out (e.g. ``fail()`` after a success)."""


class EntryNotFoundError(LoreError):
    """The history exists but holds no entry with that id."""


class StepNotRegisteredError(LoreError):
    """A replay needs a handler, and none was given or registered for the step."""
