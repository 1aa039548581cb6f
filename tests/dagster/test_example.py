"""The example project runs as documented: demo.py and ui.py --check, each as its own process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "dagster_pipeline"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    # The bound only stops a hung child from hanging the suite; it is no timing assertion.
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_demo_fails_one_file_replays_it_and_ends_all_succeeded(tmp_path: Path) -> None:
    log = tmp_path / "dagster.log"
    done = _run(str(EXAMPLE / "demo.py"), "--log", str(log))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # A short summary on the terminal (issue 12); Dagster's own debug log in the file it names.
    assert len(out.splitlines()) < 60 and "RUN_START" not in out + done.stderr, out
    assert f"full Dagster log: {log}" in out and "RUN_START" in log.read_text()
    assert "2 succeeded, 1 failed" in out
    # The failure lands on the file being processed, and that file's history tells the whole story.
    assert "failed: validated on raw/2026-11-03.csv: raw/2026-11-03.csv: line 3 has 2 fields" in out
    assert "raw/2026-11-03.csv: validated:failed, validated:success (replay of" in out
    assert "assets/validated/raw/2026-11-03.csv: validated:success\n" in out
    assert "replay sensor now: no unresolved Lore failures" in out
    assert "└── raw/2026-11-03.csv" in out
    assert out.rstrip().endswith("All files ended succeeded.")


def test_ui_script_serves_the_lineage() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _run(str(EXAMPLE / "ui.py"), "--check", "--port", str(port))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"http://127.0.0.1:{port}/assets/summary" in done.stdout
    assert "`raw/2026-11-03.csv` (success, entry `" in done.stdout
