"""Sensors: replay failed files, and turn new S3 objects into per-file dynamic partitions.

``build_lore_replay_sensor`` reads only the failure index (``tracker.list_failed``),
never every history, and asks for one run per failed entry. ``run_key`` is the
entry id, so a failure is requested once however often the sensor ticks; the run
carries ``lore/file_key``, ``lore/entry_id`` and ``lore/step`` tags, which the IO
manager and ``LoreResource.track`` turn into ``replay_of`` on the new entry. When the
replay succeeds, the failure leaves the index.

Example::

    import dagster as dg
    from lore_dagster import build_lore_replay_sensor, build_s3_file_partitions_sensor, lore_file_partitions

    files = lore_file_partitions("files")
    job = dg.define_asset_job("per_file", selection=["validated", "converted"], partitions_def=files)
    sensors = [
        build_s3_file_partitions_sensor(files, bucket="my-bucket", prefix="raw/", job=job),
        build_lore_replay_sensor(job=job, prefix="assets/validated/"),
    ]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dagster as dg

from lore_core import FileHistory, HistoryEntry
from lore_core.keys import DEFAULT_PREFIX

from .resources import TAG_ENTRY_ID, TAG_FILE_KEY, TAG_STEP, LoreResource

__all__ = ["build_lore_replay_sensor", "build_s3_file_partitions_sensor", "lore_file_partitions"]

# A job: a JobDefinition, or what define_asset_job returns (a type Dagster does not export).
_Job = Any
_F = TypeVar("_F", bound=Callable[..., Any])


def lore_file_partitions(name: str = "files") -> dg.DynamicPartitionsDefinition:
    """Dynamic partitions whose keys are S3 object keys (one partition per file).

    Example::

        >>> lore_file_partitions("uploads").name
        'uploads'
    """
    return dg.DynamicPartitionsDefinition(name=name)


def _with_lore_parameter(fn: _F, key: str) -> _F:
    """``fn(context, **resources)`` as Dagster sees it: ``fn(context, <key>: LoreResource)``.

    A typed resource parameter, named after the key the ``LoreResource`` is bound to in
    ``Definitions`` (``lore_resource_key``): Dagster injects it (daemon, ``build_sensor_context``
    or a direct call with ``lore=...``) from the function's signature.
    """
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dg.SensorEvaluationContext
            ),
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=LoreResource),
        ]
    )
    return fn


def _lore_resource(resources: dict[str, Any], key: str) -> LoreResource:
    lore = resources.get(key)
    if not isinstance(lore, LoreResource):
        raise TypeError(f"resource {key!r} must be a LoreResource, got {type(lore).__name__}")
    return lore


def _replay_depth(history: FileHistory, entry: HistoryEntry) -> int:
    """How many replays led to ``entry`` (0 for an original failure)."""
    depth, current, seen = 0, entry, {entry.id}
    while current.replay_of and current.replay_of not in seen:
        seen.add(current.replay_of)
        parent = history.entry(current.replay_of)
        if parent is None:
            break
        depth, current = depth + 1, parent
    return depth


def build_lore_replay_sensor(
    job: _Job,
    *,
    step: str | None = None,
    prefix: str | None = None,
    name: str | None = None,
    lore_resource_key: str = "lore",
    max_replays: int = 3,
    failed_asset_only: bool = False,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that requests a run of ``job`` for each unresolved failed Lore entry.

    Args:
        job: the job to run; for per-file partitions, a job over the partitioned assets.
        step: only failures of this step (an asset key string such as ``"validated"``).
        prefix: only failures on file keys under this prefix.
        name: sensor name (default ``lore_replay_<job name>``).
        lore_resource_key: the key the ``LoreResource`` is bound to in ``Definitions``.
        max_replays: a failure that is already the ``max_replays``-th replay is not retried.
        failed_asset_only: select only the failed asset in each run instead of the whole job.
        minimum_interval_seconds: how often the sensor ticks.
        default_status: whether the sensor starts running when the code location loads.

    Example::

        sensor = build_lore_replay_sensor(job=per_file_job, step="validated", prefix="assets/")
    """
    sensor_name = name or f"lore_replay_{job.name}"

    def _replay(context: dg.SensorEvaluationContext, **resources: LoreResource) -> dg.SensorResult | dg.SkipReason:
        lore = _lore_resource(resources, lore_resource_key)
        tracker = lore.get_tracker()
        requests: list[dg.RunRequest] = []
        histories: dict[str, FileHistory | None] = {}
        for failed in tracker.list_failed(prefix=prefix, step=step):
            # One history read per failed file (not per bucket): the partition lives on the entry.
            if failed.file_key not in histories:
                histories[failed.file_key] = tracker.get_history(failed.file_key)
            history = histories[failed.file_key]
            entry = history.entry(failed.entry_id) if history is not None else None
            if history is None or entry is None or not entry.unresolved_failure:
                continue  # already resolved; the index catches up on the next write
            if _replay_depth(history, entry) >= max_replays:
                context.log.warning(
                    f"Lore: not replaying {failed.step} on {failed.file_key} again: entry {entry.id} "
                    f"is replay number {max_replays} (max_replays)"
                )
                continue
            partition = entry.orchestrator.partition if entry.orchestrator is not None else None
            requests.append(
                dg.RunRequest(
                    run_key=entry.id,
                    partition_key=partition,
                    tags={TAG_FILE_KEY: failed.file_key, TAG_ENTRY_ID: entry.id, TAG_STEP: failed.step},
                    asset_selection=[dg.AssetKey.from_user_string(failed.step)] if failed_asset_only else None,
                )
            )
        if not requests:
            return dg.SkipReason("no unresolved Lore failures" + (f" under {prefix!r}" if prefix else ""))
        return dg.SensorResult(run_requests=requests)

    return dg.sensor(
        name=sensor_name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Requests a run of {job.name} for each failed Lore entry"
            + (f" of step {step}" if step else "")
            + (f" under {prefix!r}" if prefix else "")
            + "; run_key = entry id."
        ),
    )(_with_lore_parameter(_replay, lore_resource_key))


