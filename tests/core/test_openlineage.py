"""OpenLineage out (issue 12): each Lore entry as one OpenLineage run, sent through openlineage-python's
own client (file transport here, configured the standard way with ``OPENLINEAGE_CONFIG``) and read
back into the client's classes."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunState
from openlineage.client.transport import Transport

import lore_core.failure_index
import lore_core.lifecycle
import lore_core.models
import lore_core.openlineage
from lore_core import LineageRef, LoreError, LoreTracker, StepContext, StepEvent
from lore_core.ids import format_timestamp, new_entry_id, utc_now
from lore_core.models import HistoryEntry, OrchestratorInfo, StepStatus
from lore_core.openlineage import (
    LoreOpenLineage,
    airflow_dag_run_id,
    airflow_task_run_id,
    run_events,
    run_id_for,
    shared_sink,
)

from .openlineage_events import file_transport_config, read_events

BUCKET_URL = "memory://ol-{}"


@pytest.fixture()
def ol_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The standard configuration: OPENLINEAGE_CONFIG names an openlineage.yml with the file transport."""
    config, log_path = file_transport_config(tmp_path)
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", "OPENLINEAGE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    monkeypatch.setattr(lore_core.openlineage, "_shared", {})  # openlineage=True: a sink of this test's own
    return log_path


@pytest.fixture()
def sink(ol_log: Path) -> Iterator[LoreOpenLineage]:
    made = LoreOpenLineage()
    yield made
    made.close(timeout=30)


def _tracker(sink: LoreOpenLineage | bool = True) -> LoreTracker:
    return LoreTracker.from_url(BUCKET_URL.format(uuid.uuid4().hex[:8]), openlineage=sink)


def _events(sink: LoreOpenLineage, log_path: Path) -> list[Any]:
    assert sink.flush(timeout=30)
    return read_events(log_path)


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_a_step_with_two_sources_and_two_outputs(sink: LoreOpenLineage, ol_log: Path) -> None:
    tracker = _tracker(sink)
    bucket = f"s3://{tracker.bucket}"
    tracker.record("raw/a.csv", step="ingest")
    tracker.record("raw/b.csv", step="ingest")
    # record(K, derived_from=[A, B]) wrote K from A and B (and its step produced report.pdf).
    joined = tracker.record("joined.csv", step="join", derived_from=["raw/a.csv", "raw/b.csv"], produces=["report.pdf"])
    # run(F, produces=[P, Q]) read F and wrote P and Q.

    def split(ctx: StepContext) -> None:
        ctx.produce("parts/1.csv")
        ctx.produce("parts/2.csv")

    result = tracker.run("joined.csv", step="split", handler=split)
    assert result.status == "success"

    events = _events(sink, ol_log)
    join = [e for e in events if e.job.name == "join"]
    # A recorded (already finished) entry: START at its start, then COMPLETE at its end.
    assert [e.eventType for e in join] == [RunState.START, RunState.COMPLETE]
    assert {e.run.runId for e in join} == {run_id_for(joined.id)}
    assert [e.eventTime for e in join] == [format_timestamp(joined.started_at), format_timestamp(joined.completed_at)]  # type: ignore[arg-type]
    complete = join[-1]
    assert complete.job.namespace == "lore"
    assert _names(complete.inputs) == [(bucket, "raw/a.csv"), (bucket, "raw/b.csv")]  # type: ignore[arg-type]
    assert _names(complete.outputs) == [(bucket, "joined.csv"), (bucket, "report.pdf")]  # type: ignore[arg-type]

    run = [e for e in events if e.job.name == "split"]
    assert [e.eventType for e in run] == [RunState.START, RunState.COMPLETE]
    assert {e.run.runId for e in run} == {run_id_for(result.entry_id)}
    assert _names(run[-1].inputs) == [(bucket, "joined.csv")]  # type: ignore[arg-type]
    assert _names(run[-1].outputs) == [(bucket, "parts/1.csv"), (bucket, "parts/2.csv")]  # type: ignore[arg-type]
    assert "errorMessage" not in (run[-1].run.facets or {}) and "parent" not in (run[-1].run.facets or {})
    assert run[-1].job.facets["jobType"].integration == "LORE"  # type: ignore[index,attr-defined]


