"""What Lore shows in Dagster (issue 9): labels in the ``lore/lineage`` Markdown are data, never
Markdown or HTML; a failed partition shows its failure (entry, error, a link to the run); a
replayed materialization says it is a replay; root-asset and failure entries have a duration.
Real runs (``materialize`` on a real instance) against the local S3 server; the Markdown is
rendered by a CommonMark renderer with raw HTML allowed, the most permissive a UI could use."""

import html
import re
from typing import Any

import dagster as dg
from markdown_it import MarkdownIt

from lore_core import LineageNode, LineageRef, StepStatus
from lore_dagster import TAG_ENTRY_ID, TAG_FILE_KEY, TAG_STEP, LoreResource, lineage_markdown, lore_file_partitions

files = lore_file_partitions("files")

LINK_KEY = "raw/[md](javascript:alert(1)).csv"
HTML_KEY = "raw/<img src=x onerror=alert(1)>.csv"
TICK_KEY = "raw/`[x](javascript:alert(1))`.csv"  # breaks out of a `code span`


def _render(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).render(markdown)


def _text(rendered: str) -> str:
    """The text a reader sees: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


def _assert_inert(markdown: str, *labels: str) -> None:
    rendered = _render(markdown)
    assert "<a " not in rendered and "<img" not in rendered, rendered
    text = _text(rendered)
    for label in labels:
        assert label in text, (label, text)  # the whole name, not part of it


def test_lineage_labels_are_escaped_at_the_root_and_below() -> None:
    for hostile in (LINK_KEY, HTML_KEY, TICK_KEY, "raw/`code` **bold** _it_ ~~x~~ &amp; <b>b</b>.csv", "raw/a\nb.csv"):
        parent = LineageNode(file_key=hostile, bucket="b")
        root = LineageNode(file_key=hostile, bucket="b", parents=[parent], via=None)
        shown = hostile.replace("\n", " ")
        _assert_inert(lineage_markdown(root), shown)
        # In another bucket the label is an s3:// URL, escaped the same way.
        _assert_inert(lineage_markdown(LineageNode(file_key=hostile, bucket="other"), home_bucket="b"), shown)


@dg.asset(partitions_def=files)
def sized(context: dg.AssetExecutionContext, lore: LoreResource) -> int:
    body = lore.get_s3_client().get_object(Bucket=lore.get_tracker().bucket, Key=context.partition_key)["Body"]
    data = body.read()
    if data.startswith(b"bad"):
        raise ValueError(f"{context.partition_key}: not a CSV")
    return len(data)


def _metadata(event: Any) -> dict[str, Any]:
    return {k: v.value for k, v in event.metadata.items()}


def test_materialized_lineage_of_hostile_keys_renders_as_text(
    resources: dict[str, Any], instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    for key in (LINK_KEY, HTML_KEY):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
        instance.add_dynamic_partitions("files", [key])
        assert dg.materialize([sized], partition_key=key, resources=resources, instance=instance).success
        event = instance.get_latest_materialization_event(dg.AssetKey("sized"))
        assert event is not None and event.asset_materialization is not None
        meta = _metadata(event.asset_materialization)
        _assert_inert(meta["lore/lineage"], f"assets/sized/{key}", key)
        _assert_inert(meta["lore/derived_from"], key)


def test_a_failed_partition_shows_its_failure_and_a_replay_says_it_is_one(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, s3_client: Any, bucket: str
) -> None:
    key = "raw/broken.csv"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"bad data")
    instance.add_dynamic_partitions("files", [key])
    failed_run = dg.materialize(
        [sized], partition_key=key, resources=resources, instance=instance, raise_on_error=False
    )
    assert not failed_run.success
    tracker = lore.get_tracker()
    history = tracker.get_history(key)
    assert history is not None
    (failed,) = history.entries
    assert failed.status is StepStatus.FAILED

    # The failed partition's page: an observation with the entry, the error and the run.
    observations = instance.fetch_observations(dg.AssetKey("sized"), limit=10).records
    (observation,) = [r.asset_observation for r in observations if r.asset_observation is not None]
    assert observation.partition == key
    shown = _metadata(observation)
    assert shown["lore/status"] == "failed" and shown["lore/entry_id"] == failed.id
    assert shown["lore/error"] == f"ValueError: {key}: not a CSV"
    assert shown["lore/file"] == f"s3://{bucket}/{key}"
    assert shown["lore/run_id"] == failed_run.run_id
    assert shown["lore/run"] == f"http://localhost:3000/runs/{failed_run.run_id}"

    # The replay (as the replay sensor requests it) says so on its materialization; a first run does not.
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
    tags = {TAG_FILE_KEY: key, TAG_ENTRY_ID: failed.id, TAG_STEP: "sized"}
    assert dg.materialize([sized], partition_key=key, resources=resources, instance=instance, tags=tags).success
    event = instance.get_latest_materialization_event(dg.AssetKey("sized"))
    assert event is not None and event.asset_materialization is not None
    meta = _metadata(event.asset_materialization)
    assert meta["lore/replay"] is True and meta["lore/replay_of"] == failed.id
    s3_client.put_object(Bucket=bucket, Key="raw/fresh.csv", Body=b"a\n")
    instance.add_dynamic_partitions("files", ["raw/fresh.csv"])
    assert dg.materialize([sized], partition_key="raw/fresh.csv", resources=resources, instance=instance).success
    fresh = instance.get_latest_materialization_event(dg.AssetKey("sized"))
    assert fresh is not None and fresh.asset_materialization is not None
    assert _metadata(fresh.asset_materialization)["lore/replay"] is False


@dg.asset
def root_numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset
def root_broken() -> int:
    raise RuntimeError("root_broken always fails")


def test_root_asset_and_failure_entries_have_a_duration(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance
) -> None:
    assert dg.materialize([root_numbers], resources=resources, instance=instance).success
    assert not dg.materialize([root_broken], resources=resources, instance=instance, raise_on_error=False).success
    tracker = lore.get_tracker()
    for key in ("assets/root_numbers", "assets/root_broken"):
        history = tracker.get_history(key)
        assert history is not None, key
        (entry,) = history.entries
        # From the step's start (its STEP_START event); before, a root asset had no start but its end.
        assert entry.started_at < entry.completed_at, key  # type: ignore[operator]
        assert entry.duration_ms is not None and entry.duration_ms > 0, key


def test_derived_from_metadata_escapes_labels_too() -> None:
    from lore_dagster.metadata import _derived_from_markdown

    refs = [
        LineageRef(file_key=LINK_KEY, entry_id="01ABC"),
        LineageRef(file_key=HTML_KEY, bucket="other"),
        LineageRef(file_key=TICK_KEY),
    ]
    _assert_inert(_derived_from_markdown(refs, "home"), LINK_KEY, f"s3://other/{HTML_KEY}", TICK_KEY)
