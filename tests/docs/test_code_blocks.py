"""Every code block of README.md and docs/*.md is checked by running it (issue 9), so the
examples cannot rot. One test per block, named ``<file>:<line>-<language>``:

- ```python: run by the check that its ``<!-- test: NAME -->`` marker names
  (tests/docs/checks.py), against the local S3 server over HTTP; a document that says
  "All examples below come from `FILE`" instead has each block checked as a verbatim
  excerpt of FILE (modulo indentation), and FILE must be run by a test; a block that
  imports Airflow (which never runs in the pytest process) needs a marker naming a test
  under tests/airflow.
- ```sh / ```bash: each command is classified and checked (``pip install`` extras exist,
  ``make`` targets exist, ``lore`` commands run against a populated store and exit 0,
  example scripts exist and are run by a test or answer ``--help``, ``export``\\ ed
  variables are ones Lore or Airflow's ``[lore]`` section reads, ``pytest`` paths exist);
  a command no rule knows fails, naming the file and line.
- ```json: the history example parses as a ``FileHistory``, round-trips byte for byte
  and is read by a real store; IAM policies grant what the S3 store calls, on the
  default prefix.
- ```ini: every ``[lore]`` option is a ``LoreSettings`` field that Airflow's config is
  read for.
- ```toml: a ``lore.toml`` (or a ``pyproject.toml`` with ``[tool.lore]``, as its first
  comment line says) that ``lore_core.settings`` reads without an error: every key known,
  every value valid.
- ```sql: a query (DuckDB, what `lore query` runs) runs against a snapshot of the store
  the quick start writes and must name only the columns the snapshot has; a `CREATE TABLE`
  for another engine (named in the paragraph before it: Athena, Trino or Spark) must
  declare exactly the snapshot's columns, with that engine's types, partitioned by `date`
  over the table's own directory (tests/docs/sql_blocks.py).
- ```yaml: an ``openlineage.yml`` that openlineage-python's client accepts, building the
  transport it names.
- fences without a language are program output: the paragraph before them names the
  ``benchmarks/`` script that prints them, and each line's label is printed by it.
"""

from __future__ import annotations

import ast
import configparser
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tokenize
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from lore_core import FileHistory, LoreTracker

from .checks import BUCKET, CHECKS
from .conftest import run_python_block
from .markdown import REPO, Block, all_blocks, doc_paths
from .sql_blocks import check_sql

BLOCKS = all_blocks()
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
LORE_SOURCES = sorted(
    p for package in ("lore_core", "lore_dagster", "lore_airflow") for p in (REPO / package).rglob("*.py")
)
# The blocks of the CLI section show a store that the README quick start has written.
CLI_STATE = "quick-start"
_EXCERPT_SOURCE = re.compile(r"All examples below come from\s+`([^`]+)`")


def _uses_s3(block: Block) -> bool:
    return block.lang == "python" or (
        block.lang in ("sh", "bash") and re.search(r"^\s*lore ", block.text, re.M) is not None
    )


def _params() -> list[Any]:
    return [
        pytest.param(
            block,
            id=f"{block.path}:{block.line}-{block.lang or 'output'}",
            # "my-bucket" is only ours on the local server.
            marks=[pytest.mark.moto_only] if _uses_s3(block) else [],
        )
        for block in BLOCKS
    ]


@pytest.mark.parametrize("block", _params())
def test_code_block(block: Block, request: pytest.FixtureRequest) -> None:
    checker = CHECKERS.get(block.lang)
    if checker is None:
        pytest.fail(f"{block.where}: no rule checks ```{block.lang} blocks; add one to tests/docs/test_code_blocks.py")
    checker(block, request)


def test_every_check_runs_exactly_one_block() -> None:
    markers = [b.marker for b in BLOCKS if b.marker is not None and b.marker in CHECKS]
    assert sorted(markers) == sorted(CHECKS), "each check in tests/docs/checks.py is named by one block's marker"


def test_the_documents_have_code_blocks() -> None:
    # A parser that silently found nothing would pass every other test.
    counts = {path.name: sum(1 for b in BLOCKS if b.path.endswith(path.name)) for path in doc_paths()}
    assert all(counts.values()), counts
    assert {"python", "json", ""} <= {b.lang for b in BLOCKS}


# --------------------------------------------------------------------------- python


def _excerpt_source(block: Block) -> str | None:
    """The file a document declares its examples come from, if it does so before ``block``."""
    lines = (REPO / block.path).read_text(encoding="utf-8").splitlines()
    match = _EXCERPT_SOURCE.search("\n".join(lines[: block.line - 1]))
    return match.group(1) if match else None


