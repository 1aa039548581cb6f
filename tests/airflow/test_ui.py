"""The lineage page inside the real Airflow UI: API server on 127.0.0.1 with the example DAGs,
a DAG run, Airflow's own login in headless Chromium, the page and its graph, a screenshot,
refusal without a session, and HTML-escaping of hostile file keys and error messages."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreTracker

from ..browser import headless_chromium
from .conftest import EXAMPLE_DAGS, RunDags, airflow_env, example_setup

HOSTILE_KEY = 'odd/<script>alert("key")</script>.csv'
HOSTILE_ERROR = "<img src=x onerror=alert('err')> & </td></tr>"


def _get(url: str, token: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


@pytest.fixture(scope="module")
def ui(
    run_dags: RunDags,
    airflow_home: Path,
    s3_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    bucket = example_setup.BUCKET
    client = s3_server.client()
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    for key, body in example_setup.UPLOADS.items():
        client.put_object(Bucket=bucket, Key=key, Body=body.encode())
    client.put_object(Bucket=bucket, Key="reference/currencies.txt", Body=example_setup.CURRENCIES.encode())
    lore_env = {
        "AIRFLOW__LORE__STORE": f"s3://{bucket}/.lore-s3",
        "AIRFLOW__LORE__AWS_CONN_ID": "lore_s3",
        "LORE_EXAMPLE_BUCKET": bucket,
    }
    runs = run_dags(["lore_orders"], dags_folder=EXAMPLE_DAGS, **lore_env)
    tracker = LoreTracker(bucket=bucket, s3_client=client)
    tracker.record(HOSTILE_KEY, "hostile.step", "failed", error=RuntimeError(HOSTILE_ERROR))
    client.put_object(Bucket=bucket, Key=".lore-s3/corrupt/doc.csv.json", Body=b'{"fileKey": "corrupt/doc.csv", ')

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    password = secrets.token_urlsafe(12)
    env = airflow_env(airflow_home, EXAMPLE_DAGS, s3_server.endpoint_url, **lore_env)
    env.update(example_setup.api_server_env(airflow_home, port, password))
    log_path = tmp_path_factory.mktemp("api") / "api-server.log"
    proc = example_setup.start_api_server(port, env, log_path)
    try:
        example_setup.wait_until_up(port)
        yield {
            "base": f"http://127.0.0.1:{port}",
            "password": password,
            "run_id": runs["lore_orders"]["run_id"],
            "log": log_path,
        }
    finally:
        example_setup.stop_api_server(proc)
        assert proc.poll() is not None


@pytest.fixture(scope="module")
def token(ui: dict[str, Any]) -> str:
    body = json.dumps({"username": "admin", "password": ui["password"]}).encode()
    request = urllib.request.Request(
        f"{ui['base']}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return str(json.loads(resp.read())["access_token"])


def test_page_refuses_requests_without_a_valid_session(ui: dict[str, Any]) -> None:
    status, _, _ = _get(f"{ui['base']}/lore/?file=summary/daily.json")
    assert status == 401
    status, _, _ = _get(f"{ui['base']}/lore/api/history?file=summary/daily.json", token="not-a-jwt")
    assert status in (401, 403)
    status, _, _ = _get(f"{ui['base']}/lore/static/lore.css")
    assert status == 401


def test_plugin_registers_page_view_link_and_listener(ui: dict[str, Any], token: str) -> None:
    status, body, _ = _get(f"{ui['base']}/api/v2/plugins", token=token)
    assert status == 200, body
    lore = next(p for p in json.loads(body)["plugins"] if p["name"] == "lore")
    assert [a["url_prefix"] for a in lore["fastapi_apps"]] == ["/lore"]
    assert {v["destination"] for v in lore["external_views"]} == {"nav", "task_instance"}
    assert any("LoreLineageLink" in link for link in lore["global_operator_extra_links"])
    assert any("LoreListener" in str(listener) for listener in lore["listeners"])


def test_every_value_is_html_escaped(ui: dict[str, Any], token: str) -> None:
    query = urllib.parse.urlencode({"file": HOSTILE_KEY})
    status, body, _ = _get(f"{ui['base']}/lore/?{query}", token=token)
    assert status == 200
    assert HOSTILE_KEY not in body and "<img src=x" not in body and "<script>alert" not in body
    assert "odd/&lt;script&gt;alert(&#34;key&#34;)&lt;/script&gt;.csv" in body
    assert "&lt;img src=x onerror=alert(&#39;err&#39;)&gt; &amp; &lt;/td&gt;&lt;/tr&gt;" in body


def test_a_corrupt_history_shows_its_error_instead_of_breaking_the_page(ui: dict[str, Any], token: str) -> None:
    status, body, _ = _get(f"{ui['base']}/lore/?file=corrupt/doc.csv", token=token)
    assert status == 422  # the page is still drawn, with the error in place of the history
    assert "CorruptHistoryError" in body and ".lore-s3/corrupt/doc.csv.json" in body


def test_task_instance_link_leads_to_its_files(ui: dict[str, Any], token: str) -> None:
    def ti_page(task_id: str, map_index: int) -> tuple[int, str, dict[str, str]]:
        query = urllib.parse.urlencode(
            {"dag_id": "lore_orders", "run_id": ui["run_id"], "task_id": task_id, "map_index": map_index}
        )
        return _get(f"{ui['base']}/lore/ti?{query}", token=token)

    # Two files (inlet and outlet): a list of links to their pages.
    status, body, _ = ti_page("process.validate", 0)
    assert status == 200
    assert 'href="./?file=s3%3A%2F%2Flore-example%2Fraw%2Forders-001.csv"' in body
    assert 'href="./?file=s3%3A%2F%2Flore-example%2Fvalidated%2Forders-001.csv"' in body
    # The failed map index touched one file: straight to its page.
    status, _, headers = ti_page("process.validate", 2)
    assert status == 303
    assert urllib.parse.unquote(headers["location"]).endswith("file=s3://lore-example/raw/orders-003.csv")
    # A task instance Lore knows nothing about gets a page that says so, not an error.
    status, body, _ = ti_page("no_such_task", -1)
    assert status == 200 and "Lore recorded no files" in body


def test_lineage_page_in_chromium(ui: dict[str, Any], tmp_path: Path) -> None:
    dialogs: list[str] = []
    requests: list[str] = []
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        # Airflow's own login form.
        page.goto(f"{ui['base']}/auth/login/", wait_until="networkidle")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", ui["password"])
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)

        requests.clear()  # from here on, only the Lore page's own requests
        page.goto(f"{ui['base']}/lore/", wait_until="load")
        page.fill("#lore-file", "summary/daily.json")
        page.click(".lore-search button[type=submit]")
        page.wait_for_selector("#lore-graph")
        assert page.inner_text("#lore-file-key") == "summary/daily.json"
        files = set(page.eval_on_selector_all("#lore-graph .lore-node", "els => els.map(e => e.dataset.file)"))
        assert {
            "summary/daily.json",
            "converted/orders-001.csv.jsonl",
            "validated/orders-001.csv",
            "raw/orders-001.csv",
            "raw/orders-002.csv",
        } <= files
        assert page.locator("#lore-graph line.lore-edge").count() >= 6
        rows = page.locator("#lore-entries tbody tr")
        assert rows.count() >= 1 and "lore_orders.summarize" in rows.first.inner_text()
        # The failed upload is listed, and its row links to its history.
        assert "raw/orders-003.csv" in page.inner_text("#lore-failed")
        page.screenshot(path=str(tmp_path / "lore-lineage.png"), full_page=True)

        # From a raw upload the graph shows its descendants, down to the summary.
        page.click('#lore-graph a[data-file="raw/orders-001.csv"]')
        page.wait_for_function("document.querySelector('#lore-file-key').textContent === 'raw/orders-001.csv'")
        files = set(page.eval_on_selector_all("#lore-graph .lore-node", "els => els.map(e => e.dataset.file)"))
        assert {"validated/orders-001.csv", "converted/orders-001.csv.jsonl", "summary/daily.json"} <= files
        assert page.locator(".lore-node-descendant").count() >= 3

        # Failed entries under a prefix only.
        page.goto(f"{ui['base']}/lore/?prefix=raw/", wait_until="load")
        failed_text = page.inner_text("#lore-failed")
        assert "raw/orders-003.csv" in failed_text and "odd/" not in failed_text

        page.goto(f"{ui['base']}/lore/?{urllib.parse.urlencode({'file': HOSTILE_KEY})}", wait_until="load")
        assert page.inner_text("#lore-file-key") == HOSTILE_KEY
        assert HOSTILE_ERROR.strip() in page.inner_text("#lore-entries")
    assert dialogs == []
    # Offline: every request the Lore page made went to the Airflow server itself (no CDN).
    assert requests and all(url.startswith(ui["base"]) for url in requests), requests
    assert (tmp_path / "lore-lineage.png").stat().st_size > 10_000
