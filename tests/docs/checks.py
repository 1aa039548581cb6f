"""What each Python block of the README and docs/ must do when it runs.

A ```python block preceded by ``<!-- test: NAME -->`` (an HTML comment: GitHub does not
render it) is run by the check registered here under NAME. A check prepares the
bucket, runs the block once with ``run(**names)`` (the names the block uses but leaves
to the reader, e.g. the user's own ``convert_pdf``; everything Lore does in the block
runs for real, against the local S3 server over HTTP) and then asserts what the block
promises. The block runs in a fresh namespace, compiled with the Markdown file's name
and line numbers, so a traceback points at the document.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lore_core import LoreTracker, StepStatus

BUCKET = "my-bucket"  # the bucket every example names
STORE = f"s3://{BUCKET}/.lore-s3"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class RunBlock(Protocol):
    """Runs the block once in a fresh namespace holding ``names``; returns the namespace."""

    source: str  # the block's code

    def __call__(self, **names: Any) -> dict[str, Any]: ...


@dataclass
class DocEnv:
    """The world a block runs in: the local S3 server (``AWS_ENDPOINT_URL`` points boto3 at
    it, so the blocks need no endpoint argument) with an empty ``my-bucket``."""

    endpoint: str
    client: Any
    tmp_path: Path
    stack: ExitStack
    setenv: Callable[[str, str], None]  # for the rest of the test
    run_check: Callable[[str], None]  # runs the block marked with NAME, with its check
    _instance: Any = field(default=None, init=False)

    def tracker(self) -> LoreTracker:
        """A tracker of its own on the examples' store, to read back what a block wrote."""
        return LoreTracker.from_url(STORE, endpoint_url=self.endpoint)

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def dagster_instance(self) -> Any:
        """A real (sqlite, on-disk) Dagster instance, the same for the whole test."""
        if self._instance is None:
            import dagster as dg

            home = self.tmp_path / "dagster"
            home.mkdir()
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            self._instance = self.stack.enter_context(
                dg.DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}})
            )
        return self._instance

    def assert_no_tracking_errors(self) -> None:
        """Lore logs what it could not record and lets the asset go on: in a documented example
        that is a failure too."""
        import logging

        instance = self.dagster_instance()
        errors = [
            entry.user_message
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.level >= logging.ERROR and entry.user_message.startswith("lore:")
        ]
        assert not errors, f"Lore could not record everything: {errors}"


