"""Security of the lineage page (issue 9) against the real API server and headless Chromium.

One API server for the module. The store bucket holds two DAGs' histories, tracked by
the listener (``security_dags/``), and hostile histories planted with ``LoreTracker``:
``javascript:``, ``data:``, HTML and Markdown in keys, step names, inputs, errors and
orchestrator URLs. Another bucket holds a history Lore must not read; ``[lore] buckets``
lists the store's bucket and one that does not exist.

Users: ``admin``; ``alice``, role viewer, allowed on ``sec_dag_a`` only; ``bob``, role
user, every DAG. SimpleAuthManager cannot grant DAGs one by one and the FAB provider
is not installed, so the server runs ``auth_manager/lore_per_dag_auth.py``: Airflow's
SimpleAuthManager with only ``is_authorized_dag`` narrowed per user.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreTracker

from ..browser import headless_chromium
from .conftest import HERE, RunDags, airflow_env, example_setup

SEC_DAGS = HERE / "security_dags"
AUTH_MANAGER_DIR = HERE / "auth_manager"

# Every payload, if it ever ran or rendered as markup, leaves a trace the checks look for:
# a dialog, data-pwned on <html>, or an element whose id starts with lore-injected.
PWN = "document.documentElement.dataset.pwned=1"
TEXT_PAYLOADS = [
    f'<img src=x id=lore-injected-html onerror="{PWN};alert(1)">',
    f"<script id=lore-injected-script>{PWN};alert(2)</script>",
    f"[open me](javascript:{PWN};alert(3)) ![img](javascript:alert(4))",
    f'" onmouseover="{PWN}" id="lore-injected-attr',
    "<svg><a id=lore-injected-svg href='javascript:alert(5)'><text>x</text></a></svg>",
]
UNSAFE_URLS = [
    f"javascript:{PWN};alert(6)",
    f"JaVaScRiPt:{PWN};alert(7)",
    f"  javascript:{PWN};alert(8)",
    f"java\tscript:{PWN};alert(9)",
    f"java\nscript:{PWN};alert(10)",
    f"\x01javascript:{PWN};alert(11)",
    "data:text/html,<script>alert(12)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxMyk8L3NjcmlwdD4=",
    "vbscript:msgbox(14)",
]
# Not dangerous as links, but full of markup: they become links and must stay inert.
ODD_SAFE_URLS = [
    'https://airflow.invalid/run?q="><img src=x id=lore-injected-url onerror=alert(15)>',
    "javascript&colon;alert(16)",
]
HOSTILE_KEYS = [
    "xss/<img src=x id=lore-injected-key onerror=alert(20)>.csv",
    "xss/[md](javascript:alert(21)).csv",
    '"><svg id=lore-injected-key2 onload=alert(22)>/k.csv',
    "javascript:alert(23)",
]
HOSTILE_OUTLET = "b/<img src=x id=lore-injected-ti onerror=alert(24)>.csv"
MISSING_BUCKET = "lore-sec-missing-bucket"  # listed in [lore] buckets, never created


def _get(url: str, token: str | None = None, accept: str | None = None) -> tuple[int, str, dict[str, str]]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(url, headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as resp:
            return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), {k.lower(): v for k, v in err.headers.items()}


def _plant_histories(tracker: LoreTracker) -> None:
    # A plain chain: raw succeeded, clean (derived from it) failed.
    tracker.record("chain/raw.csv", "chain.ingest", "success")
    tracker.record("chain/clean.csv", "chain.clean", "failed", error="bad row", derived_from=["chain/raw.csv"])
    first = HOSTILE_KEYS[0]
    for n, url in enumerate(UNSAFE_URLS + ODD_SAFE_URLS):
        tracker.record(
            first,
            f"step-{n}",
            "success",
            output={"note": TEXT_PAYLOADS[n % len(TEXT_PAYLOADS)]},
            orchestrator={"system": "airflow", "run_id": f"run-{n} <b id=lore-injected-run>", "url": url},
        )
    for n, key in enumerate(HOSTILE_KEYS[1:], start=1):
        payload = TEXT_PAYLOADS[n % len(TEXT_PAYLOADS)]
        tracker.record(
            key,
            TEXT_PAYLOADS[(n + 1) % len(TEXT_PAYLOADS)],
            "failed",
            input={"html": payload, "markdown": TEXT_PAYLOADS[2], "link": UNSAFE_URLS[0]},
            error={"name": TEXT_PAYLOADS[0], "message": payload},
            orchestrator={
                "system": "airflow",
                "run_id": TEXT_PAYLOADS[1],
                "task": payload,
                "url": UNSAFE_URLS[n % len(UNSAFE_URLS)],
            },
            derived_from=[HOSTILE_KEYS[n - 1]],
        )


@pytest.fixture(scope="module")
def server(
    run_dags: RunDags, make_bucket: Any, airflow_home: Path, s3_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    store_bucket, other_bucket = make_bucket(), make_bucket()
    client = s3_server.client()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    lore_env = {
        "AIRFLOW__LORE__STORE": f"s3://{store_bucket}/.lore-s3",
        "AIRFLOW__LORE__AWS_CONN_ID": "lore_s3",
        "AIRFLOW__LORE__BUCKETS": f"{store_bucket},{MISSING_BUCKET}",
        "LORE_SEC_BUCKET": store_bucket,
        "LORE_SEC_HOSTILE_KEY": HOSTILE_OUTLET,
    }
    # Orchestrator URLs point at the server started below (tracking reads [api] base_url).
    runs = run_dags(["sec_dag_a", "sec_dag_b"], dags_folder=SEC_DAGS, AIRFLOW__API__BASE_URL=base, **lore_env)
    assert runs["sec_dag_a"]["state"] == "success" and runs["sec_dag_b"]["state"] == "success", runs["_log"][-3000:]
    _plant_histories(LoreTracker(bucket=store_bucket, s3_client=client))
    LoreTracker(bucket=other_bucket, s3_client=client).record("private/data.csv", "secret.step", "success")

    passwords = {user: secrets.token_urlsafe(12) for user in ("admin", "alice", "bob")}
    home = tmp_path_factory.mktemp("sec_api")
    env = airflow_env(airflow_home, SEC_DAGS, s3_server.endpoint_url, **lore_env)
    env.update(example_setup.api_server_env(airflow_home, port, passwords["admin"]))
    password_file = home / "passwords.json"
    password_file.write_text(json.dumps(passwords))
    env.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": "lore_per_dag_auth.PerDagAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:viewer,bob:user",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "LORE_TEST_DAG_ACCESS": json.dumps({"alice": ["sec_dag_a"]}),
            "PYTHONPATH": os.pathsep.join(p for p in (str(AUTH_MANAGER_DIR), env.get("PYTHONPATH", "")) if p),
        }
    )
    log_path = home / "api-server.log"
    proc = example_setup.start_api_server(port, env, log_path)
    try:
        example_setup.wait_until_up(port)
        tokens = {}
        for user, password in passwords.items():
            body = json.dumps({"username": user, "password": password}).encode()
            request = urllib.request.Request(
                f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=30) as resp:
                tokens[user] = str(json.loads(resp.read())["access_token"])
        yield {
            "base": base,
            "bucket": store_bucket,
            "other_bucket": other_bucket,
            "passwords": passwords,
            "tokens": tokens,
            "runs": {dag: runs[dag]["run_id"] for dag in ("sec_dag_a", "sec_dag_b")},
            "log": log_path,
        }
    finally:
        example_setup.stop_api_server(proc)


def _ti_url(server: dict[str, Any], dag_id: str) -> str:
    query = urllib.parse.urlencode({"dag_id": dag_id, "run_id": server["runs"][dag_id], "task_id": "make"})
    return f"{server['base']}/lore/ti?{query}&map_index=-1"


def _history_url(server: dict[str, Any], file: str, page: bool = False) -> str:
    return f"{server['base']}/lore/{'' if page else 'api/history'}?{urllib.parse.urlencode({'file': file})}"


# --------------------------------------------------------------------------- authorization


def test_task_instance_data_needs_read_access_to_its_dag(server: dict[str, Any]) -> None:
    """Issue 9: /lore/ti read any DAG's XCom; now Airflow's requires_access_dag(GET, XCOM) guards it."""
    tokens = server["tokens"]
    status, body, _ = _get(_ti_url(server, "sec_dag_a"), tokens["alice"])
    assert status == 200 and "a/in.csv" in body and "a/out.csv" in body
    status, body, _ = _get(_ti_url(server, "sec_dag_b"), tokens["alice"])
    assert status == 403, body
    assert (
        "b/out.csv" not in body
        and json.loads(body)["detail"] == "You may not read the task instances of DAG 'sec_dag_b'"
    )
    for user in ("bob", "admin"):
        status, body, _ = _get(_ti_url(server, "sec_dag_b"), tokens[user])
        assert status == 200 and "b/out.csv" in body, (user, body)


def test_task_data_in_histories_is_hidden_from_users_without_dag_access(server: dict[str, Any]) -> None:
    """What an Airflow task recorded (its output is its XCom) is shown only to users who may read its DAG."""
    tokens = server["tokens"]
    status, body, _ = _get(_history_url(server, "b/in.csv"), tokens["alice"])
    assert status == 200, body
    entry = json.loads(body)["entries"][-1]
    assert entry["orchestrator"]["job"] == "sec_dag_b"
    assert "output" not in entry and "input" not in entry and "sec_dag_b" in entry["hidden"]
    status, body, _ = _get(_history_url(server, "b/in.csv", page=True), tokens["alice"])
    assert status == 200 and "output-of-dag-b" not in body and "you may not read DAG" in body
    # Her own DAG's data, and DAG B's for bob, are there.
    status, body, _ = _get(_history_url(server, "a/in.csv"), tokens["alice"])
    assert status == 200 and json.loads(body)["entries"][-1]["output"] == {"result": "output-of-dag-a"}
    status, body, _ = _get(_history_url(server, "b/in.csv"), tokens["bob"])
    assert status == 200 and json.loads(body)["entries"][-1]["output"] == {"result": "output-of-dag-b"}
    status, body, _ = _get(_history_url(server, "b/in.csv", page=True), tokens["bob"])
    assert status == 200 and "output-of-dag-b" in body


def test_history_reads_are_limited_to_the_configured_buckets(server: dict[str, Any]) -> None:
    token = server["tokens"]["admin"]
    other = f"s3://{server['other_bucket']}/private/data.csv"
    status, body, _ = _get(_history_url(server, other), token)
    assert status == 403 and "secret.step" not in body
    detail = json.loads(body)["detail"]
    assert "[lore] buckets" in detail and server["other_bucket"] in detail and "\n" not in detail
    status, body, _ = _get(_history_url(server, other, page=True), token, accept="text/html")
    assert status == 403 and "secret.step" not in body and "[lore] buckets" in body
    status, _, _ = _get(_history_url(server, f"s3://{server['bucket']}/a/out.csv"), token)
    assert status == 200


BAD_FILES = {
    "../etc/passwd": 400,
    "a/../../etc/passwd": 400,
    "/etc/passwd": 400,
    "a//b.csv": 400,
    ".lore-s3/a/out.csv.json": 400,  # a history document, not a tracked file
    "~lore/failed/a": 400,
    "s3://": 400,
    "s3:///key.csv": 400,
    "s3://../etc/passwd": 400,
    "s3://bad bucket/k.csv": 400,
    f"s3://{MISSING_BUCKET}/a.csv": 404,  # listed in [lore] buckets, but it does not exist
    "s3://some-other-bucket/a.csv": 403,
}


@pytest.mark.parametrize("accept", [None, "text/html"])
def test_every_bad_request_is_a_4xx_with_a_one_line_reason(server: dict[str, Any], accept: str | None) -> None:
    token = server["tokens"]["admin"]
    cases = [(_history_url(server, file, page=accept is not None), want) for file, want in BAD_FILES.items()]
    cases += [
        (f"{server['base']}/lore/?prefix=../x", 400),
        (f"{server['base']}/lore/ti?dag_id=sec_dag_a", 400),  # run_id and task_id missing
        (f"{server['base']}/lore/ti?dag_id=sec_dag_a&run_id=r&task_id=t&map_index=abc", 400),
        (f"{server['base']}/lore/api/history", 400),
        (f"{server['base']}/lore/api/history?file=", 400),
        (f"{server['base']}/lore/static/../../etc/passwd", 404),
        (f"{server['base']}/lore/static/nope.js", 404),
    ]
    for url, want in cases:
        status, body, headers = _get(url, token, accept=accept)
        assert status == want, (url, status, body[:500])
        assert "Traceback" not in body and "Internal Server Error" not in body, url
        if headers["content-type"].startswith("application/json"):
            assert accept is None, url  # a browser gets a page
            detail = json.loads(body)["detail"]
            assert isinstance(detail, str) and detail and "\n" not in detail and len(detail) < 500, (url, detail)
        else:
            assert headers["content-type"].startswith("text/html"), url
            reasons = re.findall(r'<p class="lore-error"[^>]*>([^<]*)</p>', body)
            assert reasons and all(r and "\n" not in r and len(r) < 700 for r in reasons), (url, body[:800])


def test_no_schema_or_docs_endpoint(server: dict[str, Any]) -> None:
    for path in ("openapi.json", "docs", "redoc", "docs/oauth2-redirect"):
        status, body, _ = _get(f"{server['base']}/lore/{path}")
        assert status in (401, 404), (path, status)
        assert '"openapi"' not in body
        status, body, _ = _get(f"{server['base']}/lore/{path}", server["tokens"]["admin"])
        assert status == 404 and '"openapi"' not in body, (path, status)


def test_every_lore_response_has_a_csp_without_inline_script_and_sets_no_cookie(server: dict[str, Any]) -> None:
    token = server["tokens"]["admin"]
    base = server["base"]
    for url, _ in [
        (f"{base}/lore/", 200),
        (_history_url(server, "a/out.csv", page=True), 200),
        (_history_url(server, "a/out.csv"), 200),
        (_ti_url(server, "sec_dag_b"), 200),
        (f"{base}/lore/static/lore.css", 200),
        (f"{base}/lore/static/lore.js", 200),
        (_history_url(server, "../x"), 400),
        (_history_url(server, "s3://some-other-bucket/a.csv"), 403),
        (_history_url(server, "nothing/here.csv"), 404),
    ]:
        status, _, headers = _get(url, token)
        assert status < 500, url
        csp = headers.get("content-security-policy", "")
        directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == "script-src 'self'", (url, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'self'" in csp, url
        assert headers.get("x-content-type-options") == "nosniff", url
        assert "set-cookie" not in headers, url
    # Without a login too.
    status, _, headers = _get(f"{base}/lore/")
    assert status == 401 and "script-src 'self'" in headers.get("content-security-policy", "")


def test_a_logged_out_browser_is_sent_to_airflows_login_and_back(server: dict[str, Any]) -> None:
    page_url = _history_url(server, "a/out.csv", page=True)
    status, _, headers = _get(page_url, accept="text/html,application/xhtml+xml")
    assert status in (302, 303, 307) and "/auth/login" in headers["location"], (status, headers)
    # API clients still get 401, not a redirect.
    status, body, _ = _get(_history_url(server, "a/out.csv"))
    assert status == 401 and json.loads(body)["detail"]
    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto(page_url, wait_until="networkidle")
        assert "/auth/login" in page.url, page.url
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", server["passwords"]["alice"])
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/lore/" in url, timeout=30_000)
        assert page.inner_text("#lore-file-key") == "a/out.csv"


def test_descendants_have_a_status_colour(server: dict[str, Any]) -> None:
    """Issue 9: ancestors were coloured by their latest status, descendants never were."""
    status, body, _ = _get(_history_url(server, "chain/raw.csv", page=True), server["tokens"]["admin"])
    assert status == 200
    node = r'<a [^>]*class="lore-node lore-node-\w+"[^>]*data-file="([^"]*)".*?class="lore-box ([^"]*)"'
    nodes = {m.group(1): m.group(2) for m in re.finditer(node, body, re.S)}
    assert nodes == {"chain/raw.csv": "lore-success", "chain/clean.csv": "lore-failed"}, nodes


def test_the_plugin_is_registered_once(server: dict[str, Any]) -> None:
    """Issue 9: `make ui-airflow` showed "Plugin 'lore' already registered" as an import error.

    The repository's egg-info (left by ``pip install -e .``) on PYTHONPATH made Python see
    the distribution twice; Airflow then loaded the entry point twice.
    """
    token = server["tokens"]["admin"]
    status, body, _ = _get(f"{server['base']}/api/v2/plugins/importErrors", token)
    assert status == 200
    assert json.loads(body)["import_errors"] == [], body
    status, body, _ = _get(f"{server['base']}/api/v2/plugins", token)
    assert [p["name"] for p in json.loads(body)["plugins"]].count("lore") == 1


# --------------------------------------------------------------------------- XSS in Chromium

SANDBOX = "allow-scripts allow-same-origin allow-forms allow-downloads"  # what Airflow 3.3's UI gives plugin views
EMBED_PATH = "/lore-security-test-embed"

_TRACES = """() => ({
    pwned: document.documentElement.dataset.pwned || null,
    injected: Array.from(document.querySelectorAll('[id^="lore-injected"]')).map(e => e.outerHTML),
    badLinks: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))
        .filter(h => h !== null).map(h => { try { return new URL(h, document.baseURI); } catch (e) { return null; } })
        .filter(u => u === null || !['http:', 'https:'].includes(u.protocol)).map(u => String(u)),
    scripts: Array.from(document.scripts).map(s => s.getAttribute('src') || 'inline:' + s.textContent.slice(0, 80))
        .filter(s => !/\\/lore\\/static\\/lore\\.js$/.test(s) && s !== './static/lore.js'),
})"""


def _lore_pages(server: dict[str, Any]) -> list[str]:
    pages = ["/lore/", "/lore/?prefix=xss/"]
    pages += [f"/lore/?{urllib.parse.urlencode({'file': key})}" for key in HOSTILE_KEYS]
    pages += [f"/lore/?{urllib.parse.urlencode({'file': '../' + TEXT_PAYLOADS[0]})}"]  # a refused request
    pages += [f"/lore/?{urllib.parse.urlencode({'file': f})}" for f in ("a/in.csv", "chain/raw.csv")]
    pages += [_ti_url(server, "sec_dag_b").removeprefix(server["base"])]
    return pages


class _Watch:
    """Dialogs and CSP violations in every frame of a page."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.violations: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)


