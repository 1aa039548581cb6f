"""The benchmarks' S3 endpoint: lore_core's LocalS3Server in a process of its own, with a
fixed latency added to every request and a count of requests by operation.

The server runs in a child process so its CPU (moto parsing XML and bodies) does not
compete for the benchmarked process's GIL, and so Airflow's subprocesses can share it.
The latency is LocalS3Server's own (a sleep per request, outside its lock: requests are
served in parallel, as on S3). Two control paths, answered before the latency and not
counted, let any process set the latency and read the counts:

    GET  /__bench/counts          -> {"GET": 3, "PUT": 2, "HEAD": 0, "412": 1, ...}
    POST /__bench/latency?ms=20   -> sets the added latency

Example::

    with BenchS3() as s3:
        s3.set_latency(20)
        client = s3.client()
        client.create_bucket(Bucket="b")
        before = s3.counts()
        client.put_object(Bucket="b", Key="k", Body=b"x")
        print(Counts.delta(before, s3.counts()))  # {'PUT': 1}
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Counted keys: the HTTP method of each request (LIST is a GET on a bucket), and the error
# statuses worth seeing (a conditional write refused, a read of a missing key).
METHODS = ("GET", "PUT", "HEAD", "LIST", "DELETE", "POST")
STATUSES = ("404", "409", "412")


class Counts:
    """Request counts by method and status, as the server saw them."""

    @staticmethod
    def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
        return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def _operation(method: str, path: str) -> str:
    bucket_and_key = path.lstrip("/")
    has_key = "/" in bucket_and_key and not bucket_and_key.endswith("/")
    if method == "GET" and not has_key:
        return "LIST"
    return method


class _Control:
    """WSGI wrapper: answers /__bench/*, counts everything else, then hands it on."""

    def __init__(self, app: Callable[..., Any], server: Any) -> None:
        self._app, self._server = app, server
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/__bench/"):
            return self._control(path, environ, start_response)
        method = environ.get("REQUEST_METHOD", "")
        with self._lock:
            self.counts[_operation(method, path)] += 1

        def counting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            code = status.split(" ", 1)[0]
            if code in STATUSES:
                with self._lock:
                    self.counts[code] += 1
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self._app(environ, counting_start_response)

    def _control(self, path: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from urllib.parse import parse_qs

        if path == "/__bench/latency":
            ms = float(parse_qs(environ.get("QUERY_STRING", ""))["ms"][0])
            self._server.set_latency(ms)
            body = b"{}"
        elif path == "/__bench/counts":
            with self._lock:
                body = json.dumps(dict(self.counts)).encode()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown control path"]
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def serve() -> None:
    """Child process: start the server, print its endpoint, serve until stdin closes."""
    from lore_core.testing import LocalS3Server

    server = LocalS3Server()
    # LocalS3Server has no public hook for a wrapper around its whole app; the control
    # paths must sit outside its latency, so wrap the werkzeug server's app.
    werkzeug_server = getattr(server, "_server", None)
    if werkzeug_server is None or not hasattr(werkzeug_server, "app"):
        raise SystemExit("LocalS3Server changed: benchmarks/_latency.py cannot wrap its WSGI app")
    werkzeug_server.app = _Control(werkzeug_server.app, server)
    server.start()
    print(server.endpoint_url, flush=True)
    sys.stdin.read()  # the parent closes our stdin (or dies): stop
    server.stop()


class BenchS3:
    """Start the S3 server in a child process; read counts and set latency over HTTP."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def start(self) -> BenchS3:
        env = dict(os.environ)
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the local S3 server did not start (said {line!r})")
        self.endpoint_url = line
        return self

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> BenchS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counts(self) -> dict[str, int]:
        return read_counts(self.endpoint_url)

    def set_latency(self, ms: float) -> None:
        set_latency(self.endpoint_url, ms)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (fake credentials)."""
        from lore_core.testing import local_client

        return local_client(self.endpoint_url, **config)


def read_counts(endpoint_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint_url}/__bench/counts", timeout=10) as response:
        return dict(json.loads(response.read()))


def set_latency(endpoint_url: str, ms: float) -> None:
    request = urllib.request.Request(f"{endpoint_url}/__bench/latency?ms={ms:g}", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10):
        pass


# --------------------------------------------------------------------------- printing


def median_spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """``median [min-max]`` of ``values``."""
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def requests_text(per_run: Iterable[Mapping[str, float]]) -> str:
    """Mean requests per run by method (and error statuses), e.g. ``6.0 = 2 GET + 4 PUT (412: 1)``."""
    runs = list(per_run)
    if not runs:
        return "-"
    keys = {k for run in runs for k in run}
    mean = {k: sum(run.get(k, 0) for run in runs) / len(runs) for k in keys}
    total = sum(mean.get(m, 0.0) for m in METHODS)
    parts = [f"{_num(mean[m])} {m}" for m in METHODS if abs(mean.get(m, 0.0)) >= 0.05]
    errors = [f"{s}: {_num(mean[s])}" for s in STATUSES if abs(mean.get(s, 0.0)) >= 0.05]
    text = f"{_num(total)} = " + " + ".join(parts) if parts else "0"
    return text + (f" ({', '.join(errors)})" if errors else "")


def total_requests(counts: Mapping[str, float]) -> float:
    return sum(counts.get(m, 0) for m in METHODS)


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, ["-" * w for w in widths], *rows]:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def machine() -> str:
    """One line naming the machine: CPU model, cores, Python."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load {os.getloadavg()[0]:.1f}"
    return f"{model}, {os.cpu_count()} cores{load}, Python {platform.python_version()}"


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        raise SystemExit("usage: python benchmarks/_latency.py serve")
