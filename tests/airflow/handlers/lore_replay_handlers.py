"""Replay handlers named by dotted path (``handler="lore_replay_handlers:validate_by_path"``);
the tests put this directory on the worker's PYTHONPATH."""

from __future__ import annotations

from lore_core import StepContext

NOT_CALLABLE = 42


def validate_by_path(ctx: StepContext) -> dict[str, str]:
    return {"validated_by": "dotted path", "file": ctx.file_key}
