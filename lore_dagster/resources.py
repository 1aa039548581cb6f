"""``LoreResource``: the Lore tracker as a Dagster resource, plus what every role shares.

The resource builds one :class:`lore_core.LoreTracker` per process from its config
(store URL, S3 endpoint, region, credentials or an existing ``dagster_aws``
``S3Resource``) and offers :meth:`LoreResource.track`, the core's ``tracker.track()``
for assets that write their own S3 objects: a running entry whose lease a heartbeat
renews while the block runs, then success or failure. Tracking errors follow
``lore_core.integration``'s policy: logged at ERROR (the run log and the ``lore_dagster``
logger), raised only with ``raise_on_error``.

Example::

    import dagster as dg
    from lore_dagster import LoreResource

    @dg.asset
    def report(lore: LoreResource) -> None:
        with lore.track("reports/2026-11.csv", produces=["reports/2026-11.pdf"]):
            ...  # read the CSV, write the PDF

    defs = dg.Definitions(
        assets=[report],
        resources={"lore": LoreResource(store=dg.EnvVar("LORE_STORE"))},
    )
"""

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from lore_core import ErrorInfo, LineageRef, LoreConfigError, LoreTracker, OrchestratorInfo, StepContext, StepStatus
from lore_core.ids import stable_entry_id
from lore_core.integration import error_policy, is_s3_url, orchestrator_info, tracked, tracking_errors
from lore_core.settings import LoreConfig, load_config

__all__ = [
    "TAG_ENTRY_ID",
    "TAG_FILE_KEY",
    "TAG_STEP",
    "LoreResource",
    "TrackedStep",
]

log = logging.getLogger("lore_dagster")

# Run tags the replay sensor sets, read back by the IO manager and the resource.
TAG_FILE_KEY = "lore/file_key"
TAG_ENTRY_ID = "lore/entry_id"
TAG_STEP = "lore/step"
# Output / MaterializeResult metadata keys naming the S3 objects an asset read and wrote.
META_READS = "lore/reads"
META_WRITES = "lore/writes"

PARTITION_TAG = "dagster/partition"  # set by Dagster on single-partition runs


def asset_step_name(asset_key: dg.AssetKey) -> str:
    """The Lore step name for an asset: its key as Dagster prints it (``a/b``)."""
    return asset_key.to_user_string()


def run_url(base_url: str | None, run_id: str) -> str | None:
    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/runs/{run_id}"


def replay_target(tags: Mapping[str, str], file_key: str, step: str) -> str | None:
    """The failed entry this run replays for ``file_key``/``step``, from the run tags."""
    if tags.get(TAG_FILE_KEY) != file_key:
        return None
    tagged_step = tags.get(TAG_STEP)
    # An untagged step means the sensor did not know it; the file key match is enough.
    if tagged_step is not None and tagged_step != step:
        return None
    return tags.get(TAG_ENTRY_ID)


def as_key_list(value: Any) -> list[str]:
    """Metadata that names S3 objects, as a list of keys (str, list, or a JSON/Text value)."""
    if isinstance(value, dg.MetadataValue):
        value = value.value
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    raise TypeError(f"expected an S3 key or a list of keys, got {type(value).__name__}")


