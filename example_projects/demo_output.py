"""What the example demos print: a short summary on the terminal, the orchestrator's logs in a file.

The orchestrator's own log lines (Python logging, structlog, child processes: whatever writes
to file descriptors 1 and 2) go to a log file while it runs; the demo's summary, printed with
say(), still reaches the terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["logs_to", "say"]

_terminal: TextIO = sys.stdout


def say(*parts: object) -> None:
    print(*parts, file=_terminal, flush=True)


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    global _terminal
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    _terminal = os.fdopen(os.dup(saved[0]), "w", encoding="utf-8")
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        _terminal.close()
        _terminal = sys.stdout