Check = Callable[[DocEnv, RunBlock], None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        assert name not in CHECKS, f"two checks named {name!r}"
        CHECKS[name] = fn
        return fn

    return register


def _history(tracker: LoreTracker, key: str) -> Any:
    history = tracker.get_history(key)
    assert history is not None, f"no history for {key!r}"
    return history


def _steps(tracker: LoreTracker, key: str) -> list[tuple[str, str]]:
    return [(e.step, e.status.value) for e in _history(tracker, key).entries]


# --------------------------------------------------------------------------- README.md


@check("quick-start")
def quick_start(env: DocEnv, run: RunBlock) -> None:
    """The render succeeds, its pages are derived from it, and the block's replay loop really
    replays a failure found in the index (an earlier render of another upload that failed)."""
    tracker = env.tracker()
    earlier = tracker.record(
        "uploads/scan.pdf", step="render", status="failed", input={"dpi": 150}, error=RuntimeError("no pages")
    )
    converted: list[tuple[str, int]] = []

    def convert_pdf(file_key: str, dpi: int) -> list[bytes]:  # the reader's own code
        converted.append((file_key, dpi))
        return [b"\x89PNG"] * (2 if file_key == "uploads/scan.pdf" else 1)

    ns = run(convert_pdf=convert_pdf)
    result = ns["result"]
    assert result.status == "success", result.error
    assert result.error is None and result.output == {"pages": 1}
    assert ULID.match(result.entry_id), result.entry_id
    (entry,) = _history(tracker, "uploads/report.pdf").entries
    assert (entry.id, entry.step, entry.input, entry.produces) == (
        result.entry_id,
        "render",
        {"dpi": 150},
        ["renders/report-0.png"],
    )
    (ref,) = _history(tracker, "renders/report-0.png").derived_from
    assert (ref.file_key, ref.entry_id) == ("uploads/report.pdf", result.entry_id)
    # The loop replayed the earlier failure with the handler registered by name.
    failed, replayed = _history(tracker, "uploads/scan.pdf").entries
    assert failed.id == earlier.id and failed.resolved_by == replayed.id
    assert (replayed.status, replayed.replay_of, replayed.input, replayed.output) == (
        StepStatus.SUCCESS,
        earlier.id,
        {"dpi": 150},
        {"pages": 2},
    )
    assert replayed.produces == ["renders/scan-0.png", "renders/scan-1.png"]
    assert converted == [("uploads/report.pdf", 150), ("uploads/scan.pdf", 150)]
    assert list(tracker.list_failed()) == []


@check("readme-dagster")
def readme_dagster(env: DocEnv, run: RunBlock) -> None:
    """The Definitions load, the job runs one file's partition through both assets (each
    output recorded, and each step on the file processed), and the replay sensor ticks."""
    import dagster as dg

    ns = run()
    defs = ns["defs"]
    dg.Definitions.validate_loadable(defs)
    instance = env.dagster_instance()
    env.put("raw/a.csv", b"id\n1\n")
    instance.add_dynamic_partitions("files", ["raw/a.csv"])
    assert defs.resolve_job_def("process").execute_in_process(partition_key="raw/a.csv", instance=instance).success

    tracker = env.tracker()
    assert _steps(tracker, "raw/a.csv") == [("validated", "success"), ("converted", "success")]
    stored = env.client.get_object(Bucket=BUCKET, Key="assets/converted/raw/a.csv")["Body"].read()
    assert json.loads(stored) == [{"line": "id", "converted": True}, {"line": "1", "converted": True}]
    (ref,) = _history(tracker, "assets/converted/raw/a.csv").derived_from
    assert ref.file_key == "assets/validated/raw/a.csv"
    (sensor,) = defs.sensors
    with dg.build_sensor_context(instance=instance, resources={"lore": ns["lore"]}, definitions=defs) as context:
        result = sensor(context)
    assert not getattr(result, "run_requests", None), "no failure, so no replay"
    env.assert_no_tracking_errors()


@check("tracker-api")
def tracker_api(env: DocEnv, run: RunBlock) -> None:
    """Both constructors point at the same store: what one writes, the other reads."""
    ns = run()
    tracker = ns["tracker"]
    assert (tracker.bucket, tracker.prefix) == (BUCKET, ".lore-s3")
    result = tracker.run("uploads/a.csv", step="validate", handler=lambda ctx: {"rows": 3})
    assert result.status == "success", result.error
    (entry,) = _history(env.tracker(), "uploads/a.csv").entries
    assert (entry.id, entry.output) == (result.entry_id, {"rows": 3})


# --------------------------------------------------------------------------- docs/dagster.md


@check("from-config")
def from_config(env: DocEnv, run: RunBlock) -> None:
    """``from_config()`` finds the store in a ``lore.toml`` of the working directory (the
    README's own example file), and arguments win over it."""
    import os

    from lore_core.settings import ENVIRONMENT

    project = env.tmp_path / "project"
    project.mkdir()
    (project / "lore.toml").write_text('store = "s3://my-bucket/.lore-s3"\nmax_entries = 200\n')
    env.setenv("XDG_CONFIG_HOME", str(env.tmp_path / "xdg"))
    for variable in ENVIRONMENT:
        env.setenv(variable, "")  # an empty variable is unset
    here = os.getcwd()
    os.chdir(project)
    try:
        ns = run()
        configured = LoreTracker.from_config()
    finally:
        os.chdir(here)
    assert configured.store.location(configured.prefix) == "s3://my-bucket/.lore-s3"
    assert configured.options.max_entries == 200
    assert configured.get_history("nothing") is None  # it reaches the bucket
    tracker = ns["tracker"]
    assert tracker.store.location(tracker.prefix) == "memory://demo/.lore-s3" and tracker.options.max_entries == 50


@check("dagster-definitions")
def dagster_definitions(env: DocEnv, run: RunBlock) -> None:
    """The complete Definitions, end to end: the file-partitions sensor finds the uploads,
    one malformed file fails in ``validated``, the replay sensor asks for exactly that file,
    the replay succeeds, and ``summary`` is derived from every file's ``converted``."""
    import dagster as dg

    from lore_dagster import TAG_ENTRY_ID

    env.setenv("LORE_S3_ENDPOINT", env.endpoint)  # the block reads dg.EnvVar("LORE_S3_ENDPOINT")

    def parse_and_check(body: bytes) -> list[dict[str, Any]]:
        rows = [line.split(",") for line in body.decode().splitlines()]
        header, data = rows[0], rows[1:]
        if any(len(row) != len(header) for row in data):
            raise ValueError("malformed row")
        return [dict(zip(header, row, strict=True)) for row in data]

    def convert(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**row, "converted": True} for row in rows]

    def summarise(converted: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {"rows": {key: len(rows) for key, rows in converted.items()}}

    ns = run(parse_and_check=parse_and_check, convert=convert, summarise=summarise)
    defs = ns["defs"]
    dg.Definitions.validate_loadable(defs)
    instance = env.dagster_instance()
    resources = {"lore": ns["lore"]}
    env.put("raw/a.csv", b"id,n\n1,2\n")
    env.put("raw/b.csv", b"id,n\n1\n")  # malformed
    env.put("raw/notes.txt", b"not a csv")  # not a .csv: no partition

    def tick(name: str) -> list[dg.RunRequest]:
        sensor = defs.resolve_sensor_def(name)
        with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
            result = sensor(context)
        if isinstance(result, dg.SkipReason):
            return []
        for add in result.dynamic_partitions_requests or []:  # what the sensor daemon does with them
            instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys or []))
        return list(result.run_requests or [])

    (files_sensor,) = [s.name for s in defs.sensors if not s.name.startswith("lore_replay")]
    requests = tick(files_sensor)
    assert sorted(str(r.partition_key) for r in requests) == ["raw/a.csv", "raw/b.csv"]
    assert sorted(instance.get_dynamic_partitions("files")) == ["raw/a.csv", "raw/b.csv"]
    per_file = defs.resolve_job_def("per_file")
    for request in requests:
        done = per_file.execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance, raise_on_error=False
        )
        assert done.success == (request.partition_key == "raw/a.csv")

    tracker = env.tracker()
    (failure,) = list(tracker.list_failed(prefix="raw/"))
    assert (failure.file_key, failure.step) == ("raw/b.csv", "validated")
    (replay,) = tick("lore_replay_per_file")
    assert (replay.run_key, replay.partition_key, replay.tags[TAG_ENTRY_ID]) == (
        failure.entry_id,
        "raw/b.csv",
        failure.entry_id,
    )
    env.put("raw/b.csv", b"id,n\n1,3\n")  # the operator repairs the upload
    assert per_file.execute_in_process(partition_key=replay.partition_key, tags=replay.tags, instance=instance).success
    assert _steps(tracker, "raw/b.csv") == [
        ("validated", "failed"),
        ("validated", "success"),
        ("converted", "success"),
    ]
    assert _history(tracker, "raw/b.csv").entries[1].replay_of == failure.entry_id
    assert list(tracker.list_failed()) == []

    summary = dg.materialize(
        [ns["validated"], ns["converted"], ns["summary"]],
        selection=[ns["summary"]],
        resources=defs.resources,
        instance=instance,
    )
    assert summary.success
    assert summary.output_for_node("summary") == {"rows": {"raw/a.csv": 1, "raw/b.csv": 1}}
    sources = {ref.file_key for ref in _history(tracker, "assets/summary").derived_from}
    assert sources == {"assets/converted/raw/a.csv", "assets/converted/raw/b.csv"}
    # dagster_ui_url: each entry links to its run in the UI.
    orchestrator = _history(tracker, "assets/summary").entries[-1].orchestrator
    assert orchestrator is not None and str(orchestrator.url).startswith("https://dagster.example.com/runs/")
    env.assert_no_tracking_errors()