class DagsterLogs:
    """Dagster's run log (shown in the UI, may be None) and the ``lore_dagster`` Python logger, as one logger.

    What Lore could not record is reported to both: the run log is where the asset's
    owner looks, the Python logger where the platform's alerting does.
    """

    def __init__(self, run_log: Any) -> None:
        self._run_log = run_log

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if self._run_log is not None:
            self._run_log.error(msg, *args, **kwargs)
        log.error(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if self._run_log is not None:
            self._run_log.warning(msg, *args, **kwargs)
        log.warning(msg, *args, **kwargs)


#: What ``LoreResource.track`` yields: the core's ``StepContext`` (set ``output``, call ``produce``).
TrackedStep = StepContext


_PER_PROCESS: dict[tuple[Any, ...], Any] = {}
_per_process_lock = threading.Lock()


def _per_process(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """``build()`` once per process for ``key`` (a resource's configuration)."""
    with _per_process_lock:
        if key in _PER_PROCESS:
            return _PER_PROCESS[key]
    built = build()
    with _per_process_lock:
        return _PER_PROCESS.setdefault(key, built)


def _openlineage_sink(namespace: str | None) -> Any:
    """The process's OpenLineage sink for ``namespace`` (one queue and client for every tracker)."""
    try:
        # Only with openlineage=True: openlineage-python is an optional extra.
        from lore_core.openlineage import DEFAULT_NAMESPACE, shared_sink
    except ImportError as exc:
        raise LoreConfigError(
            f"LoreResource(openlineage=True) needs openlineage-python: pip install 'lore-s3[openlineage]' ({exc})"
        ) from None
    return shared_sink(namespace or DEFAULT_NAMESPACE)


class LoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where Lore keeps histories, and how to reach it.

    Credentials come from the standard boto3 chain unless set here or supplied by
    an ``S3Resource`` from ``dagster_aws`` (``s3=S3Resource(...)``).

    Example::

        import dagster as dg
        from lore_dagster import LoreResource

        lore = LoreResource(
            store="s3://my-bucket/.lore-s3",
            endpoint_url=dg.EnvVar("LORE_S3_ENDPOINT"),
        )
        history = lore.get_tracker().get_history("raw/a.csv")
    """

    store: str | None = Field(
        default=None,
        description=(
            "Where histories live: 's3://bucket/prefix' (prefix defaults to '.lore-s3'), "
            "'file:///path' or 'memory://name'. None: Lore's settings (LORE_STORE, lore.toml, "
            "[tool.lore] in pyproject.toml, ~/.config/lore/lore.toml), as for the CLI."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint for MinIO, R2 or a local S3 server; None for AWS.",
    )
    region: str | None = Field(default=None, description="AWS region of the bucket; None uses the boto3 default.")
    profile: str | None = Field(
        default=None,
        description="AWS profile (boto3 session profile) for the client Lore builds; None: Lore's settings.",
    )
    aws_access_key_id: str | None = Field(
        default=None, description="Access key id; None uses the boto3 credential chain. Use dg.EnvVar."
    )
    aws_secret_access_key: str | None = Field(
        default=None, description="Secret access key; None uses the boto3 credential chain. Use dg.EnvVar."
    )
    aws_session_token: str | None = Field(default=None, description="Session token for temporary credentials.")
    s3: dg.ResourceDependency[Any] = Field(  # optional: None means the boto3 chain
        default=None,  # type: ignore[arg-type]
        description=(
            "Optional dagster_aws S3Resource (anything with get_client()); when set, its client "
            "is used and the endpoint/region/credential options above are ignored."
        ),
    )
    dagster_ui_url: str | None = Field(
        default="http://localhost:3000",
        description="Base URL of the Dagster UI, used to link each history entry to its run. None for no link.",
    )
    raise_on_error: bool = Field(
        default=False,
        description=(
            "If True, a failure to record history fails the asset (lore_core.integration.TrackingError). "
            "By default it is logged as an error and the asset's own result stands."
        ),
    )
    lease_seconds: float | None = Field(
        default=None,
        description=(
            "How long a running entry of lore.track() stays valid without renewal; a heartbeat renews it "
            "every third of it while the block runs, so only a dead worker's entry expires (then it reads "
            "as abandoned). None keeps Lore's default (600)."
        ),
    )
    first_heartbeat_seconds: float | None = Field(
        default=None,
        description="Delay before the first lease renewal of a running entry. None keeps Lore's default (5).",
    )
    writable_buckets: list[str] = Field(
        default_factory=list,
        description=(
            "Buckets besides the store's in which Lore may write histories (the derivedTo side of "
            "cross-bucket lineage). Any other bucket is only ever named in refs, never written."
        ),
    )

    openlineage: bool = Field(
        default=False,
        description=(
            "If True, each history entry is also sent as an OpenLineage run (START, then COMPLETE or FAIL) "
            "through openlineage-python's client, configured the standard way (openlineage.yml, "
            "OPENLINEAGE_CONFIG, OPENLINEAGE_URL); its parent facet names the Dagster run. Needs the "
            "extra lore-s3[openlineage]. Sending never blocks or fails an asset."
        ),
    )
    openlineage_namespace: str | None = Field(
        default=None, description="Namespace of the OpenLineage jobs (one per Lore step); None means 'lore'."
    )

    _tracker: LoreTracker | None = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _process_key(self, what: str) -> tuple[Any, ...]:
        # Dagster builds a resource object per run; the client and tracker it configures are
        # built once per process (a boto3 client costs ~150 ms; a tracker keeps the ETags and
        # documents it last wrote, so the next run's steps need no read to write).
        return (
            what,
            self.store,
            self.endpoint_url,
            self.region,
            self.profile,
            self.aws_access_key_id,
            self.aws_secret_access_key,
            self.aws_session_token,
            repr(self.s3),
            self.lease_seconds,
            self.first_heartbeat_seconds,
            tuple(self.writable_buckets or ()),
            self.openlineage,
            self.openlineage_namespace,
            # What Lore's settings add for the unset fields (LORE_STORE, lore.toml, ...).
            tuple(sorted((name, repr(value)) for name, value in self.settings().describe().items())),
        )

    def get_s3_client(self) -> Any:
        """The boto3 S3 client Lore uses (one per process and configuration, shared with the IO manager)."""
        with self._lock:
            if self._client is None:
                self._client = _per_process(self._process_key("client"), self._build_client)
            return self._client

    def settings(self) -> LoreConfig:
        """The settings in force: this resource's fields, then what Lore's settings (``LORE_*``
        variables, ``lore.toml`` / ``[tool.lore]``, the user's ``lore.toml``) add for the unset ones."""
        fields = {
            "store": self.store,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "profile": self.profile,
            "lease_seconds": self.lease_seconds,
            "first_heartbeat_seconds": self.first_heartbeat_seconds,
            "writable_buckets": list(self.writable_buckets) or None,
        }
        return load_config(fields, argument_source="LoreResource")

    def _build_client(self) -> Any:
        if self.s3 is not None:
            return self.s3.get_client()
        import boto3
        from botocore.config import Config

        config = self.settings()

        kwargs: dict[str, Any] = {}
        if self.aws_access_key_id:
            kwargs["aws_access_key_id"] = self.aws_access_key_id
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key
            kwargs["aws_session_token"] = self.aws_session_token
        return boto3.session.Session(profile_name=config.profile).client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            # Standard mode retries throttling and 5xx with backoff; Lore handles 409/412 itself.
            config=Config(retries={"mode": "standard"}),
            **kwargs,
        )

    def get_tracker(self) -> LoreTracker:
        """The :class:`lore_core.LoreTracker` for ``store`` (built once per process and configuration)."""
        if self._tracker is None:
            tracker = _per_process(self._process_key("tracker"), self._build_tracker)
            with self._lock:
                if self._tracker is None:
                    self._tracker = tracker
        assert self._tracker is not None
        return self._tracker

    def _build_tracker(self) -> LoreTracker:
        config = self.settings()
        store = config.require_store()
        client = self.get_s3_client() if is_s3_url(store) else None
        # lease_seconds, first_heartbeat_seconds, writable_buckets and any other tracker option set.
        options: dict[str, Any] = config.tracker_options()
        if self.openlineage:
            options["openlineage"] = _openlineage_sink(self.openlineage_namespace)
        return LoreTracker.from_url(
            store, s3_client=client, endpoint_url=config.endpoint_url, region=config.region, **options
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Assets that wrote their own objects and said so in MaterializeResult metadata.
        with tracking_errors(
            "the objects named in lore/writes", raise_on_error=self.raise_on_error, logger=DagsterLogs(context.log)
        ):
            record_declared_writes(self, context)

    def orchestrator_info(self, context: Any, asset_key: dg.AssetKey | None = None) -> OrchestratorInfo:
        """Run id, job, asset, partition, code version and UI link for the current step."""
        return build_orchestrator_info(context, asset_key, self.dagster_ui_url)

    @contextmanager
    def track(
        self,
        file_key: str,
        step: str | None = None,
        produces: str | Sequence[str] | None = None,
        input: Any = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: dg.AssetExecutionContext | dg.OpExecutionContext | None = None,
    ) -> Iterator[TrackedStep]:
        """Record one step on ``file_key`` with the core's ``tracker.track()``: running now, success or failure at exit.

        While the block runs, a heartbeat renews the entry's lease (``lease_seconds``), so
        a long step is never taken for an abandoned one. ``step`` defaults to the current
        asset's key. Files named in ``produces`` (or added with ``tracked.produce(key)``)
        are recorded as derived from this entry. If the run was started by the replay
        sensor for this file, the entry is marked as its replay. The body's exception is
        recorded and re-raised unchanged; a failure to record is logged (or raised as
        ``TrackingError`` with ``raise_on_error``).

        Example::

            @dg.asset(partitions_def=files)
            def thumbnail(context: dg.AssetExecutionContext, lore: LoreResource) -> None:
                src = context.partition_key
                with lore.track(src, produces=[f"thumbs/{src}.png"]) as tracked:
                    tracked.output = {"width": 128}
        """
        ctx = context if context is not None else _current_context()
        asset_key = _context_asset_key(ctx)
        step_name = step or (asset_step_name(asset_key) if asset_key is not None else None)
        if step_name is None:
            raise ValueError(f"lore.track({file_key!r}): pass step=..., no asset is executing")
        logger = DagsterLogs(ctx.log if ctx is not None else None)
        core = self.get_tracker().track(
            file_key,
            step_name,
            input,
            produces=as_key_list(produces),
            description=description,
            metadata=dict(metadata) if metadata else None,
            orchestrator=build_orchestrator_info(ctx, asset_key, self.dagster_ui_url),
            replay_of=replay_target(_context_tags(ctx), file_key, step_name),
            on_error=error_policy(self.raise_on_error),
            logger=logger,
        )
        with tracked(core, file_key, step_name, raise_on_error=self.raise_on_error, logger=logger) as step_ctx:
            yield step_ctx


def _current_context() -> Any:
    try:
        return dg.OpExecutionContext.get()
    except Exception:  # outside a step there simply is no context
        return None


def _context_asset_key(context: Any) -> dg.AssetKey | None:
    if context is None:
        return None
    try:
        if isinstance(context, dg.AssetExecutionContext | dg.OpExecutionContext) and context.has_assets_def:
            keys = list(context.assets_def.keys)
            return keys[0] if len(keys) == 1 else None
    except Exception:
        return None
    return None


def _context_tags(context: Any) -> Mapping[str, str]:
    if context is None:
        return {}
    try:
        if isinstance(context, dg.OutputContext | dg.InputContext):
            return context.step_context.dagster_run.tags
        return context.run.tags  # type: ignore[no-any-return]
    except Exception:
        return {}


def build_orchestrator_info(
    context: Any, asset_key: dg.AssetKey | None, ui_url: str | None, partition: str | None = None
) -> OrchestratorInfo:
    """An ``OrchestratorInfo`` for any Dagster context (op, asset, output), or just the process."""
    run_id: str | None = None
    job: str | None = None
    code_version: str | None = None
    if context is not None:
        try:
            run_id = context.run_id
            job = context.job_name
        except Exception:
            pass
        if partition is None:
            partition = _context_partition(context)
        code_version = _code_version(context, asset_key)
    return orchestrator_info(
        "dagster",
        run_id,
        job,
        asset_step_name(asset_key) if asset_key is not None else None,
        partition=partition,
        url=run_url(ui_url, run_id) if run_id else None,
        code_version=code_version or None,
    )


def _context_partition(context: Any) -> str | None:
    try:
        if isinstance(context, dg.OutputContext | dg.InputContext):
            return context.asset_partition_key if context.has_asset_partitions else None
        if context.has_partition_key:
            return str(context.partition_key)
    except Exception:  # ranges and unpartitioned runs have no single key
        return None
    return None


def _code_version(context: Any, asset_key: dg.AssetKey | None) -> str | None:
    try:
        if isinstance(context, dg.OutputContext):
            return context.asset_spec.code_version
        if asset_key is not None and context.has_assets_def:
            return context.assets_def.code_versions_by_key.get(asset_key)  # type: ignore[no-any-return]
    except Exception:
        return None
    return None


def error_info_from_dagster(error: Any) -> ErrorInfo:
    """The user's own exception from Dagster's wrapped error info (innermost cause)."""
    inner = error
    # Dagster wraps user code errors in DagsterExecutionStepExecutionError; the cause is the real one.
    while getattr(inner, "cause", None) is not None:
        inner = inner.cause
    message = (inner.message or "").strip()
    # Dagster formats the message as "ValueError: text"; the name is kept separately.
    if inner.cls_name and message.startswith(f"{inner.cls_name}: "):
        message = message[len(inner.cls_name) + 2 :]
    return ErrorInfo(
        message=message or inner.cls_name or "error",
        name=inner.cls_name,
        stack="".join(inner.stack or []) or None,
    )


@dataclass
class _StepInputs:
    refs: list[LineageRef] = field(default_factory=list)
    started_at: Any = None


class StepRegistry:
    """What each step loaded in this process, so outputs and failures can name their sources."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inputs: dict[tuple[str, str], _StepInputs] = {}
        self._handled_events: set[tuple[str, int]] = set()

    def add_input(self, run_id: str, step_key: str, refs: Sequence[LineageRef], started_at: Any) -> None:
        with self._lock:
            item = self._inputs.setdefault((run_id, step_key), _StepInputs(started_at=started_at))
            for ref in refs:
                if all(not ref.same_file(r) for r in item.refs):
                    item.refs.append(ref)

    def owns(self, run_id: str, step_key: str) -> bool:
        """True when the step ran in this process (it loaded inputs here): matched by step key."""
        with self._lock:
            return (run_id, step_key) in self._inputs

    def inputs(self, run_id: str, step_key: str) -> _StepInputs:
        with self._lock:
            return self._inputs.get((run_id, step_key), _StepInputs())

    def claim_event(self, run_id: str, storage_id: int) -> bool:
        """True the first time an event is seen in this process (resources may tear down twice)."""
        # Storage ids are per run on sqlite instances, so the run id is part of the identity.
        with self._lock:
            if (run_id, storage_id) in self._handled_events:
                return False
            self._handled_events.add((run_id, storage_id))
            return True

    def forget_run(self, run_id: str) -> None:
        with self._lock:
            for key in [k for k in self._inputs if k[0] == run_id]:
                del self._inputs[key]


REGISTRY = StepRegistry()


# ---------------------------------------------------------------------- events several processes see
#
# Resources are torn down in every process of a run (each step process of a multiprocess,
# Docker, Kubernetes or ECS executor, and the run worker), and each may see the events of
# steps that ran elsewhere. Which process ran a step is never decided by PID (containers
# share PIDs): an entry recorded for such an event has an id derived from the event
# (``stable_entry_id``), its times come from the event log, so whichever process records it
# writes the same entry, once; only the step's own process (known by step key) adds what it
# alone saw.


def event_time(record: Any) -> datetime:
    """When an event log record was written (UTC)."""
    return datetime.fromtimestamp(record.event_log_entry.timestamp, UTC)


def event_entry_id(run_id: str, record: Any, *parts: str) -> str:
    """The one entry id of a run event (``parts`` tell apart several entries of one event)."""
    return stable_entry_id(event_time(record), run_id, str(record.storage_id), *parts)


def step_started_at(instance: Any, run_id: str, step_key: str, before: datetime | None = None) -> datetime | None:
    """When the step last started in the run (before ``before``), from its STEP_START event.

    Newest first, a page at a time: the step that asks has usually just started.
    """
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id, cursor=cursor, of_type=dg.DagsterEventType.STEP_START, limit=100, ascending=False
        )
        for record in page.records:
            if record.event_log_entry.step_key == step_key and (before is None or event_time(record) <= before):
                return event_time(record)
        if not page.has_more:
            return None
        cursor = page.cursor


def recorded(tracker: LoreTracker, file_key: str, entry_id: str) -> bool:
    """True when the history already holds ``entry_id`` (another process recorded the event)."""
    history = tracker.get_history(file_key)
    return history is not None and history.entry(entry_id) is not None


def run_orchestrator(run: Any, step: str, partition: str | None, ui_url: str | None) -> OrchestratorInfo:
    """An ``OrchestratorInfo`` for a step of ``run`` (a ``DagsterRun``), seen after the fact."""
    return orchestrator_info(
        "dagster", run.run_id, run.job_name, step, partition=partition, url=run_url(ui_url, run.run_id)
    )


def record_declared_writes(lore: LoreResource, context: dg.InitResourceContext) -> None:
    """Entries for objects assets wrote themselves and named in ``lore/writes`` metadata."""
    run, instance = context.run, context.instance
    if run is None or instance is None:
        return
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    tracker = lore.get_tracker()
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None or META_WRITES not in materialization.metadata:
            continue
        if not REGISTRY.claim_event(run.run_id, record.storage_id):
            continue  # already handled in this process (resources may tear down twice)
        metadata: Mapping[str, Any] = materialization.metadata
        writes = as_key_list(metadata.get(META_WRITES))
        reads = as_key_list(metadata.get(META_READS))
        step = asset_step_name(materialization.asset_key)
        completed = event_time(record)
        started = step_started_at(instance, run.run_id, record.event_log_entry.step_key or "", completed)
        refs: list[LineageRef] | None = None
        for key in writes:
            # Every process of the run may see this materialization: one id, so it is recorded once.
            entry_id = event_entry_id(run.run_id, record, key)
            with tracking_errors(
                f"the history of {key}", raise_on_error=lore.raise_on_error, logger=DagsterLogs(context.log)
            ):
                if recorded(tracker, key, entry_id):
                    continue
                if refs is None:
                    refs = [_latest_ref(tracker, k) for k in reads]
                tracker.record(
                    key,
                    step=step,
                    status="success",
                    input=reads or None,
                    started_at=started,
                    completed_at=completed,
                    orchestrator=run_orchestrator(run, step, materialization.partition, lore.dagster_ui_url),
                    replay_of=replay_target(run.tags, key, step),
                    derived_from=refs,
                    entry_id=entry_id,
                )


def _latest_ref(tracker: LoreTracker, key: str) -> LineageRef:
    history = tracker.get_history(key)
    entry = history.latest(status=StepStatus.SUCCESS) if history is not None else None
    return LineageRef(file_key=key, entry_id=entry.id if entry is not None else None)
