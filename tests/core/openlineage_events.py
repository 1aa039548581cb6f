"""Reading back what openlineage-python's file transport wrote, into the client's own classes.

Each line is rebuilt as a ``RunEvent`` from the client's generated classes (any facet not
known here fails the test) and must serialize back, through the client's ``Serde``, to
exactly the line that was written: the events have the client's shape, no more, no less.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    tags_run,
)
from openlineage.client.serde import Serde

OL_YAML = "transport:\n  type: file\n  log_file_path: {path}\n  append: true\n"


def file_transport_config(directory: Path) -> tuple[Path, Path]:
    """An ``openlineage.yml`` for the client's file transport (one JSON event per line) and its log path."""
    log_path = directory / "openlineage-events.jsonl"
    config = directory / "openlineage.yml"
    config.write_text(OL_YAML.format(path=log_path), encoding="utf-8")
    return config, log_path


def _producer(facet: dict[str, Any]) -> dict[str, Any]:
    return {"producer": facet["_producer"]}


def _run_facet(name: str, raw: dict[str, Any]) -> Any:
    if name == "parent":
        root = raw.get("root")
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=raw["run"]["runId"]),
            job=parent_run.Job(namespace=raw["job"]["namespace"], name=raw["job"]["name"]),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=root["run"]["runId"]),
                job=parent_run.RootJob(namespace=root["job"]["namespace"], name=root["job"]["name"]),
            )
            if root
            else None,
            **_producer(raw),
        )
    if name == "errorMessage":
        return error_message_run.ErrorMessageRunFacet(
            message=raw["message"],
            programmingLanguage=raw["programmingLanguage"],
            stackTrace=raw.get("stackTrace"),
            **_producer(raw),
        )
    if name == "processing_engine":
        return processing_engine_run.ProcessingEngineRunFacet(
            version=raw["version"],
            name=raw.get("name"),
            openlineageAdapterVersion=raw.get("openlineageAdapterVersion"),
            **_producer(raw),
        )
    if name == "tags":  # added by the client itself
        return tags_run.TagsRunFacet(
            tags=[
                tags_run.TagsRunFacetFields(key=t["key"], value=t["value"], source=t.get("source")) for t in raw["tags"]
            ],
            **_producer(raw),
        )
    raise AssertionError(f"unexpected run facet {name!r}: {raw}")


def _job_facet(name: str, raw: dict[str, Any]) -> Any:
    if name == "jobType":
        return job_type_job.JobTypeJobFacet(
            processingType=raw["processingType"],
            integration=raw["integration"],
            jobType=raw.get("jobType"),
            **_producer(raw),
        )
    raise AssertionError(f"unexpected job facet {name!r}: {raw}")


def _dataset_facets(raw: dict[str, Any]) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    for name, facet in raw.items():
        assert name == "version", f"unexpected dataset facet {name!r}: {facet}"
        facets[name] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=facet["datasetVersion"], **_producer(facet)
        )
    return facets


def parse_run_event(raw: dict[str, Any]) -> RunEvent:
    """``raw`` as the client's ``RunEvent``; it must serialize back to ``raw`` exactly."""
    event = RunEvent(
        eventType=RunState(raw["eventType"]),
        eventTime=raw["eventTime"],
        run=Run(
            runId=raw["run"]["runId"],
            facets={name: _run_facet(name, facet) for name, facet in raw["run"].get("facets", {}).items()},
        ),
        job=Job(
            namespace=raw["job"]["namespace"],
            name=raw["job"]["name"],
            facets={name: _job_facet(name, facet) for name, facet in raw["job"].get("facets", {}).items()},
        ),
        inputs=[
            InputDataset(namespace=d["namespace"], name=d["name"], facets=_dataset_facets(d.get("facets", {})))
            for d in raw.get("inputs", [])
        ],
        outputs=[
            OutputDataset(namespace=d["namespace"], name=d["name"], facets=_dataset_facets(d.get("facets", {})))
            for d in raw.get("outputs", [])
        ],
        producer=raw["producer"],
    )
    assert Serde.to_dict(event) == raw, "the event does not round-trip through the client's classes"
    return event


def read_events(path: Path) -> list[RunEvent]:
    """Every event the file transport wrote, in order, as the client's classes."""
    if not path.exists():
        return []
    return [parse_run_event(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
