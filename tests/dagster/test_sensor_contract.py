"""Sensors and imports as a platform team reviews them (issue 9): the per-file partitions sensor
honours the configured history prefix (it hard-coded ``/.lore-s3/``: with a custom prefix, history
documents and failure-index objects became partitions and runs); sensors take their
``LoreResource`` as a typed resource parameter; ``lore_dagster`` imports no private Dagster module."""

import ast
import inspect
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import lore_dagster
from lore_dagster import LoreResource, build_lore_replay_sensor, build_s3_file_partitions_sensor, lore_file_partitions

files = lore_file_partitions("files")


@dg.asset(partitions_def=files)
def seen(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


job = dg.define_asset_job("seen_job", selection=[seen])


@pytest.mark.parametrize("prefix", ["_lore", "meta/history"])
def test_file_partitions_sensor_skips_lores_objects_under_a_custom_prefix(
    prefix: str, instance: dg.DagsterInstance, s3_client: Any, bucket: str, s3_endpoint: str
) -> None:
    lore = LoreResource(store=f"s3://{bucket}/{prefix}", endpoint_url=s3_endpoint)
    tracker = lore.get_tracker()
    for key in ("raw/a.csv", "raw/b.csv"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"a\n1\n")
    # History documents, a failure-index object, a claim and an archive: all Lore's own.
    tracker.record("raw/a.csv", "validate", "failed", error="bad a")
    tracker.record("raw/b.csv", "validate")
    tracker.run("raw/b.csv", step="once", handler=lambda ctx: None, skip_if_succeeded=True)
    lore_keys = [
        obj["Key"] for obj in s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    ]
    assert any("/~lore/failed/" in k for k in lore_keys) and any(k.endswith(".json") for k in lore_keys)

    sensor = build_s3_file_partitions_sensor(files, bucket=bucket, job=job)
    defs = dg.Definitions(assets=[seen], jobs=[job], resources={"lore": lore}, sensors=[sensor])
    with dg.build_sensor_context(instance=instance, resources={"lore": lore}, definitions=defs) as context:
        result = defs.resolve_sensor_def(sensor.name)(context)
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys or []) == ["raw/a.csv", "raw/b.csv"]
    assert sorted(str(r.partition_key) for r in result.run_requests) == ["raw/a.csv", "raw/b.csv"]


def test_sensors_take_a_typed_lore_resource_parameter(
    instance: dg.DagsterInstance, lore: LoreResource, s3_client: Any, bucket: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"a\n1\n")
    lore.get_tracker().record("raw/a.csv", "seen", "failed", error="bad")
    files_sensor = build_s3_file_partitions_sensor(files, bucket=bucket, prefix="raw/")
    replay_sensor = build_lore_replay_sensor(job=job)
    custom_key = build_lore_replay_sensor(job=job, name="custom_key", lore_resource_key="history")
    for sensor, key in ((files_sensor, "lore"), (replay_sensor, "lore"), (custom_key, "history")):
        # Dagster reads resource parameters from the evaluation function's signature (the test
        # looks at the function Dagster holds; Dagster has no public accessor for it).
        parameters = inspect.signature(sensor._raw_fn).parameters  # type: ignore[attr-defined]
        assert list(parameters) == ["context", key] and parameters[key].annotation is LoreResource
        assert sensor.required_resource_keys == {key}
        with dg.build_sensor_context(instance=instance, resources={key: lore}) as context:
            result = sensor(context)
        assert not isinstance(result, dg.SkipReason) and (result.run_requests or result.dynamic_partitions_requests)
    # A resource that is not a LoreResource is refused, naming what was expected.
    with (
        pytest.raises(TypeError, match="LoreResource"),
        dg.build_sensor_context(instance=instance, resources={"lore": "not a resource"}) as context,
    ):
        replay_sensor(context)


def test_lore_dagster_imports_no_private_dagster_module() -> None:
    private = []
    for path in Path(lore_dagster.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            private += [f"{path.name}: {n}" for n in names if n.startswith("dagster") and "._" in n]
    assert private == []
