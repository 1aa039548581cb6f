"""Kill a process in the middle of a file-store write: no reader ever sees a document that does not
parse, temporary files are never listed, and the next writer carries on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lore_core import LoreTracker

ROOT = Path(__file__).resolve().parents[2]


def _spawn(root: Path, pause_after: int) -> subprocess.Popen[str]:
    code = (
        f"from tests.core.workers import write_until_killed; "
        f"write_until_killed({str(root)!r}, 'big/file.bin', {pause_after})"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _check_intact(root: Path, at_least: int) -> None:
    tracker = LoreTracker.from_url(root.as_uri())
    history = tracker.get_history("big/file.bin", include_archived=True)  # parses, or this raises
    assert history is not None and len(history.entries) >= at_least
    assert list(tracker.list_tracked_files()) == ["big/file.bin"]
    # The lock held by the dead process is gone: a new writer goes through.
    tracker.run("big/file.bin", step="after-crash", handler=lambda ctx: None)
    assert tracker.get_history("big/file.bin").entries[-1].step == "after-crash"  # type: ignore[union-attr]


def test_kill_between_temporary_file_and_rename(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    worker = _spawn(root, pause_after=3)
    try:
        assert worker.stdout is not None
        lines = [worker.stdout.readline().strip() for _ in range(4)]
        assert lines[:3] == ["done 0", "done 1", "done 2"] and lines[3].startswith("paused "), lines
        temporary = Path(lines[3].split(" ", 1)[1])
        assert temporary.exists()  # the new document is fully written, just not renamed
    finally:
        worker.kill()
        worker.wait(timeout=30)
    _check_intact(root, at_least=3)


def test_kill_at_an_arbitrary_moment_during_large_writes(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    worker = _spawn(root, pause_after=-1)
    try:
        assert worker.stdout is not None
        for _ in range(5):  # kill while it is busy writing large documents
            assert worker.stdout.readline().startswith("done ")
    finally:
        worker.kill()
        worker.wait(timeout=30)
    _check_intact(root, at_least=5)