def test_a_failure_carries_the_error_message_facet(sink: LoreOpenLineage, ol_log: Path) -> None:
    tracker = _tracker(sink)

    def broken(ctx: StepContext) -> None:
        raise ValueError("column 'id' is missing")

    result = tracker.run("raw/c.csv", step="validate", handler=broken)
    assert result.status == "failed"
    start, fail = _events(sink, ol_log)
    assert (start.eventType, fail.eventType) == (RunState.START, RunState.FAIL)
    assert start.run.runId == fail.run.runId == run_id_for(result.entry_id)
    error = fail.run.facets["errorMessage"]  # type: ignore[index]
    assert error.message == "ValueError: column 'id' is missing"  # type: ignore[attr-defined]
    assert error.programmingLanguage == "PYTHON"  # type: ignore[attr-defined]
    assert "in broken" in error.stackTrace and "ValueError: column 'id' is missing" in error.stackTrace  # type: ignore[attr-defined]
    assert "errorMessage" not in (start.run.facets or {})


def test_a_replay_is_a_new_run_of_the_same_job(sink: LoreOpenLineage, ol_log: Path) -> None:
    tracker = _tracker(sink)
    attempts: list[int] = []

    def flaky(ctx: StepContext) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("network blip")
        ctx.produce("clean/d.csv")

    failed = tracker.run("raw/d.csv", step="clean", handler=flaky)
    replayed = tracker.replay("raw/d.csv", failed.entry_id, flaky)
    assert (failed.status, replayed.status) == ("failed", "success")
    events = _events(sink, ol_log)
    assert [(e.run.runId, e.eventType) for e in events] == [
        (run_id_for(failed.entry_id), RunState.START),
        (run_id_for(failed.entry_id), RunState.FAIL),
        (run_id_for(replayed.entry_id), RunState.START),
        (run_id_for(replayed.entry_id), RunState.COMPLETE),
    ]
    assert run_id_for(failed.entry_id) != run_id_for(replayed.entry_id)
    assert {(e.job.namespace, e.job.name) for e in events} == {("lore", "clean")}
    assert _names(events[-1].outputs) == [(f"s3://{tracker.bucket}", "clean/d.csv")]  # type: ignore[arg-type]


def test_run_ids_are_uuidv7_made_of_the_entry_id_alone() -> None:
    first, second = new_entry_id(), new_entry_id()
    made = uuid.UUID(run_id_for(first))
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert run_id_for(first) == run_id_for(first) and run_id_for(first) != run_id_for(second)
    # The UUID's 48-bit time is the ULID's millisecond time: runs sort as their entries do.
    from lore_core.openlineage import _CROCKFORD

    ulid_ms = 0
    for char in first:
        ulid_ms = ulid_ms * 32 + _CROCKFORD[char]
    assert made.int >> 80 == ulid_ms >> 80
    # Fixed for a fixed id: the same in every process and release (a backend keeps these ids).
    assert run_id_for("01JDQ3W5Z8X0000000000000AB") == run_id_for("01JDQ3W5Z8X0000000000000AB")
    assert uuid.UUID(run_id_for("not-a-ulid")).version == 5


def test_a_namespace_of_its_own_and_bad_arguments(ol_log: Path) -> None:
    sink = LoreOpenLineage(namespace="files")
    tracker = _tracker(sink)
    tracker.record("a.csv", step="s")
    assert {e.job.namespace for e in _events(sink, ol_log)} == {"files"}
    with pytest.raises(LoreError, match="openlineage= takes True or an event sink"):
        _tracker(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="job namespace"):
        LoreOpenLineage(namespace="")


def test_openlineage_true_uses_the_shared_sink_and_the_standard_config(ol_log: Path) -> None:
    tracker = LoreTracker.from_url(BUCKET_URL.format(uuid.uuid4().hex[:8]), openlineage=True)
    entry = tracker.record("e.csv", step="s")
    shared = shared_sink()
    assert shared.flush(timeout=30)
    assert run_id_for(entry.id) in {e.run.runId for e in read_events(ol_log)}