def _test_files() -> Iterator[Path]:
    for path in sorted((REPO / "tests").rglob("*.py")):
        if "docs" not in path.relative_to(REPO / "tests").parts[:1]:
            yield path


def _run_by_a_test(rel: str) -> bool:
    """Whether a test outside tests/docs runs ``rel``: a test package names the file's path,
    or names both its directory and the file (``EXAMPLE / "demo.py"``)."""
    path = Path(rel)
    packages: dict[Path, str] = {}
    for test in _test_files():
        package = test.relative_to(REPO / "tests").parts[0] if test.parent != REPO / "tests" else ""
        packages[REPO / "tests" / package] = packages.get(REPO / "tests" / package, "") + test.read_text(
            encoding="utf-8"
        )
    named = re.compile(rf"""["'/]{re.escape(path.stem)}(\.py)?["']""")
    return any(
        rel in text or (f'"{path.parent.name}"' in text and named.search(text) is not None)
        for text in packages.values()
    )


def _code_lines(text: str) -> list[str]:
    """``text``'s lines without indentation and comments (a comment in a document annotates
    the excerpt; it is not code). A line that held only a comment is dropped."""
    lines = text.splitlines()
    comments = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    for token in reversed(comments):
        row, col = token.start
        lines[row - 1] = lines[row - 1][:col] if lines[row - 1][:col].strip() else "\0"
    return [line.strip() for line in lines if line != "\0"]


