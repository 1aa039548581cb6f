"""Open the Lore lineage page on the example: python example_projects/airflow_dags/ui.py [--port 8080]

Starts the local S3 server, runs the example DAGs once (so there is history to
look at), then ``airflow api-server`` on 127.0.0.1. Log in as ``admin`` with the
password printed below, then open "Browse > Lore lineage" or
http://127.0.0.1:8080/lore/?file=summary/daily.json . Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from example_setup import (
    api_server_env,
    fix_reference_data,
    prepare,
    run_dag,
    start_api_server,
    stop_api_server,
    wait_until_up,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-run", action="store_true", help="start the server without running the DAGs first")
    args = parser.parse_args()
    server, home = prepare()
    proc = None
    try:
        if not args.no_run:
            print("lore_orders:", run_dag("lore_orders"))
            fix_reference_data(server)
            print("lore_orders_fix:", run_dag("lore_orders_fix"))
        password = secrets.token_urlsafe(12)
        env = {**os.environ, **api_server_env(home, args.port, password)}
        proc = start_api_server(args.port, env, home / "api-server.log")
        wait_until_up(args.port)
        print(f"\nAirflow UI: http://127.0.0.1:{args.port}/  (user admin, password {password})")
        print(f"Lore page:  http://127.0.0.1:{args.port}/lore/?file=summary/daily.json")
        print(f"Server log: {home / 'api-server.log'}\nCtrl-C to stop.")
        proc.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if proc is not None:
            stop_api_server(proc)
        server.stop()
        shutil.rmtree(home, ignore_errors=True)  # the temp AIRFLOW_HOME


if __name__ == "__main__":
    raise SystemExit(main())
