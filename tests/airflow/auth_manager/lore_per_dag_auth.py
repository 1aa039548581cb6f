"""Test-only auth manager: Airflow's SimpleAuthManager with per-user DAG access.

SimpleAuthManager gives each user one role (viewer, user, op, admin) that holds on
every DAG; FAB, the auth manager that can grant DAGs one by one, is a provider that
is not installed here. The authorization tests need two users whose DAG access
differs, so this subclass changes one decision: a user named in the JSON object
``LORE_TEST_DAG_ACCESS`` (``{"alice": ["sec_dag_a"]}``) may act only on the DAGs
listed for them, within what their role allows. Everything else (login page,
tokens, roles, every other resource) is SimpleAuthManager's own. The API server
loads it through ``AIRFLOW__CORE__AUTH_MANAGER=lore_per_dag_auth.PerDagAuthManager``
with this folder on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


def _dag_access() -> dict[str, list[str]]:
    return dict(json.loads(os.environ.get("LORE_TEST_DAG_ACCESS", "{}")))


class PerDagAuthManager(SimpleAuthManager):
    """SimpleAuthManager, with the DAGs of some users limited by ``LORE_TEST_DAG_ACCESS``."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        allowed = _dag_access().get(user.username)
        dag_id = getattr(details, "id", None)
        if allowed is not None and dag_id is not None and dag_id not in allowed:
            return False
        return bool(super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details))
