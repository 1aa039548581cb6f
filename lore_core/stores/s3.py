"""``s3://bucket/prefix``: histories in an S3 bucket (AWS, Ceph RGW, MinIO, R2, a local S3 server).

Credentials come from boto3's standard chain unless a client is handed in.
Conditional writes use ``IfNoneMatch='*'`` / ``IfMatch=<etag>``; 412 and 409
become ``ConditionFailed`` so the tracker can re-read and retry.

Three things S3-compatible servers do differently, handled here:

- ``If-Match`` with the ETag as S3 returns it, in quotes (RFC 9110; what AWS takes):
  Ceph RGW (and reportedly DigitalOcean Spaces) compares the header byte for byte with
  its unquoted ETag and answers 412 to every update. On a 412 while the form in use is
  not yet known, the object's current ETag is read with a HEAD: if it is still ours, the
  write is retried once unquoted, and the form the server accepted is remembered per
  endpoint, so the price is paid once per process.
- Checksums: botocore >= 1.36 sends ``PutObject`` over HTTPS as ``aws-chunked`` with a
  trailing CRC32, which RGW 16 refuses with ``411 MissingContentLength``. Clients that
  :func:`make_s3_client` builds send checksums only when an operation requires them.
- Configuration errors (bad SSE/KMS settings, headers a server does not implement,
  refused uploads) are raised at once with what to change, never retried as an outage.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import AccessDeniedError, BucketNotFoundError, StoreError, StoreUnavailableError
from .base import ConditionFailed, ListedObject, Store, StoredObject

__all__ = ["S3Store", "make_s3_client"]

log = logging.getLogger("lore")
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
# 4xx answers that no retry can fix: the request (or the client building it) is wrong.
_CONFIG_CODES = {
    "InvalidArgument",
    "InvalidRequest",
    "InvalidEncryptionAlgorithmError",
    "MissingContentLength",
    "NotImplemented",
    "InvalidDigest",
    "BadDigest",
    "XAmzContentSHA256Mismatch",
    "InvalidStorageClass",
}
_KMS_OR_SSE = re.compile(r"kms|encrypt|\bsse\b|server[- ]side", re.IGNORECASE)
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
    request_checksum_calculation: str | None = None,
    response_checksum_validation: str | None = None,
    verify: bool | str | None = None,
    profile: str | None = None,
) -> Any:
    """A boto3 S3 client with Lore's defaults: standard retries, bounded timeouts, room for
    parallel reads, and checksums only where an operation requires them.

    ``request_checksum_calculation`` / ``response_checksum_validation`` default to
    ``"when_required"`` unless set here, in ``AWS_REQUEST_CHECKSUM_CALCULATION`` /
    ``AWS_RESPONSE_CHECKSUM_VALIDATION``, or in the AWS config profile: botocore's own
    default (``"when_supported"``) uploads over HTTPS as ``aws-chunked`` with a trailing
    checksum, which several S3-compatible servers (Ceph RGW 16, older MinIO) refuse. S3
    verifies every upload's Content-MD5/SigV4 payload hash either way. ``verify`` is
    boto3's: False, or the path of a CA bundle for an endpoint with a private certificate.
    ``profile`` names a profile of the AWS config files (boto3's ``Session(profile_name=...)``).
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session(profile=profile) if profile else botocore.session.get_session()
    checksums: dict[str, str] = {}
    for option, given in (
        ("request_checksum_calculation", request_checksum_calculation),
        ("response_checksum_validation", response_checksum_validation),
    ):
        chosen = given or _user_setting(core, option)
        checksums[option] = chosen or "when_required"
    config = Config(
        retries={"mode": retry_mode, "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        **checksums,
    )
    return boto3.session.Session(botocore_session=core).client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config, verify=verify
    )


def _user_setting(core: Any, option: str) -> str | None:
    """``option`` as the user set it in the environment or the AWS config profile, else None."""
    value = os.environ.get(f"AWS_{option.upper()}")
    if value:
        return value
    try:
        scoped = core.get_scoped_config()
    except Exception:  # a missing profile is boto3's error to report, when the client is used
        return None
    found = scoped.get(option) if isinstance(scoped, dict) else None
    return str(found) if found else None


def _unquoted(etag: str) -> str:
    return etag[1:-1] if len(etag) >= 2 and etag[0] == etag[-1] == '"' else etag


class _EtagForms:
    """Per endpoint, the form of ``If-Match`` the server has accepted: ``"quoted"`` (AWS, moto,
    MinIO, R2) or ``"unquoted"`` (Ceph RGW). Absent until a conditional update succeeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: dict[str, str] = {}

    def get(self, endpoint: str) -> str | None:
        with self._lock:
            return self._forms.get(endpoint)

    def learn(self, endpoint: str, form: str) -> None:
        with self._lock:
            self._forms.setdefault(endpoint, form)  # the first form the server accepted stays

    def forget(self) -> None:
        with self._lock:
            self._forms.clear()


_etag_forms = _EtagForms()
_warned_sse: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


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
        retry_refused_connections: bool = True,
    ) -> None:
        super().__init__()
        self.outage_timeout = outage_timeout
        # False for one-shot commands (the CLI): a refused connection means a wrong endpoint, not an outage.
        self.retry_refused_connections = retry_refused_connections
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
            "retry_refused_connections": retry_refused_connections,
        }

    def for_bucket(self, bucket: str) -> Store:
        if bucket == self.bucket:
            return self
        return S3Store(bucket, self.client, **self._options)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", "") or "the default endpoint")

    def _error(self, exc: Exception, action: str, key: str) -> Exception:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        where = self.location(key)
        if isinstance(exc, NoCredentialsError):
            return AccessDeniedError(f"no AWS credentials found while {action} {where}")
        if isinstance(exc, EndpointConnectionError):
            return StoreError(f"cannot connect to the S3 endpoint {self._endpoint()} while {action} {where}: {exc}")
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
        advice = self._configuration_problem(exc)
        if advice is not None:
            return StoreError(
                f"S3 refused {action} {where} with {code or status}: {message}. "
                f"This is a configuration problem, not an outage, so Lore did not retry: {advice}"
            )
        if code in _DENIED or status == 403:
            owner = self._common.get("ExpectedBucketOwner")
            hint = (
                f" (requests require the bucket owner to be {owner}; is it owned by another account?)" if owner else ""
            )
            return AccessDeniedError(f"access denied while {action} {where}: {message}{hint}")
        return StoreError(f"S3 error {code or status} while {action} {where}: {message}")

    def _settings(self) -> str:
        """The write settings in force, as a user would set them."""
        shown = [f"{name}={self._options[name]!r}" for name in ("sse", "sse_kms_key_id") if self._options[name]]
        return ", ".join(shown) or "no sse/sse_kms_key_id"

    def _configuration_problem(self, exc: Exception) -> str | None:
        """What to change, when ``exc`` is an answer that no retry can fix; None otherwise.

        4xx answers about the request itself (bad SSE/KMS settings, a header the server does
        not implement, an upload it cannot take) and 5xx answers that say they are about
        KMS/SSE. A 500 InternalError that says nothing of the sort stays transient.
        """
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return None
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status in (404, 409, 412) or "throttl" in f"{code} {message}".lower():
            return None  # conditions, missing objects and throttling (KMS's included) are not settings
        if code in ("SlowDown", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"):
            return None
        about_encryption = bool(_KMS_OR_SSE.search(f"{code} {message}")) or code.startswith("KMS")
        if code == "MissingContentLength" or status == 411:
            return (
                "the server needs a Content-Length and does not take botocore's aws-chunked uploads with a "
                "trailing checksum (its default over HTTPS since botocore 1.36). Clients built by Lore avoid "
                "them; for a client you built, pass botocore.config.Config(request_checksum_calculation="
                "'when_required') or set AWS_REQUEST_CHECKSUM_CALCULATION=when_required"
            )
        if code == "NotImplemented" or status == 501:
            sent = ["If-None-Match/If-Match (conditional writes)"]
            if self._write_extra:
                sent.append(f"server-side encryption ({self._settings()})")
            if self._common:
                sent.append("x-amz-expected-bucket-owner (expected_bucket_owner)")
            return (
                f"the server does not implement something this request uses; Lore sent {', '.join(sent)}. "
                "Drop the setting the server does not support, or use a server that implements it"
            )
        if about_encryption and code != "AccessDenied":  # AccessDenied to a key is an access problem
            return (
                f"check the store's server-side encryption settings ({self._settings()}): sse must be "
                "'AES256' or 'aws:kms', and with 'aws:kms' some servers (Ceph RGW) need sse_kms_key_id, "
                "which must name a key the server's KMS knows"
            )
        if code in _CONFIG_CODES:
            return f"check the store's settings ({self._settings()}) and the S3 client's configuration"
        return None

    def _transient(self, exc: Exception) -> bool:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        if type(exc) is EndpointConnectionError and not self.retry_refused_connections:
            return False  # refused (a timeout is a subclass, and stays transient)
        if isinstance(exc, ClientError):
            if self._configuration_problem(exc) is not None:
                return False
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
        next_report = 0.0
        while True:
            try:
                return request()
            except (ClientError, BotoCoreError) as exc:
                if not self._transient(exc):
                    raise
                attempt += 1
                waited = time.monotonic() - started
                if waited >= self.outage_timeout:
                    hint = ""
                    if action == "writing" and self._write_extra:
                        hint = (
                            f"; writes carry server-side encryption ({self._settings()}): if reads work but "
                            "writes keep failing, the server may not support these settings"
                        )
                    raise StoreUnavailableError(
                        f"S3 kept failing for {waited:.0f} s while {action} {self.location(key)} "
                        f"({attempt} tries; last error: {exc}){hint}"
                    ) from exc
                if attempt == 1 or waited >= next_report:
                    # Said on stderr by the CLI: a wait of up to outage_timeout must not look like a hang.
                    log.warning(
                        "S3 at %s failed while %s %s (%s); retrying for up to %.0f s more (outage_timeout %.0f s)",
                        self._endpoint(),
                        action,
                        self.location(key),
                        exc,
                        self.outage_timeout - waited,
                        self.outage_timeout,
                    )
                    next_report = waited + 10.0
                delay = min(2.0, 0.05 * 2**attempt, max(0.0, self.outage_timeout - waited))
                time.sleep(random.uniform(delay / 2, delay))

    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject | None:
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfNoneMatch": if_none_match} if if_none_match is not None else {}

        def request() -> tuple[bytes, str]:
            self.stats.add("get")
            response = self.client.get_object(Bucket=self.bucket, Key=key, **condition, **self._common)
            return response["Body"].read(), str(response["ETag"])

        try:
            data, etag = self._call("reading", key, request)
        except StoreUnavailableError:
            raise
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if if_none_match is not None and (status == 304 or code in ("304", "NotModified")):
                return StoredObject(b"", if_none_match, not_modified=True)
            if code in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, "reading", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "reading", key) from exc
        return StoredObject(data, etag)

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        if if_match is None:
            return self._put(key, data, None, if_none_match)
        endpoint = str(getattr(self.client.meta, "endpoint_url", "") or "")
        form = _etag_forms.get(endpoint)
        sent = _unquoted(if_match) if form == "unquoted" else if_match
        try:
            etag = self._put(key, data, sent, if_none_match)
        except ConditionFailed as failed:
            if failed.status != 412 or form is not None or sent == _unquoted(if_match):
                raise
            # 412 although nobody may have written: some servers (Ceph RGW) compare If-Match
            # with their unquoted ETag byte for byte. If the object still has our ETag, retry
            # once unquoted; the CAS stays atomic on the server either way.
            current = self._head_etag(key)
            if current is None or _unquoted(current) != _unquoted(if_match):
                raise  # a real conflict: the tracker re-reads and re-applies
            etag = self._put(key, data, _unquoted(if_match), if_none_match)
            _etag_forms.learn(endpoint, "unquoted")
            return etag
        if form is None and sent != _unquoted(if_match):
            _etag_forms.learn(endpoint, "quoted")
        return etag

    def _put(self, key: str, data: bytes, if_match: str | None, if_none_match: bool) -> str:
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
        requested = self._write_extra.get("ServerSideEncryption")
        if requested and not response.get("ServerSideEncryption"):
            self._warn_unencrypted(requested, key)
        return str(response["ETag"])

    def _warn_unencrypted(self, requested: str, key: str) -> None:
        """Once per endpoint and setting: the server took ``sse`` without confirming it (Ceph RGW
        ignores ``AES256`` unless SSE-S3 is configured), so objects may be stored unencrypted."""
        endpoint = str(getattr(self.client.meta, "endpoint_url", "") or "")
        with _warned_lock:
            if (endpoint, requested) in _warned_sse:
                return
            _warned_sse.add((endpoint, requested))
        log.warning(
            "S3 at %s accepted sse=%r for %s but did not confirm server-side encryption in its answer: "
            "objects may be stored unencrypted (Ceph RGW ignores AES256 unless SSE-S3 is set up; "
            "use sse='aws:kms' with sse_kms_key_id there)",
            endpoint or "the default endpoint",
            requested,
            self.location(key),
        )

    def _head_etag(self, key: str) -> str | None:
        """The object's current ETag, or None when it is gone (or the HEAD was refused)."""
        from botocore.exceptions import BotoCoreError, ClientError

        def request() -> Any:
            self.stats.add("head")
            return self.client.head_object(Bucket=self.bucket, Key=key, **self._common)

        try:
            return str(self._call("reading", key, request)["ETag"])
        except (ClientError, BotoCoreError):
            return None

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
                yield ListedObject(item["Key"], item.get("LastModified"), item.get("ETag"))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
