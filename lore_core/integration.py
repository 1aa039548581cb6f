"""What both orchestrator adapters share: the tracking-error policy, ``s3://`` URLs, orchestrator refs.

Promises:

- Inside an orchestrator, a failure to *record* history never fails the user's task by
  default: it is logged at ERROR, naming what was not recorded and why. Only when the
  user set ``raise_on_error`` is it raised, as :class:`TrackingError` (chained to the
  cause). The task's own exception always passes through unchanged.
- ``tracked()`` applies that policy to the core's one step lifecycle,
  ``tracker.track(..., on_error=error_policy(raise_on_error))``; callers whose start and
  end are separate callbacks use ``tracker.begin()`` inside ``tracking_errors()``.
- ``parse_s3_url`` is the one reader of ``s3://bucket/key`` URLs; a bad one is an
  ``InvalidKeyError`` that quotes it.
- ``orchestrator_info`` builds every ``OrchestratorInfo`` the same way.

It imports neither orchestrator and records nothing itself.

Example::

    import logging
    from lore_core.integration import orchestrator_info, parse_s3_url, tracking_errors

    assert parse_s3_url("s3://my-bucket/raw/orders.csv") == ("my-bucket", "raw/orders.csv")
    info = orchestrator_info("airflow", "manual__1", "orders", "clean", map_index=-1)
    assert info.map_index is None  # Airflow's -1 means "not mapped"
    with tracking_errors("the history of raw/orders.csv", raise_on_error=False):
        raise OSError("S3 is down")  # logged on the "lore" logger; the block's caller goes on
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeGuard
from urllib.parse import unquote

from .errors import InvalidKeyError, LoreError
from .lifecycle import ErrorPolicy
from .models import OrchestratorInfo
from .steps import StepContext

__all__ = [
    "TrackingError",
    "error_policy",
    "is_s3_url",
    "orchestrator_info",
    "parse_s3_url",
    "report_tracking_error",
    "s3_url",
    "tracked",
    "tracking_errors",
]

log = logging.getLogger("lore")

S3_SCHEME = "s3://"


# ---------------------------------------------------------------------- the tracking-error policy


class TrackingError(LoreError, RuntimeError):
    """Lore could not record history and the user asked for that to fail the task (``raise_on_error``).

    The cause (a ``StoreError``, ``InvalidKeyError``, ...) is chained as ``__cause__``.
    """


def error_policy(raise_on_error: bool) -> ErrorPolicy:
    """The core's ``on_error`` for an adapter's ``raise_on_error`` setting."""
    return "raise" if raise_on_error else "log"


def report_tracking_error(what: str, exc: BaseException, *, raise_on_error: bool, logger: Any = None) -> None:
    """Apply the policy to ``exc``, raised while recording ``what`` (e.g. "the success of clean on 'a.csv'").

    Logs ``lore: could not record <what>: <Type>: <message>`` at ERROR on ``logger``
    (default the ``lore`` logger), with a traceback when the cause is not a ``LoreError``
    (those name their problem; anything else is a bug worth a stack). With
    ``raise_on_error`` raises ``TrackingError`` instead; a ``TrackingError`` (already
    reported) is re-raised as it is.
    """
    if isinstance(exc, TrackingError):
        raise exc
    if raise_on_error:
        raise TrackingError(f"Lore could not record {what}: {type(exc).__name__}: {exc}") from exc
    (logger or log).error(
        "lore: could not record %s: %s: %s",
        what,
        type(exc).__name__,
        exc,
        exc_info=None if isinstance(exc, LoreError) else exc,
    )


@contextmanager
def tracking_errors(what: str, *, raise_on_error: bool, logger: Any = None) -> Iterator[None]:
    """Run adapter bookkeeping (never user code) under the policy: an ``Exception`` in the block is reported.

    Example::

        with tracking_errors(f"the failure of {step} on {uri}", raise_on_error=settings.raise_on_error):
            active.fail(error)
    """
    try:
        yield
    except Exception as exc:
        report_tracking_error(what, exc, raise_on_error=raise_on_error, logger=logger)


@contextmanager
def tracked(
    track: AbstractContextManager[StepContext],
    file_key: str,
    step: str,
    *,
    raise_on_error: bool,
    logger: Any = None,
) -> Iterator[StepContext]:
    """Enter ``track`` — a ``tracker.track(file_key, step, ..., on_error=error_policy(raise_on_error))`` —
    under the policy, and yield its ``StepContext``.

    The block's own exception is recorded by the core and passes through unchanged.
    Tracking errors the core raised (``raise_on_error``) become ``TrackingError``; with the
    default policy the core has logged them already, and anything unexpected is logged
    here, the block then running untracked (a detached context) if the start failed.
    """
    entered = body_failed = False
    try:
        with track as ctx:
            entered = True
            try:
                yield ctx
            except BaseException:
                body_failed = True
                raise
    except Exception as exc:
        if body_failed:
            raise
        what = f"{'the result' if entered else 'the start'} of step {step} on {file_key!r}"
        report_tracking_error(what, exc, raise_on_error=raise_on_error, logger=logger)
    if not entered:  # the start failed and was logged: the block still runs, untracked
        yield StepContext(file_key=file_key, bucket="", step=step, entry_id="", input=None, tracker=None)


# ---------------------------------------------------------------------- s3:// URLs


def is_s3_url(value: object) -> TypeGuard[str]:
    """True for a string that starts with ``s3://`` (well-formed or not: ``parse_s3_url`` says)."""
    return isinstance(value, str) and value.startswith(S3_SCHEME)


def parse_s3_url(url: str, *, key_required: bool = True) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; percent-escapes in the key are decoded.

    Everything after the bucket's slash is the key, ``?`` and ``#`` included. With
    ``key_required=False`` a bare ``s3://bucket`` (or ``s3://bucket/``) gives an empty key.
    A URL of another form raises ``InvalidKeyError`` quoting it and the expected form.

    Example::

        >>> parse_s3_url("s3://my-bucket/raw/a%20b.csv")
        ('my-bucket', 'raw/a b.csv')
    """
    if not is_s3_url(url):
        raise InvalidKeyError(f"{url!r} is not an S3 URL: expected s3://bucket/key")
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    if not bucket or any(c.isspace() for c in bucket):
        raise InvalidKeyError(f"S3 URL {url!r} names no valid bucket: expected s3://bucket/key")
    key = unquote(key)
    if key_required and not key.strip("/"):
        raise InvalidKeyError(f"S3 URL {url!r} names no object key: expected s3://{bucket}/key")
    return bucket, key


def s3_url(bucket: str, key: str) -> str:
    """``s3://bucket/key`` (the form ``parse_s3_url`` reads, for keys without ``%``)."""
    return f"{S3_SCHEME}{bucket}/{key}"


# ---------------------------------------------------------------------- orchestrator refs


def orchestrator_info(
    system: str,
    run_id: str | None = None,
    job: str | None = None,
    task: str | None = None,
    *,
    partition: str | None = None,
    try_number: int | None = None,
    map_index: int | None = None,
    url: str | None = None,
    **extra: Any,
) -> OrchestratorInfo:
    """Where an entry came from: run, job, task, partition, try, map index, UI link.

    A negative ``map_index`` (Airflow's -1, "not mapped") and extra fields whose value is
    None are left out; other extras (``code_version=...``) are stored as given.
    """
    return OrchestratorInfo(
        system=system,
        run_id=run_id,
        job=job,
        task=task,
        partition=partition,
        try_number=try_number,
        map_index=map_index if map_index is not None and map_index >= 0 else None,
        url=url,
        **{k: v for k, v in extra.items() if v is not None},
    )
