"""``LoreS3IOManager``: stores asset outputs in S3 and records each one's history and lineage.

One S3 object per asset and partition, at ``<prefix>/<asset/key/path>[/<partition>]``.
Each stored output gets a history entry (step = the asset key, with the Dagster run,
partition, code version and a link to the run) derived from the exact upstream
objects the step loaded, and the materialization carries ``lore/*`` metadata so the
asset page shows the entry, its sources and its ancestors. When a step fails, the
output it would have written gets a failed entry with the error, which the replay
sensor picks up.

Serializer rules (the object's ``lore-format`` S3 metadata says which was used):

* ``bytes``/``bytearray`` are stored as they are (``bytes``); ``str`` as UTF-8 (``text``);
* values ``json.dumps`` accepts (dict, list, str, numbers, bool, None) as JSON (``json``);
  tuples come back as lists;
* anything else is refused with an error naming the asset, unless ``allow_pickle=True``,
  which stores it with pickle (``pickle``). Loading unpickles only objects whose metadata
  says Lore pickled them and only when ``allow_pickle=True``; an object Lore did not
  write is returned as raw ``bytes``.

Example::

    import dagster as dg
    from lore_dagster import LoreResource, LoreS3IOManager

    lore = LoreResource(store="s3://my-bucket/.lore-s3")
    defs = dg.Definitions(
        assets=[...],
        resources={"lore": lore, "io_manager": LoreS3IOManager(bucket="my-bucket", lore=lore)},
    )
"""

import json
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
from pydantic import Field

from lore_core import ErrorInfo, HistoryEntry, InvalidKeyError, LineageRef, LoreTracker, StepStatus
from lore_core.ids import utc_now
from lore_core.integration import s3_url, tracking_errors
from lore_core.keys import validate_file_key

from .metadata import failure_metadata, materialization_metadata
from .resources import (
    META_READS,
    PARTITION_TAG,
    REGISTRY,
    DagsterLogs,
    LoreResource,
    as_key_list,
    asset_step_name,
    build_orchestrator_info,
    error_info_from_dagster,
    event_entry_id,
    event_time,
    record_declared_writes,
    recorded,
    replay_target,
    run_orchestrator,
    step_started_at,
)

__all__ = ["LoreS3IOManager", "deserialize", "serialize"]

FORMAT_META = "lore-format"
META_LOADED = "lore/loaded"  # LOADED_INPUT metadata: the refs of the objects a step loaded
WRITER_META = "lore-writer"
WRITER = "lore-dagster"

_CONTENT_TYPES = {
    "bytes": "application/octet-stream",
    "text": "text/plain; charset=utf-8",
    "json": "application/json",
    "pickle": "application/python-pickle",
}


def serialize(obj: Any, allow_pickle: bool = False, what: str = "value") -> tuple[bytes, str]:
    """``(body, format)`` for an output value, following the module's serializer rules."""
    if isinstance(obj, bytes | bytearray):
        return bytes(obj), "bytes"
    if isinstance(obj, str):
        return obj.encode("utf-8"), "text"
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8"), "json"
    except (TypeError, ValueError) as exc:
        if not allow_pickle:
            raise TypeError(
                f"{what}: LoreS3IOManager stores bytes, str and JSON-serialisable values; got "
                f"{type(obj).__name__} ({exc}). Return one of those, or set allow_pickle=True."
            ) from exc
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), "pickle"


def deserialize(body: bytes, fmt: str | None, writer: str | None, allow_pickle: bool, what: str = "object") -> Any:
    """The value stored by :func:`serialize`; raw bytes for objects Lore did not write."""
    if writer != WRITER or fmt is None:
        return body
    if fmt == "text":
        return body.decode("utf-8")
    if fmt == "json":
        return json.loads(body)
    if fmt == "pickle":
        if not allow_pickle:
            raise ValueError(f"{what} was pickled by Lore; set allow_pickle=True on LoreS3IOManager to load it")
        return pickle.loads(body)
    return body


