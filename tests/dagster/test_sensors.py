"""The replay sensor and the per-file partitions sensor, evaluated against a real instance and the local S3 server."""

import csv
import io
from typing import Any

import dagster as dg

from lore_core import StepStatus
from lore_dagster import (
    TAG_ENTRY_ID,
    TAG_FILE_KEY,
    TAG_STEP,
    LoreResource,
    build_lore_replay_sensor,
    build_s3_file_partitions_sensor,
    lore_file_partitions,
)

files = lore_file_partitions("files")


@dg.asset(partitions_def=files)
def rows(context: dg.AssetExecutionContext, lore: LoreResource) -> list[dict[str, str]]:
    """Parse the uploaded CSV the partition names; a short row is an error."""
    bucket = lore.get_tracker().bucket
    body = lore.get_s3_client().get_object(Bucket=bucket, Key=context.partition_key)["Body"].read().decode()
    parsed = list(csv.DictReader(io.StringIO(body)))
    for number, row in enumerate(parsed, start=2):
        if None in row.values():
            raise ValueError(f"{context.partition_key}: row {number} is missing a column")
    return parsed


@dg.asset(partitions_def=files)
def row_count(rows: list[dict[str, str]]) -> int:
    return len(rows)


job = dg.define_asset_job("per_file", selection=[rows, row_count])


def _defs(resources: dict[str, Any], *sensors: dg.SensorDefinition) -> dg.Definitions:
    return dg.Definitions(assets=[rows, row_count], jobs=[job], resources=resources, sensors=list(sensors))


def _evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, resources: dict[str, Any]) -> Any:
    """Call the sensor directly, as a test or a script would."""
    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
        return sensor(context)


def _tick(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, resources: dict[str, Any]) -> Any:
    """Evaluate a tick the way the sensor daemon does (resources through the context)."""
    sensor = defs.resolve_sensor_def(name)
    # The daemon loads dynamic partitions through the instance it runs with.
    with (
        dg.partition_loading_context(dynamic_partitions_store=instance),
        dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context,
    ):
        return sensor.evaluate_tick(context)


def _requests(result: Any) -> list[dg.RunRequest]:
    # A SensorResult from a direct call, or the SensorExecutionData of a daemon-style tick.
    assert not isinstance(result, dg.SkipReason) and not getattr(result, "skip_message", None), result
    return list(result.run_requests or [])


def test_replay_sensor_requests_one_run_per_failure_and_the_replay_clears_it(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="raw/good.csv", Body=b"a,b\n1,2\n3,4\n")
    s3_client.put_object(Bucket=bucket, Key="raw/bad.csv", Body=b"a,b\n1,2\n3\n")
    instance.add_dynamic_partitions("files", ["raw/good.csv", "raw/bad.csv"])
    sensor = build_lore_replay_sensor(job=job, prefix="raw/")
    defs = _defs(resources, sensor)
    per_file = defs.resolve_job_def("per_file")
    assert per_file.execute_in_process(partition_key="raw/good.csv", instance=instance).success
    assert not per_file.execute_in_process(partition_key="raw/bad.csv", instance=instance, raise_on_error=False).success

    tracker = lore.get_tracker()
    (failure,) = list(tracker.list_failed())
    assert (failure.file_key, failure.step) == ("raw/bad.csv", "rows")

    (request,) = _requests(_evaluate(defs, sensor.name, instance, resources))
    assert request.run_key == failure.entry_id
    assert request.partition_key == "raw/bad.csv"
    assert request.tags[TAG_FILE_KEY] == "raw/bad.csv"
    assert request.tags[TAG_ENTRY_ID] == failure.entry_id
    assert request.tags[TAG_STEP] == "rows"
    # A second tick asks for the same run_key, so Dagster never launches it twice.
    again = _tick(defs, sensor.name, instance, resources)
    assert [(r.run_key, r.partition_key, r.tags[TAG_ENTRY_ID]) for r in again.run_requests] == [
        (failure.entry_id, "raw/bad.csv", failure.entry_id)
    ]

    # The operator repairs the upload; the requested run replays the failed partition.
    s3_client.put_object(Bucket=bucket, Key="raw/bad.csv", Body=b"a,b\n1,2\n3,0\n")
    replay = per_file.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance)
    assert replay.success

    # The file's own history: the failed step, its replay, then the downstream step.
    history = tracker.get_history("raw/bad.csv")
    assert history is not None
    failed, succeeded, counted = history.entries
    assert (failed.step, succeeded.step, counted.step) == ("rows", "rows", "row_count")
    assert failed.status is StepStatus.FAILED and failed.resolved_by == succeeded.id
    assert succeeded.status is StepStatus.SUCCESS and succeeded.replay_of == failure.entry_id
    assert succeeded.orchestrator is not None and succeeded.orchestrator.run_id == replay.run_id
    assert counted.status is StepStatus.SUCCESS and counted.replay_of is None
    good = tracker.get_history("raw/good.csv")
    assert good is not None and [(e.step, str(e.status)) for e in good.entries] == [
        ("rows", "success"),
        ("row_count", "success"),
    ]
    output = tracker.get_history("assets/rows/raw/bad.csv")
    assert output is not None and [str(e.status) for e in output.entries] == ["success"]
    # The asset page counts this step's runs on the file it processed: one failure, one success.
    event = instance.get_latest_materialization_event(dg.AssetKey("rows"))
    assert event is not None and event.asset_materialization is not None
    shown = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert (shown["lore/failures"], shown["lore/successes"], shown["lore/processed_file"]) == (1, 1, "raw/bad.csv")
    # Only the replayed step is marked as a replay; its downstream is a plain first success.
    count = tracker.get_history("assets/row_count/raw/bad.csv")
    assert count is not None and count.entries[0].replay_of is None
    assert [r.file_key for r in count.derived_from] == ["assets/rows/raw/bad.csv"]
    assert list(tracker.list_failed()) == []
    assert isinstance(_evaluate(defs, sensor.name, instance, resources), dg.SkipReason)


