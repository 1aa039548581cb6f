"""The lineage page: a FastAPI app that Airflow's API server mounts under ``/lore``.

Plugin apps are not behind Airflow's login by themselves, so every route here runs
Airflow's own checks (``access.py``): a login, asset read permission for histories,
XCom read permission on the DAG for a task instance's data, and only the buckets in
``[lore] buckets``. Pages are rendered on the server with Jinja2 autoescaping; stored
URLs become links only when they are http(s) or relative, and every response carries
a Content-Security-Policy without inline script (``safety.py``). The graph is inline
SVG, the stylesheet and the one script are bundled, so the page works offline. There
is no schema endpoint (``openapi.json``, docs): the routes are the page's own.

Example::

    from lore_airflow.ui import create_app

    app = create_app()  # mounted by LorePlugin.fastapi_apps; needs Airflow's API server for auth
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from lore_core import FileHistory, HistoryEntry, LineageNode, LoreError
from lore_core.integration import s3_url

from ..config import LoreSettings
from ..links import URL_PREFIX
from ..tracking import XCOM_FILES_KEY, store_bucket_and_prefix, tracker_for
from . import access
from .graph import Graph, layout
from .safety import SECURITY_HEADERS, safe_href

__all__ = ["create_app"]

log = logging.getLogger("lore.airflow.ui")

_HERE = Path(__file__).parent
_STATIC = {"lore.css": "text/css; charset=utf-8", "lore.js": "text/javascript; charset=utf-8"}
_MAX_DESCENDANT_DEPTH = 4
_MAX_NODES = 60
_MAX_FAILED = 200
_READERS = 8
# What an Airflow task recorded about itself: hidden from users who may not read its DAG.
_TASK_DATA = ("input", "output", "error", "metadata")

FileId = tuple[str, str]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    return env


def _file_url(bucket: str | None, key: str, prefix: str | None) -> str:
    file = s3_url(bucket, key) if bucket else key
    query = {"file": file, **({"prefix": prefix} if prefix else {})}
    return f"./?{urlencode(query)}"


def _wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def _airflow_dag(entry: HistoryEntry) -> str | None:
    """The DAG an Airflow task entry belongs to (None for entries of other systems)."""
    o = entry.orchestrator
    return o.job if o is not None and o.system == "airflow" and o.job else None


@dataclass
class _EntryView:
    entry: HistoryEntry
    run_href: str | None
    hidden_dag: str | None


def _lineage_maps(node: LineageNode | None) -> tuple[dict[FileId, list[FileId]], dict[FileId, str]]:
    parents: dict[FileId, list[FileId]] = {}
    status: dict[FileId, str] = {}
    if node is None:
        return parents, status
    # walk() visits each file once: a diamond-heavy lineage costs its files, not its paths.
    for n in node.walk():
        me = (n.bucket, n.file_key)
        if n.history is not None and n.history.entries:
            status[me] = n.history.entries[-1].status.value
        parents.setdefault(me, [])
        for p in n.parents:
            if (p.bucket, p.file_key) not in parents[me]:
                parents[me].append((p.bucket, p.file_key))
    return parents, status


def _read_histories(settings: LoreSettings, files: list[FileId]) -> dict[FileId, FileHistory | None]:
    """The histories of ``files`` (readable buckets only), read in parallel; unreadable ones are left out."""

    def read(file: FileId) -> FileHistory | None:
        try:
            return tracker_for(settings, file[0]).get_history(file[1])
        except LoreError as exc:  # one bad descendant must not break the page
            log.info("Lore: cannot read the history of %s: %s", s3_url(*file), exc)
            return None

    wanted = [f for f in files if access.may_read_bucket(settings, f[0])]
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(_READERS, len(wanted))) as pool:
        return dict(zip(wanted, pool.map(read, wanted), strict=True))


def _descendants(
    settings: LoreSettings, root: FileId, root_doc: FileHistory | None
) -> tuple[dict[FileId, list[FileId]], dict[FileId, str]]:
    """Files derived from ``root``, a few generations deep, and each one's latest status (one read per file)."""
    children: dict[FileId, list[FileId]] = {}
    status: dict[FileId, str] = {}
    docs: dict[FileId, FileHistory | None] = {root: root_doc}
    frontier = [root]
    seen = {root}
    for depth in range(_MAX_DESCENDANT_DEPTH + 1):
        docs.update(_read_histories(settings, [f for f in frontier if f not in docs]))
        nxt: list[FileId] = []
        for file in frontier:
            doc = docs.get(file)
            if doc is None:
                continue
            if doc.entries:
                status[file] = doc.entries[-1].status.value
            if depth == _MAX_DESCENDANT_DEPTH:
                continue
            kids = list(dict.fromkeys((ref.bucket or file[0], ref.file_key) for ref in doc.derived_to))
            children[file] = kids
            for kid in kids:
                if kid not in seen and len(seen) < _MAX_NODES:
                    seen.add(kid)
                    nxt.append(kid)
        frontier = nxt
        if not frontier:
            break
    return children, status


