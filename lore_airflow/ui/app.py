"""The lineage page: a FastAPI app that Airflow's API server mounts under ``/lore``.

Every route needs a valid Airflow session or token (the same JWT the Airflow UI
uses), because plugin apps are not behind Airflow's login by themselves. Pages
are rendered on the server with Jinja2 autoescaping, so file keys, errors and
inputs are always shown as text; the graph is inline SVG and the stylesheet is
bundled, so the page works offline.

Example::

    from lore_airflow.ui import create_app

    app = create_app()  # mounted by LorePlugin.fastapi_apps; needs Airflow's API server for auth
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from lore_core import FileHistory, LineageNode, LoreError
from lore_core.integration import is_s3_url, parse_s3_url, s3_url

from ..config import LoreSettings
from ..tracking import XCOM_FILES_KEY, store_bucket_and_prefix, tracker_for
from .graph import Graph, layout

__all__ = ["create_app"]

log = logging.getLogger("lore.airflow.ui")

_HERE = Path(__file__).parent
_STATIC = {"lore.css": "text/css; charset=utf-8"}
_MAX_DESCENDANT_DEPTH = 4
_MAX_NODES = 60
_MAX_FAILED = 200


async def _authenticated(request: Request) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme and token else None
    return await get_user(request, None, bearer)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    return env


def _split_file(settings: LoreSettings, file: str) -> tuple[str | None, str]:
    """``(bucket, key)`` of ``s3://bucket/key``, or of a key in the store's bucket (InvalidKeyError if bad)."""
    if is_s3_url(file):
        return parse_s3_url(file)
    default_bucket, _ = store_bucket_and_prefix(settings.store or "")
    return default_bucket, file.lstrip("/")


def _file_url(bucket: str | None, key: str, prefix: str | None) -> str:
    file = s3_url(bucket, key) if bucket else key
    query = {"file": file, **({"prefix": prefix} if prefix else {})}
    return f"./?{urlencode(query)}"


def _lineage_maps(
    node: LineageNode | None,
) -> tuple[dict[tuple[str, str], list[tuple[str, str]]], dict[tuple[str, str], str]]:
    parents: dict[tuple[str, str], list[tuple[str, str]]] = {}
    status: dict[tuple[str, str], str] = {}
    if node is None:
        return parents, status
    # walk() visits each file once: a diamond-heavy lineage costs its files, not its paths.
    for n in node.walk():
        me = (n.bucket, n.file_key)
        if n.history is not None and n.history.entries:
            status[me] = str(n.history.entries[-1].status)
        parents.setdefault(me, [])
        for p in n.parents:
            if (p.bucket, p.file_key) not in parents[me]:
                parents[me].append((p.bucket, p.file_key))
    return parents, status


def _descendants(settings: LoreSettings, root: tuple[str, str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    children: dict[tuple[str, str], list[tuple[str, str]]] = {}
    frontier = [root]
    seen = {root}
    for _ in range(_MAX_DESCENDANT_DEPTH):
        nxt = []
        for bucket, key in frontier:
            tracker = tracker_for(settings, bucket)
            kids = []
            for name in tracker.get_descendants(key):
                kid = parse_s3_url(name) if is_s3_url(name) else (tracker.bucket, name)
                kids.append(kid)
                if kid not in seen and len(seen) < _MAX_NODES:
                    seen.add(kid)
                    nxt.append(kid)
            children[(bucket, key)] = kids
        frontier = nxt
        if not frontier:
            break
    return children


def _xcom_files(dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == XCOM_FILES_KEY,
            )
        ).first()
    if row is None:
        return []
    value = XComModel.deserialize_value(row)
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value] if isinstance(value, list) else []


def create_app(settings: LoreSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to ``[lore]`` from Airflow's config (read per request)."""
    app = FastAPI(title="Lore lineage", dependencies=[Depends(_authenticated)], docs_url=None, redoc_url=None)
    env = _environment()

    def current_settings() -> LoreSettings:
        return settings or LoreSettings.from_airflow()

    def render(name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**values))

    @app.get("/", response_class=HTMLResponse)
    def lineage_page(
        file: str | None = Query(None, description="s3://bucket/key or a key in the store's bucket"),
        prefix: str | None = Query(None, description="failed entries under this key prefix"),
    ) -> HTMLResponse:
        s = current_settings()
        errors: list[str] = []
        history: FileHistory | None = None
        graph: Graph | None = None
        truncated = False
        bucket: str | None = None
        key = ""
        prefix = prefix if prefix is not None else s.ui_default_prefix
        if not s.store:
            errors.append("No Lore store configured: set [lore] store (AIRFLOW__LORE__STORE).")
        if s.store and file:
            try:
                bucket, key = _split_file(s, file.strip())
                tracker = tracker_for(s, bucket)
                bucket = tracker.bucket
                history = tracker.get_history(key)
                # The page draws at most _MAX_NODES files: reading more ancestors would be wasted.
                lineage = tracker.get_lineage(key, max_nodes=_MAX_NODES)
                truncated = lineage is not None and lineage.truncated
                parents, status = _lineage_maps(lineage)
                children = _descendants(s, (bucket, key))
                if history is not None and history.entries:
                    status[(bucket, key)] = str(history.entries[-1].status)
                graph = layout((bucket, key), parents, children, status=status, limit=_MAX_NODES)
                for node in graph.nodes:
                    node.href = _file_url(node.file[0], node.file[1], prefix)
            except LoreError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        failed: list[dict[str, Any]] = []
        if s.store:
            try:
                for n, item in enumerate(tracker_for(s).list_failed(prefix=prefix or None)):
                    if n >= _MAX_FAILED:
                        break
                    failed.append(
                        {
                            "file_key": item.file_key,
                            "entry_id": item.entry_id,
                            "step": item.step,
                            "failed_at": item.failed_at.isoformat(timespec="seconds") if item.failed_at else "",
                            "href": _file_url(item.bucket, item.file_key, prefix),
                        }
                    )
            except LoreError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        return render(
            "lineage.html",
            file=file or "",
            bucket=bucket,
            key=key,
            prefix=prefix or "",
            history=history,
            graph=graph,
            truncated=truncated,
            max_nodes=_MAX_NODES,
            failed=failed,
            errors=errors,
            store=s.store or "",
        )

    @app.get("/ti", response_class=HTMLResponse)
    def task_instance_page(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Response:
        try:
            files = _xcom_files(dag_id, run_id, task_id, map_index)
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

    @app.get("/api/history")
    def history_json(file: str) -> JSONResponse:
        s = current_settings()
        try:
            bucket, key = _split_file(s, file)
        except LoreError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        doc = tracker_for(s, bucket).get_history(key)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no history for {file}")
        return JSONResponse(doc.to_json_dict())

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        media = _STATIC.get(name)
        if media is None:
            raise HTTPException(status_code=404, detail="not found")
        return Response((_HERE / "static" / name).read_bytes(), media_type=media)

    return app