def _traces(page: Any, where: str) -> list[str]:
    """What injected markup or script left in any frame of ``page``: nothing, or a description of each trace."""
    found = []
    for frame in page.frames:
        if frame.url in ("", "about:blank") or frame.url.startswith("chrome-error:"):
            continue
        try:
            traces = frame.evaluate(_TRACES)
        except Exception as exc:  # a frame navigating away while we look
            if "navigat" in str(exc) or "detached" in str(exc) or "destroyed" in str(exc):
                continue
            raise
        if not urllib.parse.urlsplit(frame.url).path.startswith("/lore/"):
            traces["badLinks"] = traces["scripts"] = []  # Airflow's own pages: only injected traces count
        if traces["pwned"] is not None or any(traces[k] for k in ("injected", "badLinks", "scripts")):
            found.append(f"{where} [{frame.url}]: {traces}")
    return found


def _browser_page(browser: Any, server: dict[str, Any]) -> tuple[Any, Any, _Watch]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    base = server["base"]

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(base + EMBED_PATH):
            src = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["src"][0]
            html = (
                "<!doctype html><title>embed</title>"
                f'<iframe id="lore-frame" name="lore" sandbox="{SANDBOX}" src="{src.replace(chr(34), "&quot;")}"'
                ' style="width:1300px;height:900px"></iframe>'
            )
            route.fulfill(status=200, content_type="text/html", body=html)
        elif url.startswith(base):
            route.continue_()
        else:  # links to other hosts are clicked too; they never leave the machine
            route.abort()

    page.route("**/*", route)
    watch = _Watch(page)
    page.goto(f"{base}/auth/login/", wait_until="networkidle")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", server["passwords"]["admin"])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    return context, page, watch


