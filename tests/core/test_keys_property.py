"""Property tests: whatever the key, no write can land outside the history prefix."""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lore_core import InvalidKeyError, LoreTracker, StoreError
from lore_core import keys as k

segments = st.one_of(
    st.sampled_from(["..", ".", "", "~lore", "a.json", "x" * 300, "ü", "日本", "%2e%2e", "\\", "\x00", " "]),
    st.text(min_size=0, max_size=12),
)
file_keys = st.one_of(
    st.text(max_size=60),
    st.lists(segments, min_size=1, max_size=6).map("/".join),
    st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
)
prefixes = st.one_of(st.just(".lore-s3"), st.lists(segments, min_size=1, max_size=3).map("/".join))


@settings(max_examples=600, deadline=None)
@given(
    prefix=prefixes,
    key=file_keys,
    entry_id=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s),
    step=st.text(min_size=1, max_size=30),
)
def test_accepted_keys_stay_inside_the_prefix(prefix: str, key: str, entry_id: str, step: str) -> None:
    try:
        prefix = k.validate_prefix(prefix)
        key = k.validate_file_key(key, prefix)
    except InvalidKeyError:
        return
    history = k.history_key(prefix, key)
    assert history.startswith(prefix + "/") and history.endswith(".json")
    assert posixpath.normpath(history) == history  # no '.', '..' or '//' anywhere
    assert k.file_key_from_history_key(prefix, history) == key
    assert len(history.encode()) <= 1024
    index = k.failure_index_key(prefix, key, entry_id, step)
    assert index.startswith(prefix + "/~lore/failed/")
    assert k.parse_failure_index_key(prefix, index) == (key, entry_id, step, None)
    # A history never lands in Lore's reserved namespace, whatever the key.
    assert not history.startswith(k.reserved_root(prefix))


@settings(max_examples=150, deadline=None)
@given(key=file_keys)
def test_file_store_writes_land_under_its_root(key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bucket"
        tracker = LoreTracker.from_url(root.as_uri())
        try:
            tracker.start(key, step="s")
        except InvalidKeyError:
            return
        except StoreError as exc:  # e.g. a segment longer than the file system allows
            assert "File name too long" in str(exc) or "cannot" in str(exc)
            return
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
        assert written and all(p.resolve().is_relative_to(root.resolve()) for p in written)
        assert list(tracker.list_tracked_files()) == [key]
