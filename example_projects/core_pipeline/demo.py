"""The example pipeline on Lore's core, end to end, on a local directory that plays the bucket.

raw uploads -> validate -> convert (one JSON file per CSV) -> summary (derived from every conversion).
One upload is malformed, so its validation fails; the failure index finds it, the
operator repairs the file, and a replay by step name fixes it. The run exits 0 only
when every file ended with a successful latest entry and no failure is left.

    python example_projects/core_pipeline/demo.py [--root DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
from pathlib import Path

from lore_core import LoreTracker, StepContext, lineage_to_text

UPLOADS = {
    "raw/orders-2026-11-01.csv": "order_id,amount\n1,20.50\n2,13.00\n",
    "raw/orders-2026-11-02.csv": "order_id,amount\n3,7.25\n4,99.99\n5,1.00\n",
    "raw/orders-2026-11-03.csv": "order_id,amount\n6,twelve\n",  # malformed: fails validation
}


def build(root: Path) -> LoreTracker:
    tracker = LoreTracker.from_url(root.as_uri())

    def read(key: str) -> str:
        return (root / key).read_text()

    def write(key: str, text: str) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(text)

    @tracker.step("validate")
    def validate(ctx: StepContext) -> dict[str, int]:
        rows = list(csv.DictReader(io.StringIO(read(ctx.file_key))))
        for n, row in enumerate(rows, start=2):
            try:
                float(row["amount"])
            except ValueError:
                raise ValueError(f"{ctx.file_key} line {n}: amount {row['amount']!r} is not a number") from None
        return {"rows": len(rows)}

    @tracker.step("convert")
    def convert(ctx: StepContext) -> dict[str, float]:
        rows = list(csv.DictReader(io.StringIO(read(ctx.file_key))))
        out = ctx.input["target"]
        write(out, json.dumps([{"order_id": int(r["order_id"]), "amount": float(r["amount"])} for r in rows]))
        ctx.produce(out)
        return {"total": round(sum(float(r["amount"]) for r in rows), 2)}

    return tracker


def process(tracker: LoreTracker, key: str) -> bool:
    """Validate then convert one upload; False when a step failed."""
    if tracker.run(key, step="validate", skip_if_succeeded=True).status == "failed":
        return False
    target = key.replace("raw/", "converted/").replace(".csv", ".json")
    return tracker.run(key, step="convert", input={"target": target}, skip_if_succeeded=True).ok


def summarise(tracker: LoreTracker, root: Path) -> None:
    converted = sorted(p for p in tracker.list_tracked_files(prefix="converted/"))
    total = sum(sum(r["amount"] for r in json.loads((root / k).read_text())) for k in converted)
    (root / "summary").mkdir(exist_ok=True)
    (root / "summary/orders.json").write_text(json.dumps({"files": len(converted), "total": round(total, 2)}))
    tracker.record("summary/orders.json", step="summarise", output={"files": len(converted)}, derived_from=converted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(".lore-demo/bucket"), help="directory playing the bucket")
    args = parser.parse_args()
    root: Path = args.root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    for key, text in UPLOADS.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(text)
    tracker = build(root)
    print(f"Lore store: {root.as_uri()} (histories under {root / tracker.prefix})\n")

    print("== first run")
    for key in UPLOADS:
        print(f"  {key}: {'ok' if process(tracker, key) else 'FAILED'}")

    failures = list(tracker.list_failed())
    print(f"\n== failure index: {len(failures)} entry(ies)")
    for failure in failures:
        entry = tracker.get_history(failure.file_key).entry(failure.entry_id)  # type: ignore[union-attr]
        print(f"  {failure.file_key}  {failure.step}  {entry.error.message if entry and entry.error else ''}")

    print("\n== an operator repairs the bad upload and replays the failed entries")
    (root / "raw/orders-2026-11-03.csv").write_text("order_id,amount\n6,12.00\n")
    for failure in failures:
        result = tracker.replay(failure.file_key, failure.entry_id)
        print(f"  replay of {failure.entry_id} on {failure.file_key}: {result.status}")
        process(tracker, failure.file_key)
    summarise(tracker, root)

    print("\n== lineage of the summary")
    lineage = tracker.get_lineage("summary/orders.json")
    assert lineage is not None
    print(lineage_to_text(lineage))

    print("\n== history of the repaired upload")
    for entry in tracker.get_history("raw/orders-2026-11-03.csv").entries:  # type: ignore[union-attr]
        note = f" (replay of {entry.replay_of})" if entry.replay_of else ""
        print(f"  {entry.step:9} {entry.status.value:8} attempt {entry.attempt}{note}")

    unhealthy = [
        h.file_key
        for h in tracker.list_all_histories()
        if h.entries and any(h.latest(step=e.step).status.value != "success" for e in h.entries)  # type: ignore[union-attr]
    ]
    left = list(tracker.list_failed())
    print(f"\n== done: {len(list(tracker.list_tracked_files()))} files tracked, {len(left)} failure(s) left")
    if unhealthy or left:
        print(f"  not all files succeeded: {unhealthy or [f.file_key for f in left]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