class LoreS3IOManager(dg.ConfigurableIOManager):
    """Stores each asset output in S3 and records its history and lineage with Lore.

    Example::

        import dagster as dg
        from lore_dagster import LoreResource, LoreS3IOManager

        @dg.asset
        def numbers() -> list[int]:
            return [1, 2, 3]

        @dg.asset
        def total(numbers: list[int]) -> int:
            return sum(numbers)  # recorded as derived from assets/numbers

        lore = LoreResource(store="s3://my-bucket/.lore-s3")
        defs = dg.Definitions(
            assets=[numbers, total],
            resources={"io_manager": LoreS3IOManager(bucket="my-bucket", prefix="assets", lore=lore)},
        )
    """

    bucket: str = Field(description="Bucket the asset outputs are written to (normally the store's bucket).")
    prefix: str = Field(
        default="assets",
        description="Key prefix for outputs: '<prefix>/<asset/key/path>[/<partition>]'. Empty for the bucket root.",
    )
    lore: LoreResource = Field(description="The LoreResource that records histories (and provides the S3 client).")
    allow_pickle: bool = Field(
        default=False,
        description=(
            "Store values that are not bytes, str or JSON with pickle, and load them back. Only objects "
            "Lore itself pickled are ever unpickled."
        ),
    )
    file_partitions: bool = Field(
        default=True,
        description=(
            "Per-file partitions: when a partition key names an object in the bucket, every step of a "
            "partitioned asset is recorded on that object's history too (its successes, and its failures, "
            "which therefore land on the file being processed), and an asset that loads no upstream asset "
            "is recorded as derived from it."
        ),
    )
    record_failures: bool = Field(
        default=True,
        description="When a step fails, record a failed entry on each output it would have written.",
    )

    # -- keys -----------------------------------------------------------------

    def object_key(self, asset_key: dg.AssetKey, partition: str | None = None) -> str:
        """Where an asset's output (for one partition) is stored."""
        parts = [p for p in self.prefix.strip("/").split("/") if p] + list(asset_key.path)
        if partition is not None:
            parts.append(partition.strip("/"))
        key = "/".join(parts)
        for segment in key.split("/"):
            if segment in ("", ".", ".."):
                raise ValueError(
                    f"asset {asset_key.to_user_string()!r} partition {partition!r} gives bad S3 key {key!r}"
                )
        return key

    def _tracker(self) -> LoreTracker:
        return self.lore.get_tracker()

    def _ref_for(self, tracker: LoreTracker, key: str) -> LineageRef:
        """A link to the latest successful entry of ``key`` (or to the file itself if untracked)."""
        history = tracker.get_history(key)
        entry = history.latest(status=StepStatus.SUCCESS) if history is not None else None
        bucket = self.bucket if self.bucket != tracker.bucket else None
        return LineageRef(file_key=key, entry_id=entry.id if entry is not None else None, bucket=bucket)

    def _refs_for(self, keys: Sequence[str]) -> list[LineageRef]:
        tracker = self._tracker()
        if len(keys) == 1:
            return [self._ref_for(tracker, keys[0])]
        with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
            return list(pool.map(lambda key: self._ref_for(tracker, key), keys))

    # -- output ---------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not context.has_asset_key:
            raise ValueError(f"LoreS3IOManager stores asset outputs only; {context.step_key} is an op output")
        partition = context.asset_partition_key if context.has_asset_partitions else None
        key = self.object_key(context.asset_key, partition)
        step = asset_step_name(context.asset_key)
        body, fmt = serialize(obj, self.allow_pickle, what=f"asset {step}")
        self.lore.get_s3_client().put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=_CONTENT_TYPES[fmt],
            Metadata={FORMAT_META: fmt, WRITER_META: WRITER},
        )
        context.log.debug(f"Lore: stored {step} at {s3_url(self.bucket, key)} ({len(body)} bytes, {fmt})")
        # The object is written: a tracking failure must not lose the asset by default.
        with tracking_errors(
            f"the history of {key}", raise_on_error=self.lore.raise_on_error, logger=DagsterLogs(context.log)
        ):
            self._record_output(context, key, step, partition, len(body), fmt)

    def _record_output(
        self, context: dg.OutputContext, key: str, step: str, partition: str | None, size: int, fmt: str
    ) -> None:
        tracker = self._tracker()
        inputs = REGISTRY.inputs(context.run_id, context.step_key)
        refs = list(inputs.refs)
        # Sources the asset named itself (Output/add_output_metadata 'lore/reads').
        for extra in as_key_list(context.output_metadata.get(META_READS)):
            if all(r.file_key != extra for r in refs):
                refs.append(self._ref_for(tracker, extra))
        tags = context.step_context.dagster_run.tags
        orchestrator = build_orchestrator_info(context, context.asset_key, self.lore.dagster_ui_url, partition)
        output = {"uri": s3_url(self.bucket, key), "bytes": size, "format": fmt}
        # The step's own start (a root asset loads nothing, so the first load is no clock).
        started = step_started_at(context.step_context.instance, context.run_id, context.step_key)
        started = started or inputs.started_at

        def record_success(file_key: str, sources: list[LineageRef]) -> HistoryEntry:
            return tracker.record(
                file_key,
                step=step,
                status="success",
                input=[r.file_key for r in refs] or None,
                output=output,
                started_at=started,
                completed_at=utc_now(),
                metadata={"dagster/step_key": context.step_key},
                orchestrator=orchestrator,
                replay_of=replay_target(tags, file_key, step),
                derived_from=sources,
            )

        part_file = self.partition_file(
            tracker, partition, context.asset_partitions_def if partition is not None else None
        )
        replay_of: str | None = None
        if part_file is not None:
            # The step ran against this file: its history says so, and the success resolves an
            # earlier failure of the same step on it (the replay sensor's work). Recorded first,
            # so that a root asset's output is derived from this very entry.
            file_entry = record_success(part_file, [])
            replay_of = file_entry.replay_of
            if not refs:
                refs = [LineageRef(file_key=part_file, entry_id=file_entry.id)]
        elif not refs and partition is not None and self.file_partitions:
            refs.extend(self._partition_source(tracker, partition))
        entry = record_success(key, refs)
        context.add_output_metadata(
            materialization_metadata(tracker, key, entry, refs, part_file, replay_of=replay_of or entry.replay_of)
        )

    def partition_file(
        self, tracker: LoreTracker, partition: str | None, partitions_def: dg.PartitionsDefinition | None = None
    ) -> str | None:
        """The partition key when per-file partitions make it name an object of the tracked bucket.

        Only dynamic partitions can name files (``lore_file_partitions``): static, time-window
        and multi-dimensional partition keys are never looked up, so they cost no request.
        A dynamic key costs one HeadObject (and a history read only when the object is gone).
        """
        if not self.file_partitions or partition is None or self.bucket != tracker.bucket:
            return None
        if partitions_def is not None and not isinstance(partitions_def, dg.DynamicPartitionsDefinition):
            return None
        try:
            validate_file_key(partition, tracker.prefix)
        except InvalidKeyError:
            return None
        client = self.lore.get_s3_client()
        try:
            client.head_object(Bucket=self.bucket, Key=partition)
        except client.exceptions.ClientError:
            # Deleted since it was processed: still the file whose history holds the step.
            return partition if tracker.get_history(partition, fresh=False) is not None else None
        return partition

    def _partition_source(self, tracker: LoreTracker, partition: str) -> list[LineageRef]:
        """The partition key as a source file in the output bucket, when that is not the tracked bucket."""
        if self.bucket == tracker.bucket:
            return []
        client = self.lore.get_s3_client()
        try:
            client.head_object(Bucket=self.bucket, Key=partition)
        except client.exceptions.ClientError:
            return []
        return [LineageRef(file_key=partition, bucket=self.bucket)]

    # -- input ----------------------------------------------------------------

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_key:
            raise ValueError("LoreS3IOManager loads asset inputs only")
        partitions: Sequence[str | None] = (
            list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        )
        client = self.lore.get_s3_client()
        values: dict[str | None, Any] = {}
        keys = [self.object_key(context.asset_key, partition) for partition in partitions]
        # The upstream histories are read while the objects are (one round trip, not two).
        pool = ThreadPoolExecutor(max_workers=min(8, len(keys)), thread_name_prefix="lore-refs")
        refs_future = pool.submit(self._refs_for, keys)
        pool.shutdown(wait=False)
        for partition, key in zip(partitions, keys, strict=True):
            response = client.get_object(Bucket=self.bucket, Key=key)
            meta = response.get("Metadata", {})
            values[partition] = deserialize(
                response["Body"].read(),
                meta.get(FORMAT_META),
                meta.get(WRITER_META),
                self.allow_pickle,
                s3_url(self.bucket, key),
            )
        with tracking_errors(
            f"the lineage of inputs {keys}", raise_on_error=self.lore.raise_on_error, logger=DagsterLogs(context.log)
        ):
            refs = refs_future.result()
            REGISTRY.add_input(context.step_context.run_id, context.step_context.step.key, refs, utc_now())
            # On the run's LOADED_INPUT event: the entries this step reads (and, for the other
            # processes of the run, that this step's own process records its failure, with them).
            # Dagster takes input metadata for one partition only; a step loading many (an
            # unpartitioned summary of all partitions) has its failure recorded under the stable
            # event id by whichever process sees it first, the same entry either way.
            if len(keys) == 1:
                context.add_input_metadata(
                    {META_LOADED: dg.MetadataValue.json([r.to_json_dict() for r in refs])},
                    description="Lore: the history entries of the objects loaded",
                )
        if partitions == [None]:
            return values[None]
        # Several upstream partitions (e.g. an unpartitioned summary): a dict keyed by partition.
        if len(partitions) == 1 and context.has_partition_key:
            return values[partitions[0]]
        return dict(values)

    # -- after the step(s) ------------------------------------------------------

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        try:
            with tracking_errors(
                "the failed steps of this run", raise_on_error=self.lore.raise_on_error, logger=DagsterLogs(context.log)
            ):
                if self.record_failures:
                    record_run_failures(self, context)
                record_declared_writes(self.lore, context)
        finally:
            if context.run is not None:
                REGISTRY.forget_run(context.run.run_id)


