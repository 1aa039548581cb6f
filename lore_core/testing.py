"""A local S3 endpoint for tests, demos and benchmarks (needs the ``[dev]`` extra).

moto's server checks ``IfMatch``/``IfNoneMatch`` and then writes without a lock, so
two conditional writers racing each other can both win. Serving its WSGI app with
one lock per request makes conditional writes atomic, as they are on S3; without
the lock a concurrency test would prove nothing.

Example::

    from lore_core.testing import LocalS3Server

    with LocalS3Server() as server:
        client = server.client()
        client.create_bucket(Bucket="demo")
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

__all__ = ["FAULT_KINDS", "Fault", "FaultProxy", "LocalS3Server"]

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Serialised:
    """WSGI middleware: one request at a time, optional added latency.

    With ``honour_conditions=False`` it drops ``If-Match`` / ``If-None-Match`` before
    moto sees them: an S3-compatible server that ignores conditional writes.
    """

    def __init__(self, app: _WSGIApp, latency_s: float, honour_conditions: bool = True) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.latency_s = latency_s
        self.honour_conditions = honour_conditions
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.honour_conditions:
            environ.pop("HTTP_IF_MATCH", None)
            environ.pop("HTTP_IF_NONE_MATCH", None)
        if self.latency_s:
            # Latency is simulated outside the lock: real S3 serves requests in parallel.
            time.sleep(self.latency_s)
        with self._lock:
            self.requests += 1
            # Materialise the body inside the lock so the write really is atomic.
            return [b"".join(self._app(environ, start_response))]


def local_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 S3 client for a local test server (fake credentials; ``config``: botocore Config options)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**({"retries": {"mode": "standard"}} | config)),
    )


class LocalS3Server:
    """moto's S3 server on 127.0.0.1, on a free port, in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        *,
        honour_conditions: bool = True,
    ) -> None:
        """``honour_conditions=False`` makes the server ignore ``If-Match`` / ``If-None-Match``
        (as some S3-compatible stores do), for testing that Lore refuses such a backend."""
        try:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("LocalS3Server needs moto[server]; install lore-s3[dev]") from exc
        # moto refuses requests without credentials; these never leave the machine.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

        class _QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        app = DomainDispatcherApplication(create_backend_app)
        self._middleware = _Serialised(app, latency_ms / 1000.0, honour_conditions)
        self._server = make_server(host, port, self._middleware, threaded=True, request_handler=_QuietHandler)
        self.host = host
        self.port = int(self._server.server_port)
        self.endpoint_url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lore-local-s3", daemon=True)

    @property
    def requests(self) -> int:
        """How many requests the server has answered."""
        return self._middleware.requests

    def set_latency(self, latency_ms: float) -> None:
        self._middleware.latency_s = latency_ms / 1000.0

    def start(self) -> LocalS3Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client pointed at this server."""
        return local_client(self.endpoint_url, **config)

    def __enter__(self) -> LocalS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- fault injection

FAULT_KINDS = ("503", "500", "drop", "drop_after", "delay", "412", "409")


@dataclass(frozen=True)
class Fault:
    """One kind of fault, injected into a share (``rate``) of the matching requests.

    ``kind``: ``"503"`` (SlowDown), ``"500"`` (InternalError), ``"drop"`` (close the
    connection before forwarding), ``"drop_after"`` (forward, so the request lands,
    then close without answering), ``"delay"`` (forward, then hold the answer for
    ``delay_s``, past the client's read timeout), ``"412"`` / ``"409"`` (answer a
    conditional write with PreconditionFailed / ConditionalRequestConflict without
    forwarding). ``operations`` limits it to some of GetObject, PutObject,
    DeleteObject, ListObjectsV2, HeadObject (None: all).
    """

    kind: str
    rate: float
    operations: frozenset[str] | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate {self.rate!r} must be between 0 and 1")


_ERROR_BODIES = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    412: ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
    409: ("ConditionalRequestConflict", "A conflicting conditional operation is currently in progress"),
    403: ("AccessDenied", "Access Denied"),
}


class FaultProxy:
    """An HTTP proxy in front of an S3 endpoint that injects faults at chosen rates.

    It also enforces ``x-amz-expected-bucket-owner`` against ``bucket_owner`` (moto
    ignores the header; S3 answers 403), and counts what it injected.

    Example::

        with LocalS3Server() as s3, FaultProxy(s3.endpoint_url, [Fault("503", 0.2)]) as proxy:
            tracker = LoreTracker.from_url("s3://bucket", endpoint_url=proxy.endpoint_url)
    """

    def __init__(
        self,
        upstream: str,
        faults: Sequence[Fault] = (),
        *,
        seed: int | None = 0,
        bucket_owner: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        from http.server import ThreadingHTTPServer
        from urllib.parse import urlparse

        target = urlparse(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.faults: list[Fault] = list(faults)
        self.bucket_owner = bucket_owner
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.owner_headers: list[str | None] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_DELETE = do_HEAD = do_POST = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                # A client that gave up on a delayed answer closes the socket: expected here.
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self._server = Server((host, 0), Handler)
        self.endpoint_url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lore-fault-proxy", daemon=True)

    def set_faults(self, faults: Sequence[Fault]) -> None:
        with self._lock:
            self.faults = list(faults)

    @staticmethod
    def operation(method: str, path: str) -> str:
        bucket_and_key = path.split("?", 1)[0].lstrip("/")
        has_key = "/" in bucket_and_key and not bucket_and_key.endswith("/")
        query = path.split("?", 1)[1] if "?" in path else ""
        if method == "GET":
            return "GetObject" if has_key else ("ListObjectsV2" if "list-type=2" in query else "ListObjects")
        if method == "PUT":
            return "PutObject" if has_key else "CreateBucket"
        if method == "DELETE":
            return "DeleteObject" if has_key else "DeleteBucket"
        if method == "HEAD":
            return "HeadObject" if has_key else "HeadBucket"
        return method

    def _choose(self, operation: str, conditional: bool) -> Fault | None:
        with self._lock:
            self.requests += 1
            for fault in self.faults:
                if fault.operations is not None and operation not in fault.operations:
                    continue
                if fault.kind in ("412", "409") and not conditional:
                    continue
                if self._random.random() < fault.rate:
                    self.injected[fault.kind] += 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        import http.client

        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        operation = self.operation(handler.command, handler.path)
        conditional = "If-Match" in handler.headers or "If-None-Match" in handler.headers
        owner = handler.headers.get("x-amz-expected-bucket-owner")
        with self._lock:
            self.owner_headers.append(owner)
        if self.bucket_owner is not None and owner is not None and owner != self.bucket_owner:
            self._error(handler, 403)
            return
        fault = self._choose(operation, conditional)
        if fault is not None and fault.kind in ("503", "500", "412", "409"):
            self._error(handler, int(fault.kind))
            return
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            return
        upstream = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "expect")}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            status, reply_headers = response.status, response.getheaders()
        finally:
            upstream.close()
        if fault is not None and fault.kind == "drop_after":
            handler.close_connection = True  # the request landed; the client never hears so
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_s)  # the injected fault itself: an answer that comes too late
        handler.send_response(status)
        for name, value in reply_headers:
            if name.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    @staticmethod
    def _error(handler: BaseHTTPRequestHandler, status: int) -> None:
        code, message = _ERROR_BODIES[status]
        payload = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
        ).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
