"""Many threads and processes writing one file at once lose no entry.

The S3 endpoint is moto behind one lock per request, so its conditional writes
are atomic as on S3; the file store locks across processes itself.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lore_core import LoreTracker, StepStatus

from .workers import run_steps


@pytest.fixture(params=["s3", "file"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('bucket')}/.lore-s3", request.getfixturevalue("s3_endpoint")
    return (tmp_path / "bucket").as_uri(), None


def _check(url: str, endpoint: str | None, ids: list[str], workers: int, runs: int) -> None:
    tracker = LoreTracker.from_url(url, endpoint_url=endpoint, region="us-east-1")
    history = tracker.get_history("shared/file.csv", include_archived=True)
    assert history is not None
    stored = [e.id for e in history.entries]
    assert len(stored) == workers * runs == len(set(stored))
    assert set(stored) == set(ids)
    assert all(e.status is StepStatus.SUCCESS for e in history.entries)
    # Every produced file got its history and the source lists every one of them.
    assert len(history.derived_to) == workers * runs
    assert len(list(tracker.list_tracked_files(prefix="derived/"))) == workers * runs


def test_sixteen_threads_ten_runs_each(shared_url: tuple[str, str | None]) -> None:
    url, endpoint = shared_url
    barrier = threading.Barrier(16)

    def worker(n: int) -> list[str]:
        barrier.wait()  # start together so the writes really collide
        return run_steps(url, endpoint, "shared/file.csv", n, 10)

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = [i for chunk in pool.map(worker, range(16)) for i in chunk]
    _check(url, endpoint, ids, 16, 10)


def test_sixteen_threads_sharing_one_tracker(s3_endpoint: str, bucket: str) -> None:
    tracker = LoreTracker.from_url(f"s3://{bucket}", endpoint_url=s3_endpoint)

    def worker(n: int) -> list[str]:
        return [tracker.run("shared/file.csv", step="s", handler=lambda ctx: n).entry_id for _ in range(10)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = [i for chunk in pool.map(worker, range(16)) for i in chunk]
    history = tracker.get_history("shared/file.csv", include_archived=True)
    assert history is not None and sorted(e.id for e in history.entries) == sorted(ids) and len(ids) == 160


def test_four_processes_twenty_five_runs_each(shared_url: tuple[str, str | None]) -> None:
    url, endpoint = shared_url
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        chunks = pool.starmap(run_steps, [(url, endpoint, "shared/file.csv", n, 25) for n in range(4)])
    _check(url, endpoint, [i for chunk in chunks for i in chunk], 4, 25)