def _imported(text: str) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            pairs.update((node.module or "", alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            pairs.update(("", alias.name) for alias in node.names)
    return pairs


def _check_excerpt(block: Block, source: str) -> None:
    """Each run of lines of the block (runs are separated by blank lines) is a verbatim,
    contiguous excerpt of ``source`` modulo indentation and comments, the runs in the file's
    order; an import may name fewer names than the file's, from the same module."""
    path = REPO / source
    assert path.is_file(), f"{block.where}: the examples' source {source} does not exist"
    assert _run_by_a_test(source), f"{block.where}: no test runs {source}, the examples' source"
    text = path.read_text(encoding="utf-8")
    missing = _imported(block.text) - _imported(text)
    assert not missing, f"{block.where}: {source} imports none of {sorted(missing)}"
    have = _code_lines(text)
    runs: list[list[str]] = [[]]
    for line in _code_lines(block.text):
        if not line:
            runs.append([])
        elif not line.startswith(("import ", "from ")):
            runs[-1].append(line)
    start = 0
    for run in filter(None, runs):
        found = next((i for i in range(start, len(have) - len(run) + 1) if have[i : i + len(run)] == run), None)
        if found is None:
            absent = [line for line in run if line not in have]
            pytest.fail(
                f"{block.where}: not a verbatim excerpt of {source}, as the document says it is: "
                + (f"not in it: {absent}" if absent else f"these lines are not together, in this order there: {run}")
            )
        start = found + len(run)


def _imports(block: Block) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(block.text)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def check_python(block: Block, request: pytest.FixtureRequest) -> None:
    source = _excerpt_source(block)
    if source is not None:
        _check_excerpt(block, source)
        return
    if _imports(block) & {"airflow", "lore_airflow"}:
        # Airflow never runs in the pytest process (tests/airflow/test_example.py checks it).
        tests = "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "tests" / "airflow").rglob("*.py")))
        assert block.marker is not None and block.marker in tests, (
            f"{block.where}: an Airflow block needs a <!-- test: NAME --> marker whose NAME appears in a test "
            f"under tests/airflow that runs it (marker: {block.marker!r})"
        )
        return
    assert block.marker is not None, (
        f"{block.where}: a python block needs a <!-- test: NAME --> line before it naming a check in "
        "tests/docs/checks.py that runs it and asserts what it shows"
    )
    run_python_block(block, request.getfixturevalue("doc_env"))


# --------------------------------------------------------------------------- sh / bash


def _shell_lines(block: Block) -> Iterator[tuple[int, str]]:
    """(line number in the document, command line), continuation lines joined."""
    pending, start = "", 0
    for offset, line in enumerate(block.text.splitlines()):
        if not pending:
            start = block.first_text_line + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    assert not pending, f"{block.path}:{start}: a continued line never ends"


def _lore_settings() -> set[str]:
    """``LoreSettings`` fields that ``from_airflow`` reads from Airflow's ``[lore]`` section
    (read from the source: Airflow must not be imported in the pytest process)."""
    tree = ast.parse((REPO / "lore_airflow" / "config.py").read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LoreSettings"]
    fields = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    read = {
        n.args[0].value
        for n in ast.walk(cls)
        if isinstance(n, ast.Call)
        and getattr(n.func, "id", None) == "_conf_get"
        and n.args
        and isinstance(n.args[0], ast.Constant)
    }
    return fields & read


def _read_somewhere(name: str) -> bool:
    from lore_core.settings import ENVIRONMENT

    if name in ENVIRONMENT:  # LORE_<KEY> for every settings key (lore_core.settings)
        return True
    sources = [*LORE_SOURCES, REPO / "tests" / "conftest.py"]
    return any(f'"{name}"' in path.read_text(encoding="utf-8") for path in sources)


def _check_variable(name: str, value: str, where: str, env: dict[str, str]) -> None:
    if name.startswith("AIRFLOW_CONN_"):
        try:
            conn = json.loads(value)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{where}: {name} is not JSON: {exc}")
        assert isinstance(conn, dict) and conn.get("conn_type"), f"{where}: {name} has no conn_type"
        assert isinstance(conn.get("extra", {}), dict), f"{where}: {name}'s extra must be an object"
    elif name.startswith("AIRFLOW__LORE__"):
        option = name.removeprefix("AIRFLOW__LORE__").lower()
        assert option in _lore_settings(), f"{where}: [lore] {option} is not a setting LoreSettings reads"
        conns = [n.removeprefix("AIRFLOW_CONN_").lower() for n in env if n.startswith("AIRFLOW_CONN_")]
        if option == "aws_conn_id" and conns:
            assert value in conns, f"{where}: aws_conn_id={value} names none of the connections defined: {conns}"
        if option == "store":
            LoreTracker.from_url(value)
    elif name.startswith("LORE_"):
        assert _read_somewhere(name), f"{where}: nothing in Lore (or tests/conftest.py) reads ${name}"
        if name == "LORE_STORE":
            LoreTracker.from_url(value)
    else:
        pytest.fail(f"{where}: no rule for the variable {name}")


def _check_pip(args: list[str], line: str, where: str) -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    # Every lore-s3[...] on the line, comments included ("extras: lore-s3[dagster], ...").
    for mentioned in re.findall(r"lore-s3\[([^\]]*)\]", line):
        for extra in (e.strip() for e in mentioned.split(",")):
            assert extra in extras, f"{where}: lore-s3 has no extra [{extra}] (pyproject.toml: {sorted(extras)})"
    assert args[:1] == ["install"], f"{where}: only `pip install` is documented: {line}"
    for requirement in (a for a in args[1:] if not a.startswith("-")):
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        if name == PYPROJECT["project"]["name"]:
            continue
        # Another distribution: Lore must really integrate with it (its module is named in Lore's code).
        module = name.replace("-", "_")
        assert any(module in p.read_text(encoding="utf-8") for p in LORE_SOURCES), (
            f"{where}: {name} is documented as an install, but Lore never mentions {module}"
        )


def _check_make(args: list[str], where: str) -> None:
    for target in args:
        done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{where}: `make {target}` is not a target: {done.stderr.strip()}"


def _script_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _check_script(args: list[str], line: str, where: str) -> None:
    assert args, f"{where}: python without a script"
    script = args[0]
    assert script.startswith("example_projects/") and script.endswith(".py"), f"{where}: no rule for `{line}`"
    assert (REPO / script).is_file(), f"{where}: {script} does not exist"
    flags = sorted(set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line)))
    if _run_by_a_test(script) and not flags:
        return
    # Not run by a test, or options are named: the script must at least answer --help with them.
    done = subprocess.run(
        [sys.executable, script, "--help"], cwd=REPO, env=_script_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{where}: `python {script} --help` failed: {done.stderr[-2000:]}"
    unknown = [flag for flag in flags if flag not in done.stdout]
    assert not unknown, f"{where}: {script} has no option {unknown}"


def _check_pytest(args: list[str], where: str) -> None:
    paths = [a for a in args if not a.startswith("-")]
    assert paths, f"{where}: pytest without a path"
    for arg in paths:
        assert (REPO / arg.split("::")[0]).exists(), f"{where}: {arg} does not exist"


class _LoreCli:
    """Runs ``lore`` lines against the store the README's quick start writes."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.populated = False

    def sql_cwd(self, argv: list[str]) -> Path | None:
        """A snapshot (``lore snapshot --to ./dir``) is written in the test's directory, not the checkout."""
        return self.request.getfixturevalue("tmp_path") if {"snapshot", "query"} & set(argv) else None

    def sql_env(self, argv: list[str]) -> dict[str, str]:
        if not {"snapshot", "query"} & set(argv):
            return {}
        return {"LORE_CACHE_DIR": str(self.request.getfixturevalue("tmp_path") / "cache")}

    def __call__(self, args: list[str], line: str, where: str, env: dict[str, str]) -> None:
        if not self.populated:
            self.request.getfixturevalue("doc_env").run_check(CLI_STATE)
            self.populated = True
        runs = [args]
        # A comment listing choices ("--format tree|json|mermaid|dot"): each is run.
        for option, choices in re.findall(r"(--[\w-]+) ((?:[\w-]+\|)+[\w-]+)", line.partition("#")[2]):
            runs += [[*args, option, choice] for choice in choices.split("|")]
        for argv in runs:
            done = subprocess.run(
                [str(BIN / "lore"), *argv],
                env={**os.environ, **env, **self.sql_env(argv)},
                capture_output=True,
                text=True,
                timeout=60,
                cwd=self.sql_cwd(argv),
            )
            assert done.returncode == 0, f"{where}: `lore {shlex.join(argv)}` exited {done.returncode}: {done.stderr}"
            if argv[0] != "failed":  # the quick start leaves no failure behind
                assert done.stdout.strip(), f"{where}: `lore {shlex.join(argv)}` printed nothing"


def check_shell(block: Block, request: pytest.FixtureRequest) -> None:
    env: dict[str, str] = {}
    lore = _LoreCli(request)
    for number, line in _shell_lines(block):
        where = f"{block.path}:{number}"
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                env[name] = value
                _check_variable(name, value, where, env)
            continue
        local = dict(env)
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            name, _, value = words.pop(0).partition("=")
            local[name] = value
            _check_variable(name, value, where, local)
        tool, args = Path(words[0]).name, words[1:]
        if tool == "pip":
            _check_pip(args, line, where)
        elif tool == "make":
            _check_make(args, where)
        elif tool == "lore":
            lore(args, line, where, local)
        elif tool in ("python", "python3"):
            _check_script(args, line, where)
        elif tool == "pytest":
            _check_pytest(args, where)
        else:
            pytest.fail(f"{where}: no rule checks `{line.strip()}`; add one to tests/docs/test_code_blocks.py")


# --------------------------------------------------------------------------- json


def _models(model: BaseModel) -> Iterator[BaseModel]:
    yield model
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                yield from _models(item)


def _check_history_document(block: Block, data: dict[str, Any], tmp_path: Path) -> None:
    history = FileHistory.model_validate(data)
    assert history.to_json_dict() == data, f"{block.where}: the document does not round-trip through FileHistory"
    # Unknown fields are kept on read (extra="allow"), so a misspelt one would round-trip too.
    unknown = [f"{type(m).__name__}.{name}" for m in _models(history) for name in m.model_extra or {}]
    assert not unknown, f"{block.where}: fields Lore does not know: {unknown}"
    # The reader a tracker uses (limits, parsing) takes it as stored, from a real store.
    stored = tmp_path / history.bucket / ".lore-s3" / f"{history.file_key}.json"
    stored.parent.mkdir(parents=True)
    stored.write_text(block.text, encoding="utf-8")
    tracker = LoreTracker.from_url(f"{(tmp_path / history.bucket).as_uri()}?bucket={history.bucket}")
    read = tracker.get_history(history.file_key)
    assert read is not None and read.to_json_dict() == data
    assert [ref.file_key for ref in read.derived_to] == tracker.get_descendants(history.file_key)


_S3_ACTIONS = {
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
    "delete_objects": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
}


def _check_iam_policy(block: Block, policy: dict[str, Any]) -> None:
    from lore_core.keys import DEFAULT_PREFIX

    calls = set(re.findall(r"client\.(\w+)\(", (REPO / "lore_core" / "stores" / "s3.py").read_text(encoding="utf-8")))
    unknown = calls - set(_S3_ACTIONS)
    assert not unknown, f"the S3 store calls {sorted(unknown)}: say in _S3_ACTIONS which IAM action each needs"
    assert policy["Version"] == "2012-10-17"
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", f"{block.where}: {statement}"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, set()).add(statement["Resource"])
        if "s3:ListBucket" in actions:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": [f"{DEFAULT_PREFIX}/*"]}}, block.where
    objects, bucket = f"arn:aws:s3:::{BUCKET}/{DEFAULT_PREFIX}/*", f"arn:aws:s3:::{BUCKET}"
    expected_resources = {"s3:ListBucket": {bucket}}
    if block.prose.startswith("Writing"):
        needed = {_S3_ACTIONS[c] for c in calls}
    elif block.prose.startswith("Reading"):
        needed = {_S3_ACTIONS[c] for c in calls & {"get_object", "head_object", "list_objects_v2"}}
    else:
        pytest.fail(f"{block.where}: an IAM policy must follow a paragraph starting 'Writing' or 'Reading'")
    assert set(granted) == needed, f"{block.where}: grants {sorted(granted)}, Lore's S3 store needs {sorted(needed)}"
    for action, resources in granted.items():
        assert resources == expected_resources.get(action, {objects}), f"{block.where}: {action} on {resources}"


def check_json(block: Block, request: pytest.FixtureRequest) -> None:
    try:
        data = json.loads(block.text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{block.where}: not JSON: {exc}")
    if isinstance(data, dict) and {"fileKey", "entries"} <= set(data):
        _check_history_document(block, data, request.getfixturevalue("tmp_path"))
    elif isinstance(data, dict) and "Statement" in data:
        _check_iam_policy(block, data)
    else:
        pytest.fail(f"{block.where}: no rule knows this JSON (a history document? an IAM policy?)")


# --------------------------------------------------------------------------- ini


def check_ini(block: Block, request: pytest.FixtureRequest) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(block.text, source=block.where)
    assert parser.sections() == ["lore"], f"{block.where}: only Airflow's [lore] section is checked here"
    settings = _lore_settings()
    for option, value in parser.items("lore"):
        assert option in settings, f"{block.where}: [lore] {option} is not a setting LoreSettings reads"
        if option == "store":
            LoreTracker.from_url(value)


# --------------------------------------------------------------------------- toml


def check_toml(block: Block, request: pytest.FixtureRequest) -> None:
    from lore_core.settings import load_config

    data = tomllib.loads(block.text)
    first = block.text.lstrip().splitlines()[0]
    name = first.lstrip("# ").strip()
    assert name in ("lore.toml", "pyproject.toml"), (
        f"{block.where}: a TOML block starts with '# lore.toml' or '# pyproject.toml'"
    )
    if name == "pyproject.toml":
        assert "lore" in data.get("tool", {}), f"{block.where}: a pyproject.toml block shows [tool.lore]"
    project = request.getfixturevalue("tmp_path") / "toml-block"
    project.mkdir()
    (project / name).write_text(block.text, encoding="utf-8")
    config = load_config(environ={}, cwd=project, user_config=None)  # raises LoreConfigError naming a bad key
    assert config.files and config.store, f"{block.where}: the block sets no store"
    LoreTracker.from_url(config.store) if not config.store.startswith("s3://") else None


# --------------------------------------------------------------------------- output


def check_output(block: Block, request: pytest.FixtureRequest) -> None:
    scripts = re.findall(r"`(benchmarks/[\w/]+\.py)`", block.prose)
    assert scripts, f"{block.where}: program output must follow a paragraph naming the benchmarks/ script printing it"
    for script in scripts:
        assert (REPO / script).is_file(), f"{block.where}: {script} does not exist"
    printed = " ".join(" ".join((REPO / s).read_text(encoding="utf-8").split()) for s in scripts)
    for offset, line in enumerate(block.text.splitlines()):
        labels = re.findall(r"[A-Za-z_]+(?: [A-Za-z_]+)*", line)
        if labels:
            label = max(labels, key=len)
            # A label the script assembles ("produces 1 file" + " loopback") has each word in it.
            words = re.findall(r"[A-Za-z_]{3,}", label)
            assert label in printed or (len(words) > 1 and all(re.search(rf"\b{w}\b", printed) for w in words)), (
                f"{block.path}:{block.first_text_line + offset}: {', '.join(scripts)} never prints {label!r}"
            )


# --------------------------------------------------------------------------- yaml


def check_yaml(block: Block, request: pytest.FixtureRequest) -> None:
    """An ``openlineage.yml``: the client builds the transport it names (nothing is sent)."""
    import yaml
    from openlineage.client import OpenLineageClient

    data = yaml.safe_load(block.text)
    assert isinstance(data, dict) and isinstance(data.get("transport"), dict), (
        f"{block.where}: only openlineage.yml files (a transport) are shown in YAML"
    )
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.delenv("OPENLINEAGE_DISABLED", raising=False)
    client = OpenLineageClient(config=data)
    assert client.transport.kind == data["transport"]["type"], f"{block.where}: {client.transport.kind}"


CHECKERS: dict[str, Callable[[Block, pytest.FixtureRequest], None]] = {
    "python": check_python,
    "sh": check_shell,
    "bash": check_shell,
    "json": check_json,
    "ini": check_ini,
    "yaml": check_yaml,
    "toml": check_toml,
    "sql": check_sql,
    "": check_output,
}
