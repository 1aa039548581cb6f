"""issue 8, defect 6 (the smaller items): lone surrogates, MemoryStore instances of one name,
derived keys over S3's 1,024 bytes, file-store segments, and option values that were accepted
or silently changed. Each gets a clear error or a correct result."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lore_core
from lore_core import InvalidKeyError, LoreTracker, StepStatus
from lore_core.stores import ConditionFailed

from .support import open_tracker, stored_document

SURROGATE = "\udcff"  # what os.fsdecode makes of an undecodable byte: not encodable as UTF-8

# ---------------------------------------------------------------------------------------------- surrogates


@pytest.mark.parametrize("operation", ["run", "start", "record", "get_history"])
def test_lone_surrogate_in_a_file_key_is_an_invalid_key(tracker: LoreTracker, operation: str) -> None:
    """issue 8, defect 6: a file key holding a lone surrogate raises InvalidKeyError (today a
    UnicodeEncodeError escapes)."""
    key = f"in/bad-{SURROGATE}.csv"
    calls: dict[str, Callable[[], object]] = {
        "run": lambda: tracker.run(key, step="s", handler=lambda ctx: None),
        "start": lambda: tracker.start(key, step="s"),
        "record": lambda: tracker.record(key, step="s"),
        "get_history": lambda: tracker.get_history(key),
    }
    with pytest.raises(InvalidKeyError):
        calls[operation]()


def _raise_with_surrogate(ctx: Any) -> None:
    raise ValueError(f"cannot decode {SURROGATE} in row 3")


SURROGATE_RUNS: dict[str, dict[str, Any]] = {
    "input": {"input": {"name": f"report-{SURROGATE}.csv"}, "handler": lambda ctx: "ok"},
    "error message": {"handler": _raise_with_surrogate},
    "metadata": {"metadata": {"source": f"dir-{SURROGATE}"}, "handler": lambda ctx: "ok"},
    "output": {"handler": lambda ctx: {"name": f"out-{SURROGATE}"}},
}


@pytest.mark.parametrize("where", list(SURROGATE_RUNS))
def test_lone_surrogate_in_a_value_still_finishes_the_step(tracker: LoreTracker, where: str) -> None:
    """issue 8, defect 6: a lone surrogate in the input, the handler's exception message, the
    metadata (or the output) never escapes ``run()`` as UnicodeEncodeError: the step finishes
    (success or failed), its entry is not left running, and the stored document is valid UTF-8
    JSON."""
    result = tracker.run("in/values.csv", step="s", **SURROGATE_RUNS[where])

    assert result.status in (StepStatus.SUCCESS, StepStatus.FAILED)
    assert result.status == (StepStatus.FAILED if where == "error message" else StepStatus.SUCCESS)
    history = tracker.get_history("in/values.csv")
    assert history is not None
    assert [e.status for e in history.entries] == [result.status]
    document = json.loads(stored_document(tracker, "in/values.csv").decode("utf-8"))  # strict UTF-8
    assert document["entries"][0]["status"] == result.status.value
    if where == "error message":
        assert [f.entry_id for f in tracker.list_failed()] == [result.entry_id]


# ---------------------------------------------------------------------------------------------- MemoryStore


class _StallingBytes:
    """A body whose conversion to bytes waits until released: it holds a put between its
    condition check and its write, wherever the store does the conversion."""

    def __init__(self, paused: threading.Event, resume: threading.Event) -> None:
        self.paused, self.resume = paused, resume

    def __bytes__(self) -> bytes:
        self.paused.set()
        self.resume.wait(20)
        return b"written by A"


def test_memory_stores_of_one_name_share_one_compare_and_swap() -> None:
    """issue 8, defect 6: two ``memory://`` trackers of the same name share data, so they must share
    the compare-and-swap too (today each instance has its own lock: 130 of 4,000 acknowledged
    entries were lost).

    Deterministic part: A's conditional put is held inside the store (its body converts to bytes
    only when released) while B puts with the same If-Match: exactly one of the two may succeed.
    Load part: 8 threads record on one file through the two instances alternately; every entry
    is kept."""
    name = f"memory://shared-{uuid.uuid4().hex[:8]}"
    first, second = LoreTracker.from_url(name), LoreTracker.from_url(name)
    store_a, store_b = first.store, second.store
    etag = store_a.put("probe/k", b"v0")
    paused, resume = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def put(label: str, store: Any, body: Any) -> None:
        try:
            store.put("probe/k", body, if_match=etag)
            outcomes[label] = "written"
        except ConditionFailed:
            outcomes[label] = "412"

    held = threading.Thread(target=put, args=("A", store_a, _StallingBytes(paused, resume)), daemon=True)
    held.start()
    assert paused.wait(20), "A's put never reached its write"
    racing = threading.Thread(target=put, args=("B", store_b, b"written by B"), daemon=True)
    racing.start()
    # Give B the chance to slip in while A is held (with one shared lock it cannot, and waits);
    # the outcome asserted below does not depend on how long this is.
    racing.join(1.0)
    resume.set()
    held.join(20)
    racing.join(20)
    assert sorted(outcomes.values()) == ["412", "written"], outcomes

    trackers = [LoreTracker.from_url(name, cas_max_attempts=10_000) for _ in range(2)]
    start = threading.Barrier(8, timeout=20)
    failures: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            start.wait()
            for i in range(50):
                trackers[(w + i) % 2].record("shared.csv", step=f"w{w}", input={"i": i})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    history = LoreTracker.from_url(name).get_history("shared.csv", include_archived=True)
    assert history is not None
    kept = {(e.step, e.input["i"]) for e in history.entries}
    assert len(history.entries) == 400 and kept == {(f"w{w}", i) for w in range(8) for i in range(50)}


# ---------------------------------------------------------------------------------------------- derived keys

# A file key of 950 bytes: its history key (.lore-s3/<key>.json, 964 bytes) fits S3's 1,024, but
# the failure-index / running-marker key (.lore-s3/~lore/failed/<key>/<entry id>/<step>) does not.
LONG_KEY = "/".join(["k" * 99] * 9) + "/" + "z" * 50
STEP_60 = "s" * 60


def _derived_key_cases() -> dict[str, tuple[str, str]]:
    return {"950-byte key, 60-char step": (LONG_KEY, STEP_60), "1,100-char step": ("in/a.csv", "t" * 1100)}


@pytest.mark.parametrize("case", list(_derived_key_cases()))
@pytest.mark.parametrize("operation", ["start", "run", "record(failed)"])
def test_derived_keys_over_s3_limit_are_refused_before_any_write(
    store_url: str, request: pytest.FixtureRequest, case: str, operation: str
) -> None:
    """issue 8, defect 6: a key or step whose history key fits in 1,024 bytes but whose index or
    marker key would not is refused with InvalidKeyError before anything is written (today the
    history is written and the index write fails or lands over the limit)."""
    file_key, step = _derived_key_cases()[case]
    assert len(f".lore-s3/{file_key}.json".encode()) <= 1024
    tracker = open_tracker(store_url, request)
    ran: list[str] = []
    calls: dict[str, Callable[[], object]] = {
        "start": lambda: tracker.start(file_key, step=step),
        "run": lambda: tracker.run(file_key, step=step, handler=lambda ctx: ran.append(ctx.entry_id)),
        "record(failed)": lambda: tracker.record(file_key, step=step, status="failed", error="boom"),
    }
    tracker.store.stats.reset()

    with pytest.raises(InvalidKeyError):
        calls[operation]()

    requests = tracker.store.stats.snapshot()
    assert requests.get("put", 0) == 0 and requests.get("delete", 0) == 0, requests
    assert ran == []


# ---------------------------------------------------------------------------------------------- file store


def test_file_store_takes_a_230_byte_segment_end_to_end(tmp_path: Path) -> None:
    """issue 8, defect 6: on the file store a key whose last segment is 230 bytes works end to end:
    a step, its history, a failure, the failure index and its replay (today names over ~208
    bytes fail, because the temporary file's name grows past 255)."""
    tracker = LoreTracker.from_url((tmp_path / "bucket").as_uri())
    key = "in/" + "s" * 230

    assert tracker.run(key, step="ok", handler=lambda ctx: 1).status == StepStatus.SUCCESS
    failed = tracker.run(key, step="bad", handler=lambda ctx: 1 / 0)
    assert failed.status == StepStatus.FAILED
    history = tracker.get_history(key)
    assert history is not None and [e.step for e in history.entries] == ["ok", "bad"]
    assert [(f.file_key, f.entry_id) for f in tracker.list_failed()] == [(key, failed.entry_id)]
    replayed = tracker.replay(key, failed.entry_id, handler=lambda ctx: 2)
    assert replayed.status == StepStatus.SUCCESS and list(tracker.list_failed()) == []
    assert list(tracker.list_tracked_files()) == [key]


@pytest.mark.parametrize(
    "key",
    ["in/" + "s" * 300, "in/" + "\u00e9" * 130, "d" * 256 + "/f.csv"],
    ids=["300-byte-name", "260-byte-utf8-name", "256-byte-directory"],
)
def test_file_store_refuses_segments_over_255_bytes_by_name(tmp_path: Path, key: str) -> None:
    """issue 8, defect 6: on the file store a key segment over 255 bytes (the file-name limit) is an
    InvalidKeyError that names the limit, and nothing is left in the store (today: an OS error)."""
    root = tmp_path / "bucket"
    tracker = LoreTracker.from_url(root.as_uri())
    with pytest.raises(InvalidKeyError, match="255"):
        tracker.run(key, step="s", handler=lambda ctx: None)
    with pytest.raises(InvalidKeyError, match="255"):
        tracker.record(key, step="s")
    left = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert [p for p in left if not p.startswith(".lore-locks/")] == []


# ---------------------------------------------------------------------------------------------- options


BAD_OPTIONS = [
    ("max_entries", 0),
    ("max_entries", -5),
    ("outage_timeout", -1),
    ("lease_seconds", 0),
    ("lease_seconds", -1),
    ("cas_max_attempts", 0),
    ("cache_size", -1),
]


@pytest.mark.parametrize("where", ["from_url", "constructor"])
@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS, ids=[f"{o}={v}" for o, v in BAD_OPTIONS])
def test_invalid_option_values_are_refused_by_name(
    option: str, value: float, where: str, s3_client: Any, bucket: str
) -> None:
    """issue 8, defect 6: an option value Lore cannot work with raises LoreConfigError (a LoreError
    and a ValueError) naming the option (today max_entries=0 and outage_timeout=-1 are accepted)."""
    with pytest.raises(ValueError, match=option) as refused:
        if where == "from_url":
            LoreTracker.from_url(f"memory://opts-{uuid.uuid4().hex[:8]}", **{option: value})
        else:
            LoreTracker(bucket=bucket, s3_client=s3_client, **{option: value})
    assert isinstance(refused.value, lore_core.LoreConfigError)
    assert isinstance(refused.value, lore_core.LoreError)


def test_max_entries_is_honoured_as_given(store_url: str, request: pytest.FixtureRequest) -> None:
    """issue 8, defect 6: ``max_entries=3`` keeps at most 3 finished entries in the live document
    (today it is silently raised to 10); the rest are in archive segments, and cache_size=0 and
    outage_timeout=0 are valid."""
    tracker = open_tracker(store_url, request, max_entries=3, cache_size=0, outage_timeout=0)
    ids = [tracker.record("busy.csv", step=f"s{i}", input={"i": i}).id for i in range(10)]

    live = tracker.get_history("busy.csv")
    assert live is not None
    assert len(live.entries) <= 3, f"live document keeps {len(live.entries)} entries"
    full = tracker.get_history("busy.csv", include_archived=True)
    assert full is not None and [e.id for e in full.entries] == ids
