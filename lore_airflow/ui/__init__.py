"""The lineage page mounted by Airflow's API server under ``/lore``."""

from .app import create_app

__all__ = ["create_app"]
