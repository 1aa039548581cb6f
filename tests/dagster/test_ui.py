"""The lineage shows in the real Dagster UI: dagster-webserver on 127.0.0.1, its GraphQL API, and headless Chromium."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lore_dagster import LoreResource

from ..browser import headless_chromium

REPO = Path(__file__).resolve().parents[2]

QUERY = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on MarkdownMetadataEntry { mdStr }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}
"""


LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""

RUN_STATUS = """
query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dagster-webserver exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)  # polling interval, not a stand-in for synchronisation
    raise AssertionError(f"dagster-webserver did not answer {url} within {deadline_s}s")


def _graphql(base: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload: dict[str, Any] = json.loads(response.read())
    assert "errors" not in payload, payload
    data: dict[str, Any] = payload["data"]
    return data


@pytest.fixture()
def ui_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bucket: str, s3_endpoint: str
) -> Iterator[tuple[dict[str, str], dg.DagsterInstance]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Launch runs straight away (no daemon in tests): the default coordinator, not the queue.
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    monkeypatch.setenv("LORE_TEST_BUCKET", bucket)
    monkeypatch.setenv("LORE_TEST_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield env, instance


def test_asset_page_shows_lore_lineage(
    ui_env: tuple[dict[str, str], dg.DagsterInstance], lore: LoreResource, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from .pipelines import daily_mean, readings, ui_definitions

    env, instance = ui_env
    defs = ui_definitions()
    result = dg.materialize([readings, daily_mean], resources=defs.resources, instance=instance)
    assert result.success
    entry = lore.get_tracker().get_history("assets/daily_mean")
    assert entry is not None

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "webserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster_webserver",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "tests.dagster.pipelines",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_up(f"{base}/server_info", proc, deadline_s=120)

            data = _graphql(base, QUERY, {"path": ["daily_mean"]})
            (materialization,) = data["assetOrError"]["assetMaterializations"]
            assert materialization["runId"] == result.run_id
            entries = {e["label"]: e for e in materialization["metadataEntries"]}
            assert entries["lore/entry_id"]["text"] == entry.entries[0].id
            assert entries["lore/status"]["text"] == "success"
            assert entries["lore/history"]["text"].endswith("/.lore-s3/assets/daily_mean.json")
            assert "`assets/readings`" in entries["lore/lineage"]["mdStr"]
            assert "assets/readings" in entries["lore/derived_from"]["mdStr"]
            assert entries["lore/successes"]["intValue"] == 1

            with headless_chromium() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                page.goto(f"{base}/assets/daily_mean", wait_until="domcontentloaded")
                # The Markdown lineage renders as text on the asset page once its data arrives.
                expect(page.get_by_text("lore/lineage").first).to_be_visible(timeout=60_000)
                expect(page.get_by_text("assets/readings").first).to_be_visible(timeout=30_000)
                expect(page.get_by_text(entry.entries[0].id).first).to_be_visible(timeout=30_000)
                page.screenshot(path=str(tmp_path / "asset_page.png"), full_page=True)
            assert (tmp_path / "asset_page.png").stat().st_size > 10_000

            # A run launched from the UI (its run worker is another process) records its failure too.
            launched = _graphql(
                base,
                LAUNCH,
                {
                    "params": {
                        "mode": "default",
                        "selector": {
                            "repositoryLocationName": "tests.dagster.pipelines",
                            "repositoryName": "__repository__",
                            "jobName": "gauge_job",
                        },
                    }
                },
            )["launchPipelineExecution"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            tracker = lore.get_tracker()
            deadline = time.monotonic() + 120
            status = None
            while time.monotonic() < deadline:
                status = _graphql(base, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
                if status in ("FAILURE", "SUCCESS", "CANCELED") and tracker.get_history("assets/broken_gauge"):
                    break
                time.sleep(0.5)  # polling interval for the run worker, not a synchronisation stand-in
            assert status == "FAILURE"
            broken = tracker.get_history("assets/broken_gauge")
            assert broken is not None
            (failed,) = broken.entries
            assert failed.error is not None and failed.error.message == "gauge offline after 3 readings"
            assert failed.orchestrator is not None and failed.orchestrator.run_id == run_id
            assert [f.file_key for f in tracker.list_failed()] == ["assets/broken_gauge"]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
