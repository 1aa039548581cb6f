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
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

__all__ = ["LocalS3Server"]

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Serialised:
    """WSGI middleware: one request at a time, optional added latency."""

    def __init__(self, app: _WSGIApp, latency_s: float) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.latency_s = latency_s
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.latency_s:
            # Latency is simulated outside the lock: real S3 serves requests in parallel.
            time.sleep(self.latency_s)
        with self._lock:
            self.requests += 1
            # Materialise the body inside the lock so the write really is atomic.
            return [b"".join(self._app(environ, start_response))]


class LocalS3Server:
    """moto's S3 server on 127.0.0.1, on a free port, in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0) -> None:
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
        self._middleware = _Serialised(app, latency_ms / 1000.0)
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
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(**({"retries": {"mode": "standard"}} | config)),
        )

    def __enter__(self) -> LocalS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