def _open(page: Any, base: str, path: str, embedded: bool) -> Any:
    """Open a Lore page at top level or in a sandboxed iframe; return the frame that shows it."""
    if not embedded:
        page.goto(base + path, wait_until="load")
        return page.main_frame
    page.goto(f"{base}{EMBED_PATH}?{urllib.parse.urlencode({'src': path})}", wait_until="load")
    frame = page.frame(name="lore")
    assert frame is not None
    frame.wait_for_load_state("load")
    return frame


@pytest.mark.parametrize("embedded", [False, True], ids=["top-level", "embedded"])
def test_hostile_histories_never_run_script(server: dict[str, Any], embedded: bool) -> None:
    """Issue 9: a javascript: orchestrator URL ran script when its run id was clicked; HTML or
    Markdown anywhere in a history must stay text. Every page, every distinct link, clicked."""
    base = server["base"]
    clicked: set[str] = set()
    problems: list[str] = []
    with headless_chromium() as browser:
        context, page, watch = _browser_page(browser, server)
        for path in _lore_pages(server):
            frame = _open(page, base, path, embedded)
            problems += _traces(page, path)
            links = frame.eval_on_selector_all("a", "els => els.map(e => e.outerHTML)")
            for index, markup in enumerate(links):
                if markup in clicked:
                    continue
                clicked.add(markup)
                frame = _open(page, base, path, embedded)
                frame.locator("a").nth(index).click(timeout=10_000)
                page.wait_for_timeout(300)
                page.wait_for_load_state("load")
                problems += _traces(page, f"{path} after clicking {markup}")
        context.close()
    assert watch.dialogs == [], watch.dialogs
    assert watch.violations == [], watch.violations
    assert problems == [], "\n".join(problems)
    assert len(clicked) >= 15, clicked


