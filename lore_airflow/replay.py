"""How ``LoreReplayOperator`` finds the handler of a failed entry, the Airflow way.

Promises, in this order: the ``handler=`` argument (a callable taking a
``lore_core.StepContext``, or a dotted path ``"package.module:function"`` /
``"package.module.function"`` imported in the worker); the step registered as
``handler_name=``; the step registered under the entry's own step name
(``lore_core.register_step``); and finally the original task's callable, which the
tracking recorded in the entry's metadata (``airflowCallable``: module, qualname, DAG
file relative to the dags folder). That callable is found in ``sys.modules`` (the DAG
file already parsed in this worker) or loaded from the DAG file under the same module
name, and called with the failed entry's recorded ``op_args``/``op_kwargs`` (plus the
context values its signature asks for, as ``@task`` does); its return value is the
replay's output, and the S3 objects it writes through ``S3Hook`` into the tracker's
bucket become the replay's ``produces``.

It does not restore arguments that were not recorded: values JSON cannot hold are not
in the entry's input, and secrets were masked before they were written.

Example::

    from lore_airflow.replay import import_handler

    handler = import_handler("json:dumps")  # any importable callable
    assert handler({"a": 1}) == '{"a": 1}'
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow.sdk.exceptions import AirflowException

from lore_core import HistoryEntry, LoreTracker, StepContext
from lore_core.steps import Handler

from .config import LoreSettings
from .tracking import CALLABLE_KEY, _jsonable_only, hook_lineage_since, hook_lineage_snapshot

__all__ = ["import_handler", "original_callable_handler", "resolve_handler"]

log = logging.getLogger("lore.airflow")

WAYS = (
    "pass handler= (a callable taking a lore_core.StepContext, or 'package.module:function'), "
    "handler_name= (a step registered with lore_core.register_step), register a step under the "
    "entry's step name, or record the failure from a @task/PythonOperator task (its callable is replayed)"
)


def import_handler(path: str) -> Callable[..., Any]:
    """The callable at ``"package.module:function"`` or ``"package.module.function"``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise AirflowException(
            f"handler {path!r} is not a dotted path: use 'package.module:function' or 'package.module.function'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise AirflowException(f"handler {path!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AirflowException(f"handler {path!r}: {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise AirflowException(f"handler {path!r} is not callable (it is a {type(obj).__name__})")
    return obj  # type: ignore[no-any-return]


def _bundle_roots(context: Mapping[str, Any]) -> list[Path]:
    """Where relative DAG files live: the running DAG's bundle root, then ``[core] dags_folder``."""
    roots: list[Path] = []
    dag = context.get("dag")
    fileloc, relative = getattr(dag, "fileloc", None), getattr(dag, "relative_fileloc", None)
    if fileloc and relative and not Path(relative).is_absolute():
        path = Path(fileloc)
        if path.parts[-len(Path(relative).parts) :] == Path(relative).parts:
            roots.append(Path(*path.parts[: -len(Path(relative).parts)]))
    from airflow.sdk.configuration import conf

    folder = conf.get("core", "dags_folder", fallback=None)
    if folder:
        roots.append(Path(str(folder)))
    return roots


def _load_module(name: str, dag_file: str | None, context: Mapping[str, Any], step: str) -> ModuleType:
    found = sys.modules.get(name)
    if found is not None:
        return found
    if not dag_file:
        raise AirflowException(f"module {name!r} is not loaded in this worker and no DAG file was recorded")
    candidates = [Path(dag_file)] if Path(dag_file).is_absolute() else [r / dag_file for r in _bundle_roots(context)]
    for path in candidates:
        if not path.is_file():
            continue
        # Airflow's own way of loading a DAG file: a module of that (unique) name, in sys.modules.
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise AirflowException(f"DAG file {path} failed to load: {type(exc).__name__}: {exc}") from exc
        log.info("Lore: loaded %s to replay %s", path, step)
        return module
    tried = ", ".join(str(p) for p in candidates) or "nowhere ([core] dags_folder is not set)"
    raise AirflowException(f"DAG file {dag_file!r} of module {name!r} not found (looked at {tried})")


def _unwrap(obj: Any) -> Any:
    # A module-level @task name is the decorator object; the task runs its .function.
    function = getattr(obj, "function", None)
    return function if callable(function) and not inspect.isfunction(obj) else obj


def _find_callable(ref: Mapping[str, Any], original: HistoryEntry, context: Mapping[str, Any]) -> Callable[..., Any]:
    name, qualname = str(ref.get("module") or ""), str(ref.get("qualname") or "")
    module = _load_module(name, ref.get("dagFile"), context, original.step)
    if "<locals>" not in qualname:
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        obj = _unwrap(obj)
        if callable(obj):
            return obj  # type: ignore[no-any-return]
    # Defined inside a function (a @dag function): the task of that DAG in the module, by id.
    orch = original.orchestrator
    for value in list(vars(module).values()):
        is_dag = orch is not None and getattr(value, "dag_id", None) == orch.job and hasattr(value, "has_task")
        if is_dag and value.has_task(orch.task):  # type: ignore[union-attr]
            fn = getattr(value.get_task(orch.task), "python_callable", None)  # type: ignore[union-attr]
            if callable(fn):
                return fn  # type: ignore[no-any-return]
    raise AirflowException(f"the recorded callable {name}:{qualname} is not in its module")


def _context_kwargs(
    fn: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    """The context values ``fn`` asks for by name (all of them for ``**kwargs``), as ``@task`` passes them."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    positional = {p.name for p in params[: len(args)] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
    taken = positional | set(kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return {k: v for k, v in context.items() if k not in taken}
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: context[k] for k in named - taken if k in context}


def original_callable_handler(
    original: HistoryEntry, tracker: LoreTracker, settings: LoreSettings, context: Mapping[str, Any]
) -> Handler | None:
    """A handler that calls the task's own callable again, or None when the entry recorded none."""
    ref = (original.metadata or {}).get(CALLABLE_KEY)
    if not isinstance(ref, Mapping) or not ref.get("module") or not ref.get("qualname"):
        return None
    try:
        fn = _find_callable(ref, original, context)
    except AirflowException as exc:
        raise AirflowException(
            f"cannot replay {original.step} with its task's callable {ref.get('module')}:{ref.get('qualname')}: {exc}"
        ) from exc

    def replay_with_task_callable(ctx: StepContext) -> Any:
        recorded = ctx.input if isinstance(ctx.input, Mapping) else {}
        args = list(recorded.get("op_args") or [])
        kwargs = dict(recorded.get("op_kwargs") or {})
        kwargs.update(_context_kwargs(fn, args, kwargs, context))
        before = hook_lineage_snapshot() if settings.hook_lineage else {}
        result = fn(*args, **kwargs)
        if settings.hook_lineage:
            _, written = hook_lineage_since(before)
            for obj in written:
                if obj.bucket == tracker.bucket and obj.key != ctx.file_key:
                    ctx.produce(obj.key)
        return _jsonable_only(result)

    return replay_with_task_callable


def resolve_handler(
    *,
    handler: Callable[[StepContext], Any] | str | None,
    handler_name: str | None,
    tracker: LoreTracker,
    settings: LoreSettings,
    file_key: str,
    entry_id: str,
    context: Mapping[str, Any],
) -> Handler:
    """The replay's handler, in the order the module docstring gives; AirflowException naming the ways if none."""
    if isinstance(handler, str):
        return import_handler(handler)
    if handler is not None:
        if not callable(handler):
            raise AirflowException(f"handler must be callable or a dotted path, got {type(handler).__name__}")
        return handler
    if handler_name:
        named = tracker.handler_for(handler_name)
        if named is None:
            raise AirflowException(f"no Lore step registered as {handler_name!r}")
        return named
    doc = tracker.get_history(file_key)
    original = doc.entry(entry_id) if doc is not None else None
    if original is None:
        raise AirflowException(f"entry {entry_id} of {file_key!r} is not in its history (bucket {tracker.bucket!r})")
    registered = tracker.handler_for(original.step)
    if registered is not None:
        return registered
    found = original_callable_handler(original, tracker, settings, context)
    if found is not None:
        return found
    raise AirflowException(f"no handler to replay step {original.step!r} of {file_key!r}: {WAYS}")