def build_s3_file_partitions_sensor(
    partitions_def: dg.DynamicPartitionsDefinition,
    *,
    bucket: str,
    prefix: str = "",
    job: _Job | None = None,
    suffixes: Sequence[str] | None = None,
    name: str | None = None,
    lore_resource_key: str = "lore",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that adds each new S3 key under ``prefix`` as a dynamic partition.

    With ``job`` it also requests one run per new file (``run_key = "file:" + key``), so
    uploads flow through the per-file pipeline; the listing uses the resource's S3 client.

    Args:
        partitions_def: the dynamic partitions (see ``lore_file_partitions``).
        bucket: the bucket to list.
        prefix: only keys under this prefix (e.g. ``"raw/"``).
        job: optional job to run for each new partition.
        suffixes: only keys ending with one of these (e.g. ``[".csv"]``).
        name: sensor name (default ``lore_files_<partitions name>``).
        lore_resource_key: the key the ``LoreResource`` is bound to.
        minimum_interval_seconds: how often the sensor ticks.
        default_status: whether the sensor starts running when the code location loads.

    Example::

        files = lore_file_partitions("files")
        sensor = build_s3_file_partitions_sensor(files, bucket="uploads", prefix="raw/", suffixes=[".csv"])
    """
    if partitions_def.name is None:
        raise ValueError("build_s3_file_partitions_sensor needs a named DynamicPartitionsDefinition")
    partitions_name: str = partitions_def.name
    sensor_name = name or f"lore_files_{partitions_name}"

    def _files(context: dg.SensorEvaluationContext, **resources: LoreResource) -> dg.SensorResult | dg.SkipReason:
        lore = _lore_resource(resources, lore_resource_key)
        client: Any = lore.get_s3_client()
        # Lore's own objects (histories, failure index, claims, archives) live under the
        # configured history prefix (and, from an older configuration, perhaps the default one).
        lore_areas = tuple(dict.fromkeys(f"{p}/" for p in (lore.get_tracker().prefix, DEFAULT_PREFIX)))
        existing = set(context.instance.get_dynamic_partitions(partitions_name))
        new_keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key: str = obj["Key"]
                # Folder markers and Lore's own documents are not files to process.
                if key.endswith("/") or key.startswith(lore_areas) or key in existing:
                    continue
                if suffixes and not key.endswith(tuple(suffixes)):
                    continue
                new_keys.append(key)
        if not new_keys:
            return dg.SkipReason(f"no new objects under s3://{bucket}/{prefix}")
        runs = [dg.RunRequest(run_key=f"file:{k}", partition_key=k) for k in new_keys] if job is not None else []
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[partitions_def.build_add_request(new_keys)],
        )

    return dg.sensor(
        name=sensor_name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Adds new objects under s3://{bucket}/{prefix} as '{partitions_name}' partitions.",
    )(_with_lore_parameter(_files, lore_resource_key))