def test_openlineage_disabled_sends_nothing_and_the_step_runs(ol_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    sink = LoreOpenLineage()
    tracker = _tracker(sink)
    assert tracker.run("f.csv", step="s", handler=lambda ctx: None).status == "success"
    assert _events(sink, ol_log) == []


class _Broken(Transport):
    kind = "broken"

    def emit(self, event: Any) -> Any:
        raise ConnectionError("the backend is down")


def test_a_failing_transport_is_logged_and_breaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    sink = LoreOpenLineage(client=OpenLineageClient(transport=_Broken()))
    tracker = _tracker(sink)
    with caplog.at_level(logging.WARNING, logger="lore"):
        assert tracker.run("g.csv", step="s", handler=lambda ctx: None).status == "success"
        assert sink.flush(timeout=30)
    assert "could not send the OpenLineage event step.started of 'g.csv'" in caplog.text
    assert "ConnectionError: the backend is down" in caplog.text


class _SilentServer:
    """Accepts HTTP connections and answers none of them until ``release()``: a backend that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.released = threading.Event()
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(120)
            while True:
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        0,
                    )
                    while len(body) < length:
                        body += conn.recv(65536)
                except OSError:
                    return
                self.requests += 1
                self.accepted.set()
                self.released.wait()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.sock.close()


@pytest.fixture()
def silent_server() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def test_a_hanging_backend_never_blocks_a_step(
    silent_server: _SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "openlineage.yml"
    # An hour's timeout: a sink that sent from the step's thread would hold the step that long.
    config.write_text(
        f"transport:\n  type: http\n  url: http://127.0.0.1:{silent_server.port}\n  timeout: 3600\n"
        "  retry:\n    total: 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.delenv("OPENLINEAGE_DISABLED", raising=False)
    sink = LoreOpenLineage(queue_size=1)
    tracker = _tracker(sink)
    done = threading.Event()
    results: list[str] = []

    def steps() -> None:
        for name in ("a", "b", "c"):
            results.append(tracker.run(f"{name}.csv", step="s", handler=lambda ctx: None).status)
        done.set()

    with caplog.at_level(logging.WARNING, logger="lore"):
        threading.Thread(target=steps, daemon=True).start()
        assert silent_server.accepted.wait(60), "the sink never tried to send"
        # The steps end while the backend still holds the first event unanswered.
        assert done.wait(60), "a step waited for the OpenLineage backend"
        assert not silent_server.released.is_set()
    assert results == ["success"] * 3
    # One event in flight, one waiting: the other four were dropped, with a warning.
    assert sink.dropped >= 1
    assert "OpenLineage queue full" in caplog.text
    silent_server.release()
    assert sink.flush(timeout=60)
    assert silent_server.requests + sink.dropped == 6


# ---------------------------------------------------------------------- abandoned entries


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> list[timedelta]:
    """A clock that can jump forward (leases expire without waiting)."""
    offset = [timedelta(0)]
    real = lore_core.models.utc_now

    def now() -> Any:
        return real() + offset[0]

    for module in (lore_core.models, lore_core.failure_index, lore_core.lifecycle):
        monkeypatch.setattr(module, "utc_now", now)
    return offset


def test_an_abandoned_entry_is_aborted_once_and_a_late_success_has_the_last_word(
    sink: LoreOpenLineage, ol_log: Path, clock: list[timedelta]
) -> None:
    tracker = _tracker(sink)
    tracker.configure(lease_seconds=60, mark_running=True)
    entry_id = tracker.start("h.csv", step="convert")
    clock[0] = timedelta(minutes=5)  # the worker stopped renewing its lease
    (failed,) = tracker.list_failed()
    assert failed.abandoned
    assert list(tracker.list_failed())  # a sensor's next tick: announced once only
    tracker.succeed("h.csv", entry_id)  # the worker was alive after all
    events = [e for e in _events(sink, ol_log) if e.run.runId == run_id_for(entry_id)]
    assert [e.eventType for e in events] == [RunState.START, RunState.ABORT, RunState.COMPLETE]
    _start, abort, complete = events
    history = tracker.get_history("h.csv")
    assert history is not None
    assert abort.eventTime == format_timestamp(history.entries[0].started_at + timedelta(seconds=60))
    # By time and by arrival, the COMPLETE comes last: a backend ends the run COMPLETE.
    assert complete.eventTime >= abort.eventTime


def test_a_later_success_of_the_step_aborts_the_abandoned_entry(
    sink: LoreOpenLineage, ol_log: Path, clock: list[timedelta]
) -> None:
    tracker = _tracker(sink)
    tracker.configure(lease_seconds=60, mark_running=True)
    dead = tracker.start("i.csv", step="convert")
    clock[0] = timedelta(minutes=5)
    fresh = tracker.run("i.csv", step="convert", handler=lambda ctx: None)
    stored = tracker.get_history("i.csv")
    assert stored is not None and stored.entry(dead).error.name == "LeaseExpired"  # type: ignore[union-attr]
    events = [(e.run.runId, e.eventType) for e in _events(sink, ol_log)]
    assert events == [
        (run_id_for(dead), RunState.START),
        (run_id_for(fresh.entry_id), RunState.START),
        (run_id_for(dead), RunState.ABORT),
        (run_id_for(fresh.entry_id), RunState.COMPLETE),
    ]
    list(tracker.list_failed())  # resolved: nothing more to announce
    assert len(_events(sink, ol_log)) == 4


def test_plain_subscribers_hear_of_an_abandoned_entry_once(clock: list[timedelta]) -> None:
    tracker = LoreTracker.from_url(BUCKET_URL.format(uuid.uuid4().hex[:8]))
    seen: list[StepEvent] = []
    tracker.on("step.abandoned", seen.append)
    tracker.configure(lease_seconds=60, mark_running=True)
    entry_id = tracker.start("j.csv", step="s")
    assert list(tracker.list_failed()) == [] and seen == []  # alive: nothing abandoned
    clock[0] = timedelta(minutes=5)
    for _ in range(3):  # three sensor ticks
        assert [f.entry_id for f in tracker.list_failed()] == [entry_id]
    assert [(e.kind, e.file_key, e.entry.id, str(e.entry.status)) for e in seen] == [
        ("step.abandoned", "j.csv", entry_id, "running")
    ]


# ---------------------------------------------------------------------- parent facets


def _event(info: OrchestratorInfo | None, kind: Any = "step.succeeded") -> StepEvent:
    now = utc_now()
    entry = HistoryEntry(
        id=new_entry_id(),
        step="dag.task",
        status=StepStatus.SUCCESS,
        started_at=now,
        completed_at=now,
        orchestrator=info,
    )
    return StepEvent(kind=kind, bucket="b", prefix=".lore-s3", file_key="k", entry=entry)


def test_the_airflow_parent_is_the_task_run_the_provider_names() -> None:
    info = OrchestratorInfo.model_validate(
        {
            "system": "airflow",
            "runId": "manual__2026-11-25",
            "job": "orders",
            "task": "clean",
            "tryNumber": 2,
            "logicalDate": "2026-11-25T10:00:00.123456+00:00",
            "clearNumber": 1,
        }
    )
    (event,) = run_events(_event(info), airflow_namespace="prod")
    parent = event.run.facets["parent"]  # type: ignore[index]
    from datetime import datetime

    date = datetime.fromisoformat("2026-11-25T10:00:00.123456+00:00")
    assert parent.run.runId == airflow_task_run_id("prod", "orders", "clean", 2, date, -1)  # type: ignore[attr-defined]
    assert (parent.job.namespace, parent.job.name) == ("prod", "orders.clean")  # type: ignore[attr-defined]
    assert parent.root.run.runId == airflow_dag_run_id("prod", "orders", date, 1)  # type: ignore[attr-defined]
    assert (parent.root.job.namespace, parent.root.job.name) == ("prod", "orders")  # type: ignore[attr-defined]
    # The namespace is part of the id: another namespace names another run.
    assert airflow_task_run_id("default", "orders", "clean", 2, date, -1) != parent.run.runId  # type: ignore[attr-defined]
    # Without the DAG run's date the provider's id cannot be known: no parent rather than a wrong one.
    bare = OrchestratorInfo(system="airflow", run_id="manual__1", job="orders", task="clean", try_number=2)
    (event,) = run_events(_event(bare))
    assert "parent" not in (event.run.facets or {})


def test_the_dagster_parent_is_the_dagster_run() -> None:
    run_id = str(uuid.uuid4())
    info = OrchestratorInfo(system="dagster", run_id=run_id, job="__ASSET_JOB", task="converted")
    (event,) = run_events(_event(info))
    parent = event.run.facets["parent"]  # type: ignore[index]
    assert parent.run.runId == run_id  # type: ignore[attr-defined]
    assert (parent.job.namespace, parent.job.name) == ("dagster", "__ASSET_JOB")  # type: ignore[attr-defined]
    # A run id that is not a UUID cannot be an OpenLineage run id.
    (event,) = run_events(_event(OrchestratorInfo(system="cron", run_id="nightly-42", job="j")))
    assert "parent" not in (event.run.facets or {})


def test_a_pinned_source_version_becomes_the_dataset_version_facet() -> None:
    event = _event(None)
    pinned = LineageRef.model_validate({"fileKey": "raw/a.csv", "entryId": new_entry_id(), "versionId": "v-7"})
    other = LineageRef(file_key="raw/b.csv", bucket="other-bucket")
    event = StepEvent(
        kind="step.succeeded",
        bucket="b",
        prefix=".lore-s3",
        file_key="joined.csv",
        entry=event.entry,
        sources=(pinned, other),
        recorded_finished=True,
    )
    start, complete = run_events(event)
    assert (start.eventType, complete.eventType) == (RunState.START, RunState.COMPLETE)
    first, second = complete.inputs  # type: ignore[misc]
    assert (first.namespace, first.name, first.facets["version"].datasetVersion) == ("s3://b", "raw/a.csv", "v-7")  # type: ignore[index,attr-defined]
    assert (second.namespace, second.name, second.facets) == ("s3://other-bucket", "raw/b.csv", {})
