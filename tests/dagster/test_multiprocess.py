"""A real multiprocess run on a real instance: many steps write lineage to the same histories at once."""

import os
from pathlib import Path

import dagster as dg
import pytest

from lore_core import StepStatus
from lore_dagster import LoreResource

from .pipelines import FANOUT

REPO = Path(__file__).resolve().parents[2]


def test_multiprocess_fanout_loses_no_entry(
    monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance, lore: LoreResource, bucket: str, s3_endpoint: str
) -> None:
    monkeypatch.setenv("LORE_TEST_BUCKET", bucket)
    monkeypatch.setenv("LORE_TEST_S3_ENDPOINT", s3_endpoint)
    # Step processes import the job by module name from the repository root.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    from .pipelines import fanout_job

    with dg.execute_job(dg.reconstructable(fanout_job), instance=instance, raise_on_error=False) as result:
        assert not result.success  # child_broken fails on purpose
        run_id = result.run_id
        pids = {e.pid for e in result.all_events if e.is_step_success}
    assert len(pids) > 1, "steps should have run in separate processes"

    tracker = lore.get_tracker()
    source = tracker.get_history("assets/source")
    assert source is not None
    (source_entry,) = source.entries
    children = [f"assets/child_{i:02d}" for i in range(FANOUT)]
    # Every child's derivedTo link landed on the shared source history despite the concurrent writes.
    assert sorted(r.file_key for r in source.derived_to) == children
    for key in children:
        history = tracker.get_history(key)
        assert history is not None, key
        (entry,) = history.entries
        assert entry.status is StepStatus.SUCCESS
        assert entry.orchestrator is not None and entry.orchestrator.run_id == run_id
        assert [(r.file_key, r.entry_id) for r in history.derived_from] == [("assets/source", source_entry.id)]

    broken = tracker.get_history("assets/child_broken")
    assert broken is not None
    (failed,) = broken.entries  # recorded once, by the step's own process
    assert failed.status is StepStatus.FAILED
    assert failed.error is not None and failed.error.message == "child_broken cannot handle 10 numbers"
    assert failed.input == ["assets/source"]
    assert [f.file_key for f in tracker.list_failed()] == ["assets/child_broken"]