def test_run_links_open_in_airflows_top_window(server: dict[str, Any]) -> None:
    """Issue 9: in Airflow's embedded view (a sandboxed iframe) the run links were dead."""
    base = server["base"]
    with headless_chromium() as browser:
        context, page, watch = _browser_page(browser, server)
        # Airflow's own UI: Browse > Lore lineage, opened on a file (the iframe follows the path).
        page.goto(f"{base}/plugin/lore/lore/?{urllib.parse.urlencode({'file': 'a/in.csv'})}", wait_until="load")
        frame = None
        for _ in range(100):
            frame = next((f for f in page.frames if urllib.parse.urlsplit(f.url).path == "/lore/"), None)
            if frame is not None:
                break
            page.wait_for_timeout(100)
        assert frame is not None, [f.url for f in page.frames]
        frame.wait_for_selector("a.lore-run")
        run_url = frame.get_attribute("a.lore-run", "href")
        assert run_url and f"/dags/sec_dag_a/runs/{urllib.parse.quote(server['runs']['sec_dag_a'], safe='')}" in run_url
        frame.click("a.lore-run")
        page.wait_for_url(lambda url: "/dags/sec_dag_a/runs/" in url, timeout=15_000)
        assert "/plugin/" not in page.url
        problems = _traces(page, "Airflow's task page")
        context.close()
    assert watch.dialogs == [] and problems == [], (watch.dialogs, problems)