@check("dagster-track")
def dagster_track(env: DocEnv, run: RunBlock) -> None:
    """``lore.track`` records a success with the block's output and the produced file, and a
    failed entry with the error when the block raises (the exception is re-raised)."""
    import dagster as dg

    from lore_dagster import LoreResource

    def make_thumbnail(src: str) -> dict[str, Any]:  # the reader's own code
        if "broken" in src:
            raise OSError(f"cannot decode {src}")
        return {"width": 128}

    ns = run(make_thumbnail=make_thumbnail)
    instance = env.dagster_instance()
    instance.add_dynamic_partitions("images", ["raw/cat.jpg", "raw/broken.jpg"])
    resources = {"lore": LoreResource(store=STORE)}
    for key, ok in (("raw/cat.jpg", True), ("raw/broken.jpg", False)):
        done = dg.materialize(
            [ns["thumbnails"]], partition_key=key, resources=resources, instance=instance, raise_on_error=False
        )
        assert done.success is ok

    tracker = env.tracker()
    (entry,) = _history(tracker, "raw/cat.jpg").entries
    assert (entry.step, entry.status, entry.output) == ("thumbnails", StepStatus.SUCCESS, {"width": 128})
    assert entry.orchestrator is not None and entry.orchestrator.system == "dagster"
    (ref,) = _history(tracker, "thumbs/raw/cat.jpg.png").derived_from
    assert (ref.file_key, ref.entry_id) == ("raw/cat.jpg", entry.id)
    (failed,) = _history(tracker, "raw/broken.jpg").entries
    assert failed.status is StepStatus.FAILED and failed.error is not None
    assert (failed.error.name, failed.error.message) == ("OSError", "cannot decode raw/broken.jpg")
    env.assert_no_tracking_errors()


