"""``s3://bucket/prefix``: histories in an S3 bucket (or MinIO, R2, a local S3 server).

Credentials come from boto3's standard chain unless a client is handed in.
Conditional writes use ``IfNoneMatch='*'`` / ``IfMatch=<etag>``; 412 and 409
become ``ConditionFailed`` so the tracker can re-read and retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import AccessDeniedError, BucketNotFoundError, StoreError, StoreUnavailableError
from .base import ConditionFailed, ListedObject, Store, StoredObject

__all__ = ["S3Store", "make_s3_client"]

_T = TypeVar("_T")
_TRANSIENT_CODES = {
    "500",
    "502",
    "503",
    "504",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def make_s3_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    max_attempts: int = 5,
    retry_mode: str = "standard",
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    max_pool_connections: int = 32,
) -> Any:
    """A boto3 S3 client with Lore's defaults: standard retries, bounded timeouts, room for parallel reads."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": retry_mode, "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store(Store):
    def __init__(
        self,
        bucket: str,
        client: Any = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        expected_bucket_owner: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        outage_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.outage_timeout = outage_timeout
        if not bucket or "/" in bucket:
            raise StoreError(f"invalid bucket name {bucket!r}")
        self.bucket = bucket
        self.client = client if client is not None else make_s3_client(endpoint_url, region)
        self._common: dict[str, str] = {}
        if expected_bucket_owner:
            self._common["ExpectedBucketOwner"] = expected_bucket_owner
        self._write_extra: dict[str, str] = {}
        if sse:
            self._write_extra["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._write_extra["SSEKMSKeyId"] = sse_kms_key_id
        self._options: dict[str, Any] = {
            "expected_bucket_owner": expected_bucket_owner,
            "sse": sse,
            "sse_kms_key_id": sse_kms_key_id,
            "outage_timeout": outage_timeout,
        }

    def for_bucket(self, bucket: str) -> Store:
        if bucket == self.bucket:
            return self
        return S3Store(bucket, self.client, **self._options)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _error(self, exc: Exception, action: str, key: str) -> Exception:
        from botocore.exceptions import ClientError, NoCredentialsError

        where = self.location(key)
        if isinstance(exc, NoCredentialsError):
            return AccessDeniedError(f"no AWS credentials found while {action} {where}")
        if not isinstance(exc, ClientError):
            return StoreError(f"S3 request failed while {action} {where}: {exc}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or code
        if code == "PreconditionFailed" or status == 412:
            return ConditionFailed(key, 412)
        if code == "ConditionalRequestConflict" or (status == 409 and code != "BucketAlreadyExists"):
            return ConditionFailed(key, 409)
        if code == "NoSuchBucket":
            return BucketNotFoundError(f"bucket {self.bucket!r} does not exist (while {action} {where})")
        if code in _DENIED or status == 403:
            owner = self._common.get("ExpectedBucketOwner")
            hint = (
                f" (requests require the bucket owner to be {owner}; is it owned by another account?)" if owner else ""
            )
            return AccessDeniedError(f"access denied while {action} {where}: {message}{hint}")
        return StoreError(f"S3 error {code or status} while {action} {where}: {message}")

    @staticmethod
    def _transient(exc: Exception) -> bool:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return code in _TRANSIENT_CODES or int(status) >= 500
        return isinstance(
            exc,
            (
                ConnectionClosedError,
                ConnectTimeoutError,
                EndpointConnectionError,
                IncompleteReadError,
                ReadTimeoutError,
                ResponseStreamingError,
            ),
        )

    def _call(self, action: str, key: str, request: Callable[[], _T]) -> _T:
        """Run ``request``; when botocore's own retries give up on a transient fault, keep trying
        with backoff until ``outage_timeout`` has passed, then raise one clear error."""
        from botocore.exceptions import BotoCoreError, ClientError

        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return request()
            except (ClientError, BotoCoreError) as exc:
                if not self._transient(exc):
                    raise
                attempt += 1
                waited = time.monotonic() - started
                if waited >= self.outage_timeout:
                    raise StoreUnavailableError(
                        f"S3 kept failing for {waited:.0f} s while {action} {self.location(key)} "
                        f"({attempt} tries; last error: {exc})"
                    ) from exc
                delay = min(2.0, 0.05 * 2**attempt, max(0.0, self.outage_timeout - waited))
                time.sleep(random.uniform(delay / 2, delay))

    def get(self, key: str) -> StoredObject | None:
        from botocore.exceptions import BotoCoreError, ClientError

        def request() -> tuple[bytes, str]:
            self.stats.add("get")
            response = self.client.get_object(Bucket=self.bucket, Key=key, **self._common)
            return response["Body"].read(), str(response["ETag"])

        try:
            data, etag = self._call("reading", key, request)
        except StoreUnavailableError:
            raise
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, "reading", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "reading", key) from exc
        return StoredObject(data, etag)

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        conditions: dict[str, str] = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match

        def request() -> Any:
            self.stats.add("put")
            return self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                **conditions,
                **self._common,
                **self._write_extra,
            )

        try:
            response = self._call("writing", key, request)
        except StoreUnavailableError:
            raise
        except ClientError as exc:
            # IfMatch on an object deleted meanwhile answers 404: the condition did not hold.
            if if_match is not None and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ConditionFailed(key, 412) from exc
            raise self._error(exc, "writing", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "writing", key) from exc
        return str(response["ETag"])

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        def request() -> Any:
            self.stats.add("delete")
            return self.client.delete_object(Bucket=self.bucket, Key=key, **self._common)

        try:
            self._call("deleting", key, request)
        except StoreUnavailableError:
            raise
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "deleting", key) from exc

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ListedObject]:
        from botocore.exceptions import BotoCoreError, ClientError

        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000, **self._common}
            if token:
                params["ContinuationToken"] = token
            elif start_after:
                params["StartAfter"] = start_after

            def request(params: dict[str, Any] = params) -> Any:
                self.stats.add("list")
                return self.client.list_objects_v2(**params)

            try:
                page = self._call("listing", prefix, request)
            except StoreUnavailableError:
                raise
            except (ClientError, BotoCoreError) as exc:
                raise self._error(exc, "listing", prefix) from exc
            for item in page.get("Contents", []):
                yield ListedObject(item["Key"], item.get("LastModified"))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
