"""``[lore] openlineage = true`` (issue 12): each entry a task records is an OpenLineage run whose
``parent`` facet is the very task run that Airflow's OpenLineage provider emits for that task
instance (and whose ``root`` is the provider's DAG run), proven against the provider's own events
from the same ``dag.test()`` runs (the provider writes to a file of its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.core.openlineage_events import file_transport_config, read_events

from .conftest import RunDags

NAMESPACE = "ol-test-airflow"  # the provider's namespace ($OPENLINEAGE_NAMESPACE): part of its run ids


@pytest.fixture(scope="module")
def world(run_dags: RunDags, make_bucket: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bucket = make_bucket()
    where = tmp_path_factory.mktemp("openlineage")
    config, lore_log = file_transport_config(where)
    provider_log = where / "provider-events.jsonl"
    result = run_dags(
        ["ol_lineage"],
        LORE_TEST_BUCKET=bucket,
        AIRFLOW__LORE__STORE=f"s3://{bucket}/.lore-s3",
        AIRFLOW__LORE__AWS_CONN_ID="lore_s3",
        AIRFLOW__LORE__ENDPOINT_URL="",
        AIRFLOW__LORE__OPENLINEAGE="True",
        # Lore's client: the standard way (OPENLINEAGE_CONFIG). The provider's: its own [openlineage] transport.
        OPENLINEAGE_CONFIG=str(config),
        OPENLINEAGE_NAMESPACE=NAMESPACE,
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(provider_log), "append": True}
        ),
    )
    return {"result": result, "lore": read_events(lore_log), "provider": _raw(provider_log), "bucket": bucket}


def _raw(path: Path) -> list[dict[str, Any]]:
    assert path.exists(), "the OpenLineage provider emitted nothing"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _provider_task_runs(world: dict[str, Any]) -> dict[str, set[tuple[str, str | None]]]:
    """Per provider job (``dag.task``): its task run ids, with the DAG run id its parent facet names."""
    runs: dict[str, set[tuple[str, str | None]]] = {}
    for event in world["provider"]:
        name = event["job"]["name"]
        if event["job"]["namespace"] != NAMESPACE or "." not in name:
            continue  # the DAG run's own events
        parent = (event["run"].get("facets") or {}).get("parent")
        runs.setdefault(name, set()).add((event["run"]["runId"], parent["run"]["runId"] if parent else None))
    return runs


def test_lore_runs_hang_under_the_providers_task_runs(world: dict[str, Any]) -> None:
    result = world["result"]["ol_lineage"]
    assert result["tis"]["join"]["state"] == "success" and result["tis"]["broken"]["state"] == "failed"
    provider = _provider_task_runs(world)
    assert {"ol_lineage.join", "ol_lineage.split", "ol_lineage.broken"} <= set(provider), sorted(provider)
    lore = world["lore"]
    assert lore, "Lore sent nothing"
    seen_tasks = set()
    for event in lore:
        assert event.job.namespace == "lore"
        parent = event.run.facets["parent"]  # type: ignore[index]
        task_job = parent.job.name  # type: ignore[attr-defined]
        assert parent.job.namespace == NAMESPACE  # type: ignore[attr-defined]
        # The provider's own task run for that task instance: same run id, and the same DAG run as root.
        assert (parent.run.runId, parent.root.run.runId) in provider[task_job], (task_job, provider[task_job])  # type: ignore[attr-defined]
        assert (parent.root.job.namespace, parent.root.job.name) == (NAMESPACE, "ol_lineage")  # type: ignore[attr-defined]
        seen_tasks.add(task_job)
    assert seen_tasks == {"ol_lineage.join", "ol_lineage.split", "ol_lineage.broken"}
    # The mapped task's two instances are two task runs (map index 0 and 1), each the parent of its entry.
    split_parents = {e.run.facets["parent"].run.runId for e in lore if e.job.name == "ol_lineage.split"}  # type: ignore[index,attr-defined]
    assert len(split_parents) == 2 == len(provider["ol_lineage.split"])


def test_a_task_with_two_inlets_and_two_outlets(world: dict[str, Any]) -> None:
    bucket = f"s3://{world['bucket']}"
    join = [e for e in world["lore"] if e.job.name == "ol_lineage.join"]
    # One entry per inlet, each one run: START then COMPLETE, reading its file, writing both outlets.
    by_run: dict[str, list[Any]] = {}
    for event in join:
        by_run.setdefault(event.run.runId, []).append(event)
    assert len(by_run) == 2
    inputs = set()
    for events in by_run.values():
        assert [e.eventType.value for e in events] == ["START", "COMPLETE"]
        complete = events[-1]
        inputs |= {(d.namespace, d.name) for d in complete.inputs}  # type: ignore[union-attr]
        assert [(d.namespace, d.name) for d in complete.outputs] == [(bucket, "out/x.csv"), (bucket, "out/y.csv")]  # type: ignore[union-attr]
    assert inputs == {(bucket, "raw/a.csv"), (bucket, "raw/b.csv")}


def test_a_failed_task_sends_fail_with_the_error(world: dict[str, Any]) -> None:
    (start, fail) = [e for e in world["lore"] if e.job.name == "ol_lineage.broken"]
    assert (start.eventType.value, fail.eventType.value) == ("START", "FAIL")
    error = fail.run.facets["errorMessage"]  # type: ignore[index]
    assert "row 7 has no id" in error.message and error.programmingLanguage == "PYTHON"  # type: ignore[attr-defined]
