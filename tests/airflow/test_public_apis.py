"""Worker-side code uses Airflow's public task SDK only (issue 9: no ``airflow.models``,
``airflow.utils.session`` or ``airflow.configuration`` on workers). ``lore_airflow/ui``
runs in the API server and may use ``airflow.api_fastapi``. A static scan: Airflow is
never imported into the pytest process."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "lore_airflow"
FORBIDDEN = ("airflow.models", "airflow.utils.session", "airflow.configuration")
SERVER_SIDE = ("ui",)


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from airflow import configuration" imports airflow.configuration as well.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "import_string")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def _worker_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in SERVER_SIDE or len(path.relative_to(PACKAGE).parts) == 1
    ]


def test_worker_side_modules_import_no_airflow_internals() -> None:
    modules = _worker_modules()
    assert PACKAGE / "links.py" in modules and PACKAGE / "hooks.py" in modules
    assert not [p for p in modules if "ui" in p.relative_to(PACKAGE).parts[:-1]]
    offences = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in modules
        for line, name in _imported_modules(ast.parse(path.read_text(), str(path)))
        if _forbidden(name)
    ]
    assert offences == []


def test_the_scan_sees_every_import_form() -> None:
    source = (
        "import airflow.models.dag\n"
        "def f():\n"
        "    from airflow import configuration\n"
        "    from airflow.utils.session import create_session\n"
        "    import importlib; importlib.import_module('airflow.models')\n"
        "from airflow.sdk.configuration import conf\n"
    )
    names = [name for _, name in _imported_modules(ast.parse(source)) if _forbidden(name)]
    assert sorted(names) == [
        "airflow.configuration",
        "airflow.models",
        "airflow.models.dag",
        "airflow.utils.session",
        "airflow.utils.session.create_session",
    ]
