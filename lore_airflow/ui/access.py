"""Who may read what on the lineage page: Airflow's own checks first, then the buckets Lore may read.

Promises:

- every route needs an Airflow login (the ``_token`` cookie the UI sets, or
  ``Authorization: Bearer <JWT>``); a browser without one is sent to Airflow's login
  page (``/api/v2/auth/login?next=...``), an API client gets 401;
- histories describe S3 objects, so reading them needs Airflow's asset read
  permission, and only buckets in ``[lore] buckets`` (default: the store's bucket) are
  read — anything else is refused with 403 before S3 is asked;
- a task instance's data needs read access to its DAG's XCom, the check Airflow's
  own XCom endpoint makes: the ``lore_files`` XCom behind ``/lore/ti``, and the
  input, output, error and metadata an Airflow task recorded in a history (hidden,
  with a note, from users who may not read that DAG);
- a bad request (malformed URL, ``..`` in a key, a key inside the history prefix,
  a missing bucket) is a 4xx whose detail is one line naming what was wrong.

It does not decide which Airflow user holds which permission: the auth manager does.

Example::

    from lore_airflow.config import LoreSettings
    from lore_airflow.ui.access import file_location

    settings = LoreSettings(store="s3://my-bucket/.lore-s3")
    assert file_location(settings, "raw/a.csv") == ("my-bucket", "raw/a.csv")
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from lore_core import (
    AccessDeniedError,
    BucketNotFoundError,
    CorruptHistoryError,
    HistoryNotFoundError,
    InvalidKeyError,
    InvalidStoreURLError,
    LoreConfigError,
    LoreError,
    StoreError,
)
from lore_core.integration import is_s3_url, parse_s3_url
from lore_core.keys import validate_file_key

from ..config import LoreSettings
from ..tracking import store_bucket_and_prefix

__all__ = [
    "LoginRequired",
    "UserDep",
    "current_user",
    "db_session",
    "file_location",
    "hidden_dags",
    "http_error",
    "login_url",
    "may_read_bucket",
    "one_line",
    "readable_buckets",
    "require_asset_read",
    "require_login",
    "require_task_instance_read",
]

# S3's rules, loosened for legacy us-east-1 names (upper case, '_'); never '/', '..' or spaces.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_MAX_DETAIL = 400


class LoginRequired(Exception):
    """No valid Airflow login on the request (the app turns it into a redirect or a 401)."""


def one_line(text: object) -> str:
    """``text`` on one line (whitespace runs collapsed), cut at a readable length."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


async def current_user(request: Request) -> Any:
    """The Airflow user of the request, as Airflow's own routes resolve it, or ``LoginRequired``."""
    from airflow.api_fastapi.core_api.security import get_user

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme and token else None
    try:
        return await get_user(request, None, bearer)
    except HTTPException as exc:
        raise LoginRequired(one_line(exc.detail)) from None


UserDep = Annotated[Any, Depends(current_user)]


# Airflow's security module is imported when a request is checked, not when the plugin
# loads: every Airflow process loads plugins, and the import costs workers half a second.


def require_login(request: Request, user: UserDep) -> None:
    """Dependency: an Airflow login allowed to see Airflow's website (the stylesheet and the script)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    requires_access_view(AccessView.WEBSITE)(request, user)


def require_asset_read(request: Request, user: UserDep) -> None:
    """Dependency: Airflow's asset read permission (histories describe S3 objects, i.e. assets)."""
    from airflow.api_fastapi.core_api.security import requires_access_asset

    requires_access_asset("GET")(request, user)


def require_task_instance_read(request: Request, user: UserDep) -> None:
    """Dependency: read access to the XCom of the DAG named by the ``dag_id`` query parameter."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    try:
        requires_access_dag("GET", DagAccessEntity.XCOM)(request, user)
    except HTTPException as exc:
        if exc.status_code != 403:
            raise
        dag_id = request.query_params.get("dag_id", "")
        raise HTTPException(403, one_line(f"You may not read the task instances of DAG {dag_id!r}")) from None


def db_session() -> Iterator[Any]:
    """Dependency: a metadata-database session, from Airflow's own ``SessionDep``."""
    from airflow.api_fastapi.common.db.common import SessionDep

    yield from get_args(SessionDep)[1].dependency()


def hidden_dags(request: Request, user: Any, dag_ids: Iterable[str]) -> set[str]:
    """The DAGs among ``dag_ids`` whose task data ``user`` may not read (Airflow's XCom read check)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    hidden = set()
    for dag_id in set(dag_ids):
        try:
            requires_access_dag("GET", DagAccessEntity.XCOM, param_dag_id=dag_id)(request, user)
        except HTTPException:
            hidden.add(dag_id)
    return hidden


def login_url(request: Request, mount_prefix: str) -> str:
    """Airflow's login entry point, coming back to this request's URL once logged in."""
    root = str(request.scope.get("root_path", ""))
    if root.endswith(mount_prefix):
        root = root[: -len(mount_prefix)]
    return f"{root.rstrip('/')}/api/v2/auth/login?{urlencode({'next': str(request.url)})}"


def readable_buckets(settings: LoreSettings) -> tuple[str, ...]:
    """``[lore] buckets``, or the store's bucket; empty for a non-S3 store that holds every file itself."""
    if settings.buckets:
        return settings.buckets
    bucket, _ = store_bucket_and_prefix(settings.store or "")
    return (bucket,) if bucket else ()


def may_read_bucket(settings: LoreSettings, bucket: str | None) -> bool:
    allowed = readable_buckets(settings)
    if not allowed:  # a file:// or memory:// store: every history is in the store itself
        return True
    return bucket in allowed


def file_location(settings: LoreSettings, file: str) -> tuple[str | None, str]:
    """``(bucket, key)`` of ``s3://bucket/key`` or of a key in the store's bucket, if Lore may read it.

    Raises ``HTTPException`` 400 (malformed, or a key Lore never tracks) or 403 (a
    bucket outside ``[lore] buckets``), with a one-line detail.
    """
    if not settings.store:
        raise HTTPException(503, "No Lore store configured: set [lore] store (AIRFLOW__LORE__STORE).")
    default_bucket, prefix = store_bucket_and_prefix(settings.store)
    try:
        bucket, key = parse_s3_url(file) if is_s3_url(file) else (default_bucket, file)
        if bucket is not None and (not _BUCKET.fullmatch(bucket) or ".." in bucket):
            raise InvalidKeyError(f"{bucket!r} is not a valid S3 bucket name")
        validate_file_key(key, prefix or ".lore-s3")
    except InvalidKeyError as exc:
        raise HTTPException(400, one_line(exc)) from None
    if not may_read_bucket(settings, bucket):
        raise HTTPException(
            403, f"Lore reads histories only from the buckets in [lore] buckets; {bucket!r} is not one of them"
        )
    return bucket, key


def http_error(exc: LoreError) -> HTTPException:
    """The HTTP status and one-line detail for an error Lore raised while reading."""
    status = 400
    if isinstance(exc, BucketNotFoundError | HistoryNotFoundError):
        status = 404
    elif isinstance(exc, AccessDeniedError):
        status = 403
    elif isinstance(exc, CorruptHistoryError):
        status = 422
    elif isinstance(exc, LoreConfigError | InvalidStoreURLError | StoreError):
        status = 503
    return HTTPException(status, one_line(f"{type(exc).__name__}: {exc}"))