@check("dagster-lineage-metadata")
def dagster_lineage_metadata(env: DocEnv, run: RunBlock) -> None:
    """The written key gets a success entry derived from the read key, recorded once the
    step's resources (the default IO manager) are torn down."""
    import dagster as dg

    from lore_dagster import LoreResource, LoreS3IOManager

    env.put("reports/in.csv", b"a\n1\n")
    tracker = env.tracker()
    source = tracker.record("reports/in.csv", step="upload")

    def copy(src: str, dst: str) -> None:  # the reader's own code
        env.client.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})

    ns = run(copy=copy)
    lore = LoreResource(store=STORE)
    resources = {"lore": lore, "io_manager": LoreS3IOManager(bucket=BUCKET, prefix="assets", lore=lore)}
    assert dg.materialize([ns["copy_report"]], resources=resources, instance=env.dagster_instance()).success
    (entry,) = _history(tracker, "reports/out.csv").entries
    assert (entry.step, entry.status) == ("copy_report", StepStatus.SUCCESS)
    (ref,) = _history(tracker, "reports/out.csv").derived_from
    assert (ref.file_key, ref.entry_id) == ("reports/in.csv", source.id)
    assert tracker.get_descendants("reports/in.csv") == ["reports/out.csv"]
    env.assert_no_tracking_errors()


@check("dagster-replay-sensor")
def dagster_replay_sensor(env: DocEnv, run: RunBlock) -> None:
    """The signature as documented: every keyword shown is a parameter of
    ``build_lore_replay_sensor`` with exactly that default, and the call builds the sensor."""
    import ast

    import dagster as dg

    from lore_dagster import build_lore_replay_sensor

    @dg.asset
    def validated() -> None: ...

    job = dg.define_asset_job("per_file", selection=[validated])
    ns = run(dg=dg, build_lore_replay_sensor=build_lore_replay_sensor, job=job)
    (statement,) = ast.parse(run.source).body
    assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
    call = statement.value
    parameters = inspect.signature(build_lore_replay_sensor).parameters
    assert [ast.unparse(arg) for arg in call.args] == [next(iter(parameters))]
    shown = {kw.arg: eval(compile(ast.Expression(kw.value), "<doc>", "eval"), ns) for kw in call.keywords}
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    assert shown == defaults, f"documented defaults {shown} differ from the signature's {defaults}"
    # "name=None  # default lore_replay_<job name>"
    sensor = build_lore_replay_sensor(job)
    assert sensor.name == "lore_replay_per_file"
    assert sensor.minimum_interval_seconds == shown["minimum_interval_seconds"]


# --------------------------------------------------------------------------- README.md: OpenLineage


@check("openlineage")
def openlineage(env: DocEnv, run: RunBlock) -> None:
    """The step is sent as one OpenLineage run (START, COMPLETE) through the client's file
    transport, configured the standard way (OPENLINEAGE_CONFIG), reading and writing the
    files it names."""
    import lore_core.openlineage

    log_path = env.tmp_path / "openlineage.jsonl"
    config = env.tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {log_path}\n  append: true\n", encoding="utf-8")
    env.setenv("OPENLINEAGE_CONFIG", str(config))
    saved, lore_core.openlineage._shared = lore_core.openlineage._shared, {}  # a sink (and client) of its own
    env.stack.callback(setattr, lore_core.openlineage, "_shared", saved)

    def clean(ctx: Any) -> dict[str, int]:  # the reader's own code
        return {"rows": 2}

    run(clean=clean)
    assert lore_core.openlineage.shared_sink().flush(timeout=60)
    events = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    (entry,) = _history(env.tracker(), "raw/orders.csv").entries
    run_id = lore_core.openlineage.run_id_for(entry.id)
    assert [(e["eventType"], e["run"]["runId"], e["job"]["namespace"], e["job"]["name"]) for e in events] == [
        ("START", run_id, "lore", "clean"),
        ("COMPLETE", run_id, "lore", "clean"),
    ]
    datasets = {kind: [(d["namespace"], d["name"]) for d in events[-1][kind]] for kind in ("inputs", "outputs")}
    assert datasets == {
        "inputs": [(f"s3://{BUCKET}", "raw/orders.csv")],
        "outputs": [(f"s3://{BUCKET}", "clean/orders.parquet")],
    }
