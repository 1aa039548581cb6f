"""Airflow's own secrets masker, applied to everything Lore writes from Airflow.

Promises: every value and string a ``lore_airflow`` tracker writes (inputs, outputs,
metadata, descriptions, error messages, stack traces) first goes through the task
SDK's secrets masker (``airflow.sdk.log.redact``), which knows the actual values of
the connection passwords and extras and of the sensitive variables (names in
Airflow's ``DEFAULT_SENSITIVE_FIELDS`` and ``[core] sensitive_var_conn_names``) the
task has fetched, and masks them wherever they appear, even under an innocent key;
Lore's own redaction (``lore_core.redaction``) runs after it. A value Airflow's masker
fails on is not written (``***``): it could not be vouched for.

It does not know secrets the task never fetched through Airflow (use
``airflow.sdk.log.mask_secret`` for those, as for Airflow's logs).

Example::

    from lore_airflow.masking import airflow_masker
    from lore_core import LoreTracker

    tracker = LoreTracker.from_url("memory://demo", extra_maskers=[airflow_masker])
"""

from __future__ import annotations

import logging
from typing import Any

from lore_core.redaction import REDACTED

__all__ = ["airflow_masker"]

log = logging.getLogger("lore.airflow")

# Airflow's masker stops at depth 5 by default; Lore's values may nest deeper.
_MAX_DEPTH = 64


def airflow_masker(value: Any) -> Any:
    """``value`` with every secret Airflow's secrets masker knows replaced by ``***``."""
    # Where Airflow's own providers take it from (airflow.providers.common.compat.sdk); not in an __all__.
    from airflow.sdk.log import redact  # type: ignore[attr-defined]

    try:
        return redact(value, max_depth=_MAX_DEPTH)
    except Exception as exc:  # fail closed: an unmasked value might hold a connection password
        log.warning("Lore: Airflow's secrets masker failed (%s); the value is not recorded", type(exc).__name__)
        return REDACTED
