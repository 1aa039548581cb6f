"""See the lineage on the asset pages: local S3 + the demo pipeline + dagster-webserver.

    python example_projects/dagster_pipeline/ui.py [--port 3000] [--check]

Starts the local S3 server, runs the demo pipeline (one file fails, is repaired and
replayed) into a fresh Dagster instance, then starts ``dagster-webserver`` on
``definitions.py`` at http://127.0.0.1:3000. Open an asset (e.g. ``Catalog > summary``):
its latest materialization shows ``lore/lineage``, ``lore/derived_from``,
``lore/entry_id`` and the file's success/failure counts. Ctrl-C stops everything.
``--check`` waits until the UI answers, checks the metadata through GraphQL, and exits.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import demo  # sets sys.path, credentials and telemetry for the example

HERE = Path(__file__).resolve().parent


def _wait_for(url: str, proc: "subprocess.Popen[bytes]", timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dagster-webserver exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise SystemExit(f"dagster-webserver did not answer {url} in {timeout_s}s")


def _check(base: str) -> bool:
    query = (
        '{ assetOrError(assetKey: {path: ["summary"]}) { ... on Asset { assetMaterializations(limit: 1) '
        "{ metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } } } }"
    )
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.loads(response.read())["data"]
    entries = {e["label"]: e for e in data["assetOrError"]["assetMaterializations"][0]["metadataEntries"]}
    lineage = entries.get("lore/lineage", {}).get("mdStr", "")
    print("lore/lineage of summary as the UI serves it:\n" + lineage)
    return "raw/2026-11-03.csv" in lineage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--check", action="store_true", help="check the UI serves the lineage, then exit")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    os.environ["LORE_DAGSTER_UI_URL"] = base

    with demo.local_s3() as server, tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = home
        with dg.DagsterInstance.from_config(home) as instance:
            demo.report(demo.run_pipeline(instance, server))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([*sys.path[:2], os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster_webserver",
                "-h",
                "127.0.0.1",
                "-p",
                str(args.port),
                "-f",
                str(HERE / "definitions.py"),
            ],
            env=env,
            start_new_session=True,
        )
        try:
            _wait_for(f"{base}/server_info", proc, 120)
            print(f"\nDagster UI with Lore lineage: {base}/assets/summary  (S3 at {server.endpoint_url})")
            if args.check:
                return 0 if _check(base) else 1
            print("Ctrl-C to stop.")
            proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
