"""``file:///path``: the laptop store. The directory plays the bucket.

Objects are plain files at ``<root>/<key>``, in exactly the format S3 holds, so a
history directory can be copied to a bucket as it is. Writes go to a temporary
file that is fsynced and renamed over the target (readers see the old or the
new document, never half of one), and compare-and-swap is made atomic across
threads and processes by an ``flock`` on one of a few lock files under
``<root>/.lore-locks/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidKeyError, StoreError
from .base import ConditionFailed, ListedObject, Store, StoredObject, utf8_sort_key

__all__ = ["FileStore"]

_LOCK_DIR = ".lore-locks"
_LOCK_STRIPES = 64
_TMP_SUFFIX = ".lore-tmp"
_MAX_NAME_BYTES = 255  # NAME_MAX on Linux and macOS


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


class FileStore(Store):
    def __init__(self, root: str | os.PathLike[str], bucket: str | None = None) -> None:
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self.bucket = bucket or self.root.name or "local"
        # Made by the first write, not here: reading (the CLI, a lineage page) creates nothing.
        self._lock_dir_ready = False

    def _lock_dir(self) -> Path:
        lock_dir = self.root / _LOCK_DIR
        if not self._lock_dir_ready:
            try:
                lock_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot use {self.root} as a Lore store: {exc}") from exc
            self._lock_dir_ready = True
        return lock_dir

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts) or parts[0] == _LOCK_DIR:
            raise StoreError(f"refusing object key {key!r}: it would leave {self.root}")
        for part in parts:
            size = len(part.encode("utf-8"))
            if size > _MAX_NAME_BYTES:
                raise InvalidKeyError(
                    f"key {key[:80]!r}... has a path segment of {size} bytes; the file store keeps each "
                    f"segment as a file name, which is limited to {_MAX_NAME_BYTES} bytes (S3 has no such limit)"
                )
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = zlib.crc32(key.encode("utf-8")) % _LOCK_STRIPES
        with open(self._lock_dir() / f"{stripe:02d}.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read(self, key: str, path: Path) -> StoredObject | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.location(key)}: {exc}") from exc
        return StoredObject(data, _etag(data))

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject | None:
        self.stats.add("get")
        found = self._read(key, self._path(key))
        if found is not None and if_none_match is not None and found.etag == if_none_match:
            return StoredObject(b"", found.etag, not_modified=True)
        return found

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        self.stats.add("put")
        path = self._path(key)
        with self._locked(key):
            if if_match is not None or if_none_match:
                current = self._read(key, path)
                if if_none_match and current is not None:
                    raise ConditionFailed(key, 412)
                if if_match is not None and (current is None or current.etag != if_match):
                    raise ConditionFailed(key, 412)
            # A short temporary name of its own: one derived from the target's name would
            # overflow NAME_MAX for long segments.
            tmp = path.with_name(f".{uuid.uuid4().hex}{_TMP_SUFFIX}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise StoreError(f"cannot write {self.location(key)}: {exc}") from exc
        return _etag(data)

    def delete(self, key: str) -> None:
        self.stats.add("delete")
        path = self._path(key)
        if not path.exists():
            return  # nothing to remove: take no lock, create nothing (a read-only caller's repair)
        with self._locked(key), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ListedObject]:
        self.stats.add("list")
        base_parts = prefix.split("/")[:-1]
        base = self.root.joinpath(*base_parts) if base_parts else self.root
        found: list[ListedObject] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != _LOCK_DIR]
                rel_dir = ""
            for name in filenames:
                if name.endswith(_TMP_SUFFIX):
                    continue
                key = f"{rel_dir}/{name}" if rel_dir else name
                if not key.startswith(prefix):
                    continue
                if start_after is not None and utf8_sort_key(key) <= utf8_sort_key(start_after):
                    continue
                try:
                    stat = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                # A change token, not the MD5 that get() returns: a listing must not read every file.
                # Writes replace the file (a new inode, a new mtime), so any change changes it.
                token = f'W/"{stat.st_mtime_ns:x}-{stat.st_size:x}-{stat.st_ino:x}"'
                found.append(ListedObject(key, datetime.fromtimestamp(stat.st_mtime, UTC), token))
        found.sort(key=lambda o: utf8_sort_key(o.key))
        yield from found

    def location(self, key: str) -> str:
        return (self.root / key).as_uri() if key else self.root.as_uri()

    def identity(self) -> str:
        return self.root.as_uri()
