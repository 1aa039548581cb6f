"""``LoreResource(openlineage=True)`` (issue 12): every entry a Dagster run records is an OpenLineage run
whose ``parent`` facet is that Dagster run, sent through openlineage-python's client (file transport)."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest

import lore_core.openlineage
from lore_core.openlineage import run_id_for, shared_sink
from lore_dagster import LoreResource, LoreS3IOManager
from tests.core.openlineage_events import file_transport_config, read_events


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


@dg.asset
def report(lore: LoreResource) -> None:
    with lore.track("in/report.csv", produces=["out/report-a.pdf", "out/report-b.pdf"]):
        pass


@dg.asset
def broken(lore: LoreResource) -> None:
    with lore.track("in/broken.csv"):
        raise ValueError("no rows")


def test_each_entry_of_a_dagster_run_is_a_run_under_it(
    bucket: str, s3_endpoint: str, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, log_path = file_transport_config(tmp_path)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.delenv("OPENLINEAGE_DISABLED", raising=False)
    monkeypatch.setattr(lore_core.openlineage, "_shared", {})  # a sink (and client) of this test's own
    namespace = f"dagster-test-{uuid.uuid4().hex[:6]}"
    lore = LoreResource(
        store=f"s3://{bucket}/.lore-s3", endpoint_url=s3_endpoint, openlineage=True, openlineage_namespace=namespace
    )
    resources = {"lore": lore, "io_manager": LoreS3IOManager(bucket=bucket, prefix="assets", lore=lore)}

    result = dg.materialize([numbers, total, report], resources=resources, instance=instance)
    assert result.success
    failed = dg.materialize([broken], resources=resources, instance=instance, raise_on_error=False)
    assert not failed.success
    assert shared_sink(namespace).flush(timeout=60)

    events = read_events(log_path)
    assert events, "nothing was sent"
    assert {e.job.namespace for e in events} == {namespace}
    by_job = {}
    for event in events:
        by_job.setdefault(event.job.name, []).append(event)
    assert {"numbers", "total", "report", "broken"} <= set(by_job)
    for name, runs in by_job.items():
        parent = runs[-1].run.facets["parent"]  # type: ignore[index]
        expected = failed if name == "broken" else result
        assert parent.run.runId == expected.run_id, name  # type: ignore[attr-defined]
        assert (parent.job.namespace, parent.job.name) == ("dagster", expected.dagster_run.job_name)  # type: ignore[attr-defined]

    tracker = lore.get_tracker()
    history = tracker.get_history("in/report.csv")
    assert history is not None
    (entry,) = history.entries
    report_runs = by_job["report"]
    assert [(e.run.runId, e.eventType.value) for e in report_runs] == [
        (run_id_for(entry.id), "START"),
        (run_id_for(entry.id), "COMPLETE"),
    ]
    assert [d.name for d in report_runs[-1].inputs] == ["in/report.csv"]  # type: ignore[union-attr]
    assert [d.name for d in report_runs[-1].outputs] == ["out/report-a.pdf", "out/report-b.pdf"]  # type: ignore[union-attr]
    assert {d.namespace for d in report_runs[-1].outputs} == {f"s3://{bucket}"}  # type: ignore[union-attr]

    fail = by_job["broken"][-1]
    assert fail.eventType.value == "FAIL"
    assert "ValueError: no rows" in fail.run.facets["errorMessage"].message  # type: ignore[index,attr-defined]