def test_replay_sensor_filters_by_step_and_prefix_and_caps_replays(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance
) -> None:
    instance.add_dynamic_partitions("files", ["raw/x.csv", "raw/y.csv"])
    tracker = lore.get_tracker()
    tracker.record(
        "assets/rows/raw/x.csv",
        step="rows",
        status="failed",
        error="bad x",
        orchestrator={"system": "dagster", "partition": "raw/x.csv"},
    )
    tracker.record(
        "assets/row_count/raw/y.csv",
        step="row_count",
        status="failed",
        error="bad y",
        orchestrator={"system": "dagster", "partition": "raw/y.csv"},
    )
    first = tracker.record("other/z.csv", step="rows", status="failed", error="bad z")
    # z has already been replayed (and failed again) twice: with max_replays=2 it is left alone.
    second = tracker.record("other/z.csv", step="rows", status="failed", error="still bad", replay_of=first.id)
    tracker.record("other/z.csv", step="rows", status="failed", error="still bad", replay_of=second.id)

    by_step = build_lore_replay_sensor(job=job, step="row_count", name="by_step", failed_asset_only=True)
    by_prefix = build_lore_replay_sensor(job=job, prefix="assets/rows/", name="by_prefix")
    capped = build_lore_replay_sensor(job=job, prefix="other/", name="capped", max_replays=2)
    defs = _defs(resources, by_step, by_prefix, capped)

    (step_request,) = _requests(_evaluate(defs, "by_step", instance, resources))
    assert step_request.tags[TAG_FILE_KEY] == "assets/row_count/raw/y.csv"
    assert step_request.partition_key == "raw/y.csv"
    assert step_request.asset_selection == [dg.AssetKey("row_count")]
    (prefix_request,) = _requests(_tick(defs, "by_prefix", instance, resources))
    assert prefix_request.tags[TAG_FILE_KEY] == "assets/rows/raw/x.csv"
    assert prefix_request.asset_selection is None
    # Failures resolve only on success, so all three are open; the one at the cap is not requested.
    capped_requests = _requests(_evaluate(defs, "capped", instance, resources))
    assert sorted(str(r.run_key) for r in capped_requests) == sorted([first.id, second.id])


def test_file_partitions_sensor_adds_new_keys_once(
    resources: dict[str, Any], instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    for key in ("raw/a.csv", "raw/b.csv", "raw/notes.txt", "raw/", "elsewhere/c.csv"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"a\n1\n")
    sensor = build_s3_file_partitions_sensor(files, bucket=bucket, prefix="raw/", suffixes=[".csv"], job=job)
    defs = _defs(resources, sensor)

    result = _evaluate(defs, sensor.name, instance, resources)
    requests = _requests(result)
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys or []) == ["raw/a.csv", "raw/b.csv"]
    assert sorted(str(r.partition_key) for r in requests) == ["raw/a.csv", "raw/b.csv"]
    assert sorted(str(r.run_key) for r in requests) == ["file:raw/a.csv", "file:raw/b.csv"]

    instance.add_dynamic_partitions("files", list(add.partition_keys or []))
    assert isinstance(_evaluate(defs, sensor.name, instance, resources), dg.SkipReason)
    s3_client.put_object(Bucket=bucket, Key="raw/c.csv", Body=b"a\n1\n")
    later = _requests(_evaluate(defs, sensor.name, instance, resources))
    assert [r.partition_key for r in later] == ["raw/c.csv"]


def test_file_partitions_sensor_lists_past_one_page(
    resources: dict[str, Any], instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    # S3 returns at most 1,000 keys per LIST: keys on the second page must not be missed.
    keys = [f"raw/{i:04d}.csv" for i in range(1003)]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"")
    sensor = build_s3_file_partitions_sensor(files, bucket=bucket, prefix="raw/")
    result = _evaluate(_defs(resources, sensor), sensor.name, instance, resources)
    assert _requests(result) == []
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys or []) == keys