def record_run_failures(io_manager: LoreS3IOManager, context: dg.InitResourceContext) -> None:
    """A failed entry on each output of each step that failed in the run, recorded once.

    Every process of the run tears its resources down and may see a failure; each entry's id
    comes from the failure event, so whichever records it writes the same entry once. A step
    whose inputs Lore loaded is left to its own process (step key in ``REGISTRY``), which
    knows them. The failed asset partition gets an observation with the entry and the error.
    """
    run, instance = context.run, context.instance
    if run is None or instance is None:
        return
    failures = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    failures = [r for r in failures if REGISTRY.claim_event(run.run_id, r.storage_id)]
    if not failures:
        return
    plan = (
        instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id) if run.execution_plan_snapshot_id else None
    )
    if plan is None:
        return
    steps = {s.key: s for s in plan.steps}
    loaded_by_lore = steps_loaded_by_lore(instance, run.run_id)
    tracker = io_manager._tracker()
    partition = run.tags.get(PARTITION_TAG)
    for record in failures:
        entry = record.event_log_entry
        step_snap = steps.get(entry.step_key or "")
        failure = entry.dagster_event.step_failure_data if entry.dagster_event else None
        if step_snap is None:
            continue
        if step_snap.key in loaded_by_lore and not REGISTRY.owns(run.run_id, step_snap.key):
            continue  # its own process loaded its inputs and records it, with them
        error = (
            error_info_from_dagster(failure.error)
            if failure is not None and failure.error
            else ErrorInfo(message="step failed")
        )
        inputs = REGISTRY.inputs(run.run_id, step_snap.key)
        completed = event_time(record)
        started = step_started_at(instance, run.run_id, step_snap.key, completed) or inputs.started_at
        for output in step_snap.outputs:
            props = output.properties
            # Outputs typed Nothing (MaterializeResult, -> None) never reach the IO manager.
            if props is None or props.asset_key is None or output.dagster_type_key == "Nothing":
                continue
            part = partition if props.is_asset_partitioned else None
            step = asset_step_name(props.asset_key)
            # A per-file partition: the failure belongs to the file being processed (the
            # output was never written); otherwise to the output object.
            part_file = io_manager.partition_file(tracker, part)
            key = part_file or io_manager.object_key(props.asset_key, part)
            sources = [r.file_key for r in inputs.refs]
            if not sources and part is not None and io_manager.file_partitions:
                sources = [part]  # a per-file partition: the file it was processing
            entry_id = event_entry_id(run.run_id, record, output.name)
            with tracking_errors(
                f"the failure of {step} on {key}",
                raise_on_error=io_manager.lore.raise_on_error,
                logger=DagsterLogs(context.log),
            ):
                if recorded(tracker, key, entry_id):
                    continue  # another process of the run recorded it
                failed = tracker.record(
                    key,
                    step=step,
                    status="failed",
                    input=sources or None,
                    error=error,
                    started_at=started,
                    completed_at=completed,
                    metadata={"dagster/step_key": step_snap.key},
                    orchestrator=run_orchestrator(run, step, part, io_manager.lore.dagster_ui_url),
                    replay_of=replay_target(run.tags, key, step),
                    entry_id=entry_id,
                )
                # The failed (partition of the) asset shows the failure on its page in Dagster.
                instance.report_runless_asset_event(
                    dg.AssetObservation(
                        asset_key=props.asset_key,
                        partition=part,
                        metadata=failure_metadata(tracker, key, failed, part_file),
                        description=f"Lore: {step} failed on {key}",
                    )
                )
                if context.log is not None:
                    context.log.info(
                        f"Lore: recorded failure of {step} on {key}: {failed.error.message if failed.error else ''}"
                    )


def steps_loaded_by_lore(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """Step keys of the run whose inputs Lore's IO manager loaded (its metadata is on the LOADED_INPUT event)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.LOADED_INPUT).records
    out = set()
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data if event is not None else None
        if META_LOADED in (getattr(data, "metadata", None) or {}):
            out.add(record.event_log_entry.step_key or "")
    return out
