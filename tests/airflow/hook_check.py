"""Build Lore's clients in an Airflow process and print what they got, as JSON.

Usage: ``python hook_check.py``; connections come from ``AIRFLOW_CONN_*`` in the
environment the test gives. Nothing is sent to S3 here (the endpoints are never called)."""

from __future__ import annotations

import json
from typing import Any


def describe(client: Any) -> dict[str, Any]:
    config = client.meta.config
    creds = client._request_signer._credentials.get_frozen_credentials()
    return {
        "endpoint": client.meta.endpoint_url,
        "region": client.meta.region_name,
        "access_key": creds.access_key,
        "secret_key": creds.secret_key,
        "read_timeout": config.read_timeout,
        "connect_timeout": config.connect_timeout,
        "retries": config.retries,
        "request_checksum_calculation": config.request_checksum_calculation,
        "response_checksum_validation": config.response_checksum_validation,
    }


def errors() -> dict[str, str]:
    from airflow.sdk.exceptions import AirflowException

    from lore_airflow.config import LoreSettings
    from lore_airflow.replay import import_handler, resolve_handler
    from lore_core import LoreTracker

    out: dict[str, str] = {}
    for path in (
        "no_such_module_xyz:fn",
        "lore_replay_handlers:missing",
        "lore_replay_handlers:NOT_CALLABLE",
        "nodots",
    ):
        try:
            import_handler(path)
            out[path] = "imported"
        except AirflowException as exc:
            out[path] = str(exc)
    tracker = LoreTracker.from_url("memory://hook-check")
    entry = tracker.record("raw/x.csv", "some_dag.bash_task", "failed", error="exit 1")  # no callable recorded
    try:
        resolve_handler(
            handler=None,
            handler_name=None,
            tracker=tracker,
            settings=LoreSettings(store="memory://hook-check"),
            file_key="raw/x.csv",
            entry_id=entry.id,
            context={},
        )
        out["none"] = "resolved"
    except AirflowException as exc:
        out["none"] = str(exc)
    return out


def main() -> dict[str, Any]:
    from lore_airflow import LoreHook
    from lore_airflow.config import LoreSettings
    from lore_airflow.tracking import hook_for, tracker_for

    conn = LoreHook("lore_conn_check", store="s3://conn-bucket/.lore-s3", endpoint_url="")
    default = LoreHook(store="s3://conn-bucket/.lore-s3")
    overridden = LoreHook(
        "lore_conn_check", store="s3://conn-bucket/.lore-s3", endpoint_url="http://override:1", region_name="ap-south-2"
    )
    chain = LoreHook("no_such_connection", store="s3://conn-bucket/.lore-s3")
    no_conn = LoreHook("", store="s3://conn-bucket/.lore-s3")
    given = LoreHook("lore_conn_check", store="s3://conn-bucket/.lore-s3", config={"read_timeout": 99})
    settings = LoreSettings.from_airflow(store="s3://conn-bucket/.lore-s3")
    first, again, other = tracker_for(settings), tracker_for(settings), tracker_for(settings, "other-bucket")
    tracker = conn.get_tracker()
    return {
        "conn": describe(conn.get_s3_client()),
        "default_conn_id": default.aws_conn_id,
        "settings_conn_id": settings.aws_conn_id,
        "default": describe(default.get_conn()),
        "overridden": describe(overridden.get_conn()),
        "chain": describe(chain.get_conn()),
        "no_conn": describe(no_conn.get_conn()),
        "given": describe(given.get_conn()),
        "hook_attrs": [LoreHook.conn_name_attr, LoreHook.default_conn_name, LoreHook.conn_type, LoreHook.hook_name],
        "tracker": [tracker.bucket, type(tracker).__name__],
        "cached_tracker": first is again,
        "one_client": first.store.client is other.store.client,
        "one_hook": hook_for(settings) is hook_for(settings),
        # Another store and other options, the same connection: the same client.
        "one_client_across_stores": tracker_for(
            LoreSettings.from_airflow(store="s3://another-bucket/lore", raise_on_error=True)
        ).store.client
        is first.store.client,
        "errors": errors(),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
