"""LoreS3IOManager against the local S3 server: objects, serializer rules, history, lineage, metadata, failures."""

import json
import pickle
from typing import Any

import dagster as dg
import pytest

from lore_core import LoreTracker, StepStatus
from lore_dagster import LoreResource, LoreS3IOManager, lore_file_partitions

files = lore_file_partitions("files")


@dg.asset(code_version="v7")
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


def _tracker(lore: LoreResource) -> LoreTracker:
    return lore.get_tracker()


def _latest_metadata(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_outputs_are_stored_and_lineage_spans_runs(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    first = dg.materialize([numbers, total], selection=[numbers], resources=resources, instance=instance)
    assert first.success
    # The downstream asset runs later, in another run: lineage must still name the exact upstream entry.
    second = dg.materialize([numbers, total], selection=[total], resources=resources, instance=instance)
    assert second.success

    body = s3_client.get_object(Bucket=bucket, Key="assets/numbers")
    assert json.loads(body["Body"].read()) == [1, 2, 3]
    assert body["Metadata"]["lore-format"] == "json"
    assert s3_client.get_object(Bucket=bucket, Key="assets/total")["Body"].read() == b"6"

    tracker = _tracker(lore)
    upstream = tracker.get_history("assets/numbers")
    assert upstream is not None
    (up_entry,) = upstream.entries
    assert up_entry.step == "numbers" and up_entry.status is StepStatus.SUCCESS
    assert up_entry.orchestrator is not None
    assert up_entry.orchestrator.system == "dagster"
    assert up_entry.orchestrator.run_id == first.run_id
    assert up_entry.orchestrator.url == f"http://localhost:3000/runs/{first.run_id}"
    assert up_entry.orchestrator.model_dump()["code_version"] == "v7"

    downstream = tracker.get_history("assets/total")
    assert downstream is not None
    assert [(r.file_key, r.entry_id) for r in downstream.derived_from] == [("assets/numbers", up_entry.id)]
    assert downstream.entries[0].orchestrator is not None
    assert downstream.entries[0].orchestrator.run_id == second.run_id
    assert tracker.get_descendants("assets/numbers") == ["assets/total"]

    meta = _latest_metadata(instance, "total")
    assert meta["lore/entry_id"] == downstream.entries[0].id
    assert meta["lore/status"] == "success"
    assert meta["lore/history"] == f"s3://{bucket}/.lore-s3/assets/total.json"
    assert "assets/numbers" in meta["lore/derived_from"] and up_entry.id in meta["lore/derived_from"]
    assert "**assets/total**" in meta["lore/lineage"] and "`assets/numbers`" in meta["lore/lineage"]
    assert meta["lore/successes"] == 1 and meta["lore/failures"] == 0


@dg.asset(partitions_def=files)
def validated(context: dg.AssetExecutionContext) -> dict[str, Any]:
    return {"file": context.partition_key, "ok": True}


@dg.asset(partitions_def=files)
def converted(validated: dict[str, Any]) -> str:
    return f"converted {validated['file']}"


@dg.asset
def summary(converted: dict[str, str]) -> dict[str, Any]:
    return {"files": sorted(converted)}


def test_per_file_partitions_link_each_partition_and_the_summary(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    keys = ["raw/a.csv", "raw/b.csv"]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x,y\n1,2\n")
    instance.add_dynamic_partitions("files", keys)
    for key in keys:
        assert dg.materialize([validated, converted], partition_key=key, resources=resources, instance=instance).success
    assert dg.materialize(
        [validated, converted, summary], selection=[summary], resources=resources, instance=instance
    ).success

    tracker = _tracker(lore)
    for key in keys:
        val = tracker.get_history(f"assets/validated/{key}")
        assert val is not None
        # A root asset on a per-file partition is derived from the file the partition names.
        assert [r.file_key for r in val.derived_from] == [key]
        assert val.entries[0].orchestrator is not None and val.entries[0].orchestrator.partition == key
        conv = tracker.get_history(f"assets/converted/{key}")
        assert conv is not None
        assert [(r.file_key, r.entry_id) for r in conv.derived_from] == [(f"assets/validated/{key}", val.entries[0].id)]
    summ = tracker.get_history("assets/summary")
    assert summ is not None
    assert sorted(r.file_key for r in summ.derived_from) == [f"assets/converted/{k}" for k in keys]
    assert json.loads(s3_client.get_object(Bucket=bucket, Key="assets/summary")["Body"].read()) == {"files": keys}
    lineage = tracker.get_lineage("assets/summary")
    assert lineage is not None
    assert {n.file_key for n in lineage.walk()} >= {"raw/a.csv", "raw/b.csv", "assets/validated/raw/a.csv"}


class _Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_serializer_rules(lore: LoreResource, bucket: str, instance: dg.DagsterInstance, s3_client: Any) -> None:
    @dg.asset
    def raw_bytes() -> bytes:
        return b"\x00\x01binary"

    @dg.asset
    def text() -> str:
        return "héllo"

    @dg.asset
    def point() -> Any:
        return _Point(3)

    @dg.asset
    def echo(raw_bytes: bytes, text: str) -> dict[str, Any]:
        return {"bytes": len(raw_bytes), "text": text}

    strict = {"io_manager": LoreS3IOManager(bucket=bucket, lore=lore)}
    assert dg.materialize([raw_bytes, text, echo], resources=strict, instance=instance).success
    assert s3_client.get_object(Bucket=bucket, Key="assets/raw_bytes")["Body"].read() == b"\x00\x01binary"
    assert s3_client.get_object(Bucket=bucket, Key="assets/text")["Body"].read() == "héllo".encode()
    assert json.loads(s3_client.get_object(Bucket=bucket, Key="assets/echo")["Body"].read()) == {
        "bytes": 8,
        "text": "héllo",
    }

    # Not JSON-able and pickle not allowed: a clear error naming the asset and the type.
    with pytest.raises(TypeError, match=r"asset point: .* got _Point"):
        dg.materialize([point], resources=strict, instance=instance)

    allowed = {"io_manager": LoreS3IOManager(bucket=bucket, lore=lore, allow_pickle=True)}

    @dg.asset
    def point_x(point: Any) -> int:
        return int(point.x)

    assert dg.materialize([point, point_x], resources=allowed, instance=instance).success
    assert s3_client.get_object(Bucket=bucket, Key="assets/point_x")["Body"].read() == b"3"

    # A pickle someone else put where an asset lives is handed over as bytes, never unpickled.
    foreign = pickle.dumps({"not": "lore"})
    s3_client.put_object(Bucket=bucket, Key="assets/foreign", Body=foreign)
    seen: list[Any] = []

    @dg.asset(deps=[])
    def reader(foreign: Any) -> int:
        seen.append(foreign)
        return len(foreign)

    foreign_spec = dg.AssetSpec("foreign")
    assert dg.materialize([foreign_spec, reader], resources=allowed, instance=instance, selection=[reader]).success
    assert seen == [foreign]


def test_failure_is_recorded_for_materialize_and_asset_jobs(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    @dg.asset(partitions_def=files)
    def parsed(context: dg.AssetExecutionContext) -> list[str]:
        raise ValueError(f"malformed CSV in {context.partition_key}: row 3 has 2 columns, expected 3")

    s3_client.put_object(Bucket=bucket, Key="raw/bad.csv", Body=b"a,b,c\n1,2\n")
    instance.add_dynamic_partitions("files", ["raw/bad.csv"])
    result = dg.materialize(
        [parsed], partition_key="raw/bad.csv", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success

    job = dg.define_asset_job("parse_job", selection=[parsed])
    defs = dg.Definitions(assets=[parsed], jobs=[job], resources=resources)
    job_result = defs.resolve_job_def("parse_job").execute_in_process(
        partition_key="raw/bad.csv", instance=instance, raise_on_error=False
    )
    assert not job_result.success

    tracker = _tracker(lore)
    # A per-file partition: the failure lands on the file being processed, not on the output.
    assert tracker.get_history("assets/parsed/raw/bad.csv") is None
    history = tracker.get_history("raw/bad.csv")
    assert history is not None
    failed = [e for e in history.entries if e.status is StepStatus.FAILED]
    assert len(failed) == 2 and len(history.entries) == 2
    for entry, run in zip(failed, (result, job_result), strict=True):
        assert entry.error is not None and entry.error.name == "ValueError"
        assert entry.error.message == "malformed CSV in raw/bad.csv: row 3 has 2 columns, expected 3"
        assert entry.input == ["raw/bad.csv"]
        assert entry.orchestrator is not None
        assert entry.orchestrator.run_id == run.run_id and entry.orchestrator.partition == "raw/bad.csv"
    assert history.entries[1].orchestrator is not None and history.entries[1].orchestrator.job == "parse_job"
    assert sorted(f.entry_id for f in tracker.list_failed(prefix="raw/")) == sorted(e.id for e in failed)
    # Nothing was stored for the failed partition.
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix="assets/parsed/")


def test_tracking_errors_are_logged_not_raised_by_default(
    bucket: str, s3_endpoint: str, instance: dg.DagsterInstance, s3_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The history store's bucket does not exist: the asset still succeeds, and the error is logged.
    broken = LoreResource(store="s3://lore-no-such-bucket-zz/.lore-s3", endpoint_url=s3_endpoint)
    lenient = {"io_manager": LoreS3IOManager(bucket=bucket, lore=broken)}
    with caplog.at_level("ERROR", logger="lore_dagster"):
        assert dg.materialize([numbers], resources=lenient, instance=instance).success
    assert json.loads(s3_client.get_object(Bucket=bucket, Key="assets/numbers")["Body"].read()) == [1, 2, 3]
    assert any(
        "could not record the history of assets/numbers: BucketNotFoundError" in r.getMessage() for r in caplog.records
    )

    strict_lore = LoreResource(
        store="s3://lore-no-such-bucket-zz/.lore-s3", endpoint_url=s3_endpoint, raise_on_error=True
    )
    strict = {"io_manager": LoreS3IOManager(bucket=bucket, lore=strict_lore)}
    assert not dg.materialize([numbers], resources=strict, instance=instance, raise_on_error=False).success


def test_track_context_manager_and_materialize_result_record_the_same_history(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance
) -> None:
    from lore_dagster import lore_lineage_metadata

    @dg.asset
    def tracked_copy(lore: LoreResource) -> None:
        with lore.track("in/a.csv", produces=["out/a.json"]) as step:
            step.output = {"rows": 2}

    @dg.asset
    def declared_copy() -> dg.MaterializeResult:  # type: ignore[type-arg]
        return dg.MaterializeResult(metadata=lore_lineage_metadata(reads=["in/b.csv"], writes=["out/b.json"]))

    @dg.asset
    def tracked_failure(lore: LoreResource) -> None:
        with lore.track("in/c.csv", produces=["out/c.json"]):
            raise RuntimeError("disk full")

    tracker = _tracker(lore)
    tracker.record("in/a.csv", step="upload")
    tracker.record("in/b.csv", step="upload")
    assert dg.materialize([tracked_copy, declared_copy], resources=resources, instance=instance).success
    assert not dg.materialize([tracked_failure], resources=resources, instance=instance, raise_on_error=False).success

    a_src, b_src = tracker.get_history("in/a.csv"), tracker.get_history("in/b.csv")
    a_out, b_out = tracker.get_history("out/a.json"), tracker.get_history("out/b.json")
    assert a_src and b_src and a_out and b_out
    # track(): the entry is on the file it processed; the produced file derives from it.
    assert a_src.latest() is not None and a_src.latest().step == "tracked_copy"  # type: ignore[union-attr]
    assert [r.file_key for r in a_out.derived_from] == ["in/a.csv"]
    # MaterializeResult metadata: the written file gets the entry, derived from what was read.
    assert b_out.latest() is not None and b_out.latest().step == "declared_copy"  # type: ignore[union-attr]
    assert [r.file_key for r in b_out.derived_from] == ["in/b.csv"]
    assert tracker.get_descendants("in/a.csv") == ["out/a.json"]
    assert tracker.get_descendants("in/b.csv") == ["out/b.json"]

    c_src = tracker.get_history("in/c.csv")
    assert c_src is not None
    failed = c_src.latest()
    assert failed is not None and failed.status is StepStatus.FAILED and failed.step == "tracked_failure"
    assert failed.error is not None and "disk full" in failed.error.message
    assert tracker.get_history("out/c.json") is None


class _ClientFactory(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Stands in for dagster_aws's S3Resource: a configurable resource with get_client()."""

    endpoint_url: str

    def get_client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")


def test_an_existing_s3_resource_and_env_vars_configure_the_client(
    bucket: str, s3_endpoint: str, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORE_TEST_STORE", f"s3://{bucket}/.lore-s3")
    lore = LoreResource(store=dg.EnvVar("LORE_TEST_STORE"), s3=_ClientFactory(endpoint_url=s3_endpoint))
    resources = {"io_manager": LoreS3IOManager(bucket=bucket, lore=lore)}
    assert dg.materialize([numbers], resources=resources, instance=instance).success
    # Read back with a tracker built independently: the entry really is in the bucket.
    tracker = LoreTracker.from_url(f"s3://{bucket}/.lore-s3", endpoint_url=s3_endpoint, region="us-east-1")
    history = tracker.get_history("assets/numbers")
    assert history is not None and [e.step for e in history.entries] == ["numbers"]


def test_track_marks_a_replay_from_the_run_tags_and_resolves_the_failure(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance
) -> None:
    from lore_dagster import TAG_ENTRY_ID, TAG_FILE_KEY, TAG_STEP

    attempts: list[int] = []

    @dg.asset
    def resize(lore: LoreResource) -> None:
        with lore.track("img/cat.png", produces=["thumbs/cat.png"]):
            attempts.append(1)
            if len(attempts) == 1:
                raise OSError("truncated PNG")

    assert not dg.materialize([resize], resources=resources, instance=instance, raise_on_error=False).success
    tracker = lore.get_tracker()
    (failure,) = list(tracker.list_failed(step="resize"))
    tags = {TAG_FILE_KEY: "img/cat.png", TAG_ENTRY_ID: failure.entry_id, TAG_STEP: "resize"}
    assert dg.materialize([resize], resources=resources, instance=instance, tags=tags).success

    history = tracker.get_history("img/cat.png")
    assert history is not None
    failed, replayed = history.entries
    assert failed.error is not None and failed.error.message == "truncated PNG"
    assert replayed.replay_of == failed.id and replayed.status is StepStatus.SUCCESS
    assert failed.resolved_by == replayed.id
    assert list(tracker.list_failed()) == []
    assert tracker.get_descendants("img/cat.png") == ["thumbs/cat.png"]


def test_secrets_never_reach_the_bucket_through_the_io_manager_or_track(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    @dg.asset(partitions_def=files)
    def connects(context: dg.AssetExecutionContext) -> list[str]:
        raise ConnectionError("login to warehouse failed: password=pw-LEAK-5")

    @dg.asset
    def exports(context: dg.AssetExecutionContext, lore: LoreResource) -> None:
        with lore.track("exports/out.csv", input={"api_key": "k-LEAK-6", "rows": 2}) as tracked:
            tracked.output = {"Authorization": "Bearer abcdefgh-LEAK-7"}

    instance.add_dynamic_partitions("files", ["raw/secret.csv"])
    failed = dg.materialize(
        [connects], partition_key="raw/secret.csv", resources=resources, instance=instance, raise_on_error=False
    )
    assert not failed.success
    assert dg.materialize([exports], resources=resources, instance=instance).success

    raw = b"".join(
        s3_client.get_object(Bucket=bucket, Key=f".lore-s3/{key}.json")["Body"].read()
        for key in ("assets/connects/raw/secret.csv", "exports/out.csv")
    ).decode()
    for secret in ("pw-LEAK-5", "k-LEAK-6", "abcdefgh-LEAK-7"):
        assert secret not in raw, secret
    tracker = _tracker(lore)
    error_entry = tracker.get_history("assets/connects/raw/secret.csv").entries[-1]  # type: ignore[union-attr]
    assert error_entry.error is not None and error_entry.error.message.endswith("password=***")
    tracked_entry = tracker.get_history("exports/out.csv").entries[-1]  # type: ignore[union-attr]
    assert tracked_entry.input == {"api_key": "***", "rows": 2}
    assert tracked_entry.output == {"Authorization": "***"}
