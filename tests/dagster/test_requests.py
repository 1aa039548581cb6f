"""What a materialization asks S3 for: each upstream history read at most once, nothing read back
that was just written, no request for a partition key that is not an object (issue 14).

Requests are seen through botocore's own ``before-send`` event on the client Lore uses (one per
process and configuration), so they are the real HTTP requests to the S3 server.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import unquote, urlparse

import dagster as dg

from lore_dagster import LoreResource

PARTS = dg.StaticPartitionsDefinition([f"p{n}" for n in range(3)])


@dg.asset
def raw() -> dict[str, list[int]]:
    return {"rows": list(range(50))}


@dg.asset
def clean(raw: dict[str, list[int]]) -> dict[str, list[int]]:
    return {"rows": [r for r in raw["rows"] if r % 2]}


@dg.asset
def report(clean: dict[str, list[int]]) -> int:
    return len(clean["rows"])


@dg.asset(partitions_def=PARTS)
def part_raw() -> list[int]:
    return [1, 2]


@dg.asset(partitions_def=PARTS)
def part_clean(part_raw: list[int]) -> list[int]:
    return part_raw


class Requests:
    def __init__(self, client: Any, bucket: str) -> None:
        self.bucket = bucket
        self.seen: list[tuple[str, str]] = []
        client.meta.events.register("before-send.s3", self._sent)

    def _sent(self, request: Any, **_: Any) -> None:
        path = unquote(urlparse(request.url).path)
        self.seen.append((request.method, path.removeprefix(f"/{self.bucket}/")))

    def take(self) -> list[tuple[str, str]]:
        seen, self.seen = self.seen, []
        return seen


def test_a_rematerialized_chain_reads_each_upstream_history_once_and_nothing_it_wrote(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, bucket: str
) -> None:
    assets = [raw, clean, report]
    assert dg.materialize(assets, resources=resources, instance=instance).success
    requests = Requests(lore.get_s3_client(), bucket)
    assert dg.materialize(assets, resources=resources, instance=instance).success
    seen = requests.take()
    history_gets = Counter(key for method, key in seen if method == "GET" and key.startswith(".lore-s3/"))
    # Each upstream history is read once (by the step that loads it); no step reads back its own.
    assert history_gets == {".lore-s3/assets/raw.json": 1, ".lore-s3/assets/clean.json": 1}, seen
    assert not [r for r in seen if r[0] == "HEAD"], seen
    # 3 objects written and 2 read, 3 histories written, 2 derivedTo links, 2 upstream reads.
    assert Counter(method for method, _ in seen) == {"PUT": 8, "GET": 4}, seen


def test_static_partition_keys_cost_no_request(
    resources: dict[str, Any], lore: LoreResource, instance: dg.DagsterInstance, bucket: str
) -> None:
    assets = [part_raw, part_clean]
    requests = Requests(lore.get_s3_client(), bucket)
    for key in PARTS.get_partition_keys():
        assert dg.materialize(assets, partition_key=key, resources=resources, instance=instance).success
    seen = requests.take()
    # "p0" names no object: never looked up, neither as an object nor as a history.
    assert not [r for r in seen if r[1] in {"p0", "p1", "p2", ".lore-s3/p0.json", ".lore-s3/p1.json"}], seen
    assert not [r for r in seen if r[0] == "HEAD"], seen
