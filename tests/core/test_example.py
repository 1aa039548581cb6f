"""The README's main job: the example pipeline runs end to end and ends healthy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lore_core import LoreTracker

DEMO = Path(__file__).resolve().parents[2] / "example_projects" / "core_pipeline" / "demo.py"


def test_core_demo_runs_and_repairs_the_failed_file(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    done = subprocess.run([sys.executable, str(DEMO), "--root", str(root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "raw/orders-2026-11-03.csv: FAILED" in done.stdout
    assert "0 failure(s) left" in done.stdout

    tracker = LoreTracker.from_url(root.as_uri())
    history = tracker.get_history("raw/orders-2026-11-03.csv")
    assert history is not None
    assert [(e.step, e.status.value) for e in history.entries] == [
        ("validate", "failed"),
        ("validate", "success"),
        ("convert", "success"),
    ]
    assert history.entries[1].replay_of == history.entries[0].id
    lineage = tracker.get_lineage("summary/orders.json")
    assert lineage is not None
    assert {p.file_key for p in lineage.parents} == {f"converted/orders-2026-11-0{i}.json" for i in (1, 2, 3)}
    assert list(tracker.list_failed()) == []
