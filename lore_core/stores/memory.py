"""``memory://name``: an in-process store for unit tests. Stores of the same name share data."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from .base import ConditionFailed, ListedObject, Store, StoredObject, utf8_sort_key

__all__ = ["MemoryStore"]

# Stores of one name share their objects *and* their lock: a lock per instance would let
# two instances' compare-and-swap interleave and lose updates.
_registry: dict[str, tuple[dict[str, tuple[bytes, str, datetime]], threading.Lock]] = {}
_registry_lock = threading.Lock()


class MemoryStore(Store):
    def __init__(self, name: str = "memory") -> None:
        super().__init__()
        self.bucket = name
        with _registry_lock:
            self._objects, self._lock = _registry.setdefault(name, ({}, threading.Lock()))

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject | None:
        self.stats.add("get")
        with self._lock:
            found = self._objects.get(key)
        if found is not None and if_none_match is not None and found[1] == if_none_match:
            return StoredObject(b"", found[1], not_modified=True)
        return None if found is None else StoredObject(found[0], found[1])

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        self.stats.add("put")
        with self._lock:
            current = self._objects.get(key)
            if if_none_match and current is not None:
                raise ConditionFailed(key, 412)
            if if_match is not None and (current is None or current[1] != if_match):
                raise ConditionFailed(key, 412)
            etag = f'"{uuid.uuid4().hex}"'
            self._objects[key] = (bytes(data), etag, datetime.now(UTC))
            return etag

    def delete(self, key: str) -> None:
        self.stats.add("delete")
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ListedObject]:
        self.stats.add("list")
        with self._lock:
            keys = [(k, v[2], v[1]) for k, v in self._objects.items() if k.startswith(prefix)]
        after = utf8_sort_key(start_after) if start_after is not None else None
        for key, modified, etag in sorted(keys, key=lambda kv: utf8_sort_key(kv[0])):
            if after is None or utf8_sort_key(key) > after:
                yield ListedObject(key, modified, etag)

    def location(self, key: str) -> str:
        return f"memory://{self.bucket}/{key}"

    def identity(self) -> str:
        return f"memory://{self.bucket}"

    @staticmethod
    def reset(name: str | None = None) -> None:
        """Forget the objects of one named store, or of all of them."""
        with _registry_lock:
            for store_name, (objects, lock) in _registry.items():
                if name is None or store_name == name:
                    with lock:
                        objects.clear()