def _hide_task_data(doc: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    """The JSON document with the task data of entries from ``hidden`` DAGs removed (and a note why)."""
    for entry in doc.get("entries", []):
        orchestrator = entry.get("orchestrator") or {}
        dag_id = orchestrator.get("job")
        if orchestrator.get("system") == "airflow" and dag_id in hidden:
            for name in _TASK_DATA:
                entry.pop(name, None)
            entry["hidden"] = f"no access to DAG {dag_id!r}: input, output, error and metadata are hidden"
    return doc


def _xcom_files(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
    """The files Lore left in the task instance's ``lore_files`` XCom, read as Airflow's XCom endpoint reads it."""
    from airflow.api_fastapi.core_api.routes.public.xcom import get_xcom_entry

    try:
        entry = get_xcom_entry(
            dag_id=dag_id,
            task_id=task_id,
            dag_run_id=run_id,
            xcom_key=XCOM_FILES_KEY,
            session=session,
            map_index=map_index,
            deserialize=False,
            stringify=False,
        )
    except HTTPException:  # no such XCom: Lore recorded nothing for this task instance
        return []
    value = entry.value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [str(v) for v in value] if isinstance(value, list) else []


def create_app(settings: LoreSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to ``[lore]`` from Airflow's config (read per request)."""
    app = FastAPI(
        title="Lore lineage",
        dependencies=[Depends(access.current_user)],  # a login before anything else is resolved
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    env = _environment()

    def current_settings() -> LoreSettings:
        return settings or LoreSettings.from_airflow()

    def render(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**values), status_code=status_code)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(access.LoginRequired)
    async def login_required(request: Request, exc: access.LoginRequired) -> Response:
        if _wants_html(request):
            return RedirectResponse(access.login_url(request, URL_PREFIX), status_code=303)
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = access.one_line(exc.detail)
        if _wants_html(request):
            return render("error.html", exc.status_code, status_code_=exc.status_code, detail=detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return await http_error(request, StarletteHTTPException(400, "; ".join(problems) or "bad request"))

    def entry_views(request: Request, user: Any, history: FileHistory | None) -> list[_EntryView]:
        if history is None:
            return []
        hidden = access.hidden_dags(request, user, _dags(history.entries))
        views = []
        for e in reversed(history.entries):
            dag_id = _airflow_dag(e)
            url = e.orchestrator.url if e.orchestrator is not None else None
            views.append(_EntryView(e, safe_href(url), dag_id if dag_id in hidden else None))
        return views

    def file_graph(s: LoreSettings, bucket: str, key: str, history: FileHistory | None, prefix: str) -> Graph:
        # The page draws at most _MAX_NODES files: reading more ancestors would be wasted.
        lineage = tracker_for(s, bucket).get_lineage(key, max_nodes=_MAX_NODES) if history is not None else None
        parents, status = _lineage_maps(lineage)
        children, child_status = _descendants(s, (bucket, key), history)
        status.update(child_status)
        graph = layout((bucket, key), parents, children, status=status, limit=_MAX_NODES)
        for node in graph.nodes:
            if access.may_read_bucket(s, node.file[0]):
                node.href = _file_url(node.file[0], node.file[1], prefix)
            else:  # drawn (its name is in a readable history) but never read or linked
                node.outside = True
                node.status = None
        graph.truncated = lineage is not None and lineage.truncated
        return graph

    def failed_entries(s: LoreSettings, prefix: str) -> list[dict[str, Any]]:
        default_bucket, _ = store_bucket_and_prefix(s.store or "")
        if not access.may_read_bucket(s, default_bucket):
            return []
        failed: list[dict[str, Any]] = []
        for item in tracker_for(s).list_failed(prefix=prefix or None):
            if len(failed) >= _MAX_FAILED:
                break
            if not access.may_read_bucket(s, item.bucket):
                continue
            failed.append(
                {
                    "file_key": item.file_key,
                    "entry_id": item.entry_id,
                    "step": item.step,
                    "failed_at": item.failed_at.isoformat(timespec="seconds") if item.failed_at else "",
                    "href": _file_url(item.bucket, item.file_key, prefix),
                }
            )
        return failed

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(access.require_asset_read)])
    def lineage_page(
        request: Request,
        user: access.UserDep,
        file: str | None = Query(None, description="s3://bucket/key or a key in the store's bucket"),
        prefix: str | None = Query(None, description="failed entries under this key prefix"),
    ) -> HTMLResponse:
        s = current_settings()
        errors: list[str] = []
        status_code = 200

        def problem(exc: HTTPException) -> None:
            nonlocal status_code
            errors.append(str(exc.detail))
            if status_code == 200:
                status_code = exc.status_code

        history: FileHistory | None = None
        graph: Graph | None = None
        bucket: str | None = None
        key = ""
        prefix = prefix if prefix is not None else (s.ui_default_prefix or "")
        if not s.store:
            problem(HTTPException(503, "No Lore store configured: set [lore] store (AIRFLOW__LORE__STORE)."))
        elif file:
            try:
                bucket, key = access.file_location(s, file.strip())
                tracker = tracker_for(s, bucket)
                bucket = tracker.bucket
                history = tracker.get_history(key)
                graph = file_graph(s, bucket, key, history, prefix)
            except HTTPException as exc:
                problem(exc)
            except LoreError as exc:
                problem(access.http_error(exc))
        failed: list[dict[str, Any]] = []
        if s.store:
            try:
                failed = failed_entries(s, prefix)
            except LoreError as exc:
                problem(access.http_error(exc))
        return render(
            "lineage.html",
            status_code,
            file=file or "",
            bucket=bucket,
            key=key,
            prefix=prefix,
            history=history,
            entries=entry_views(request, user, history),
            graph=graph,
            max_nodes=_MAX_NODES,
            failed=failed,
            errors=errors,
            store=s.store or "",
        )

    @app.get("/ti", response_class=HTMLResponse, dependencies=[Depends(access.require_task_instance_read)])
    def task_instance_page(
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = Query(-1, ge=-1),
        session: Any = Depends(access.db_session, scope="function"),
    ) -> Response:
        try:
            files = _xcom_files(session, dag_id, run_id, task_id, map_index)
        except Exception as exc:  # a link must never break: say what happened instead
            log.warning("Lore: cannot read %s XCom: %s", XCOM_FILES_KEY, exc)
            files = []
        if len(files) == 1:
            return RedirectResponse(f"./?{urlencode({'file': files[0]})}", status_code=303)
        return render(
            "task_instance.html",
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            files=[{"uri": f, "href": f"./?{urlencode({'file': f})}"} for f in files],
        )

    @app.get("/api/history", dependencies=[Depends(access.require_asset_read)])
    def history_json(request: Request, user: access.UserDep, file: str) -> JSONResponse:
        s = current_settings()
        bucket, key = access.file_location(s, file)
        try:
            doc = tracker_for(s, bucket).get_history(key)
        except LoreError as exc:
            raise access.http_error(exc) from None
        if doc is None:
            raise HTTPException(status_code=404, detail=access.one_line(f"no history for {file}"))
        hidden = access.hidden_dags(request, user, _dags(doc.entries))
        return JSONResponse(_hide_task_data(doc.to_json_dict(), hidden))

    @app.get("/static/{name}", dependencies=[Depends(access.require_login)])
    def static(name: str) -> Response:
        media = _STATIC.get(name)
        if media is None:
            raise HTTPException(status_code=404, detail=f"no static file {name!r}")
        return Response((_HERE / "static" / name).read_bytes(), media_type=media)

    return app


def _dags(entries: Iterable[HistoryEntry]) -> set[str]:
    return {d for d in (_airflow_dag(e) for e in entries) if d}
