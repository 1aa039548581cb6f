"""Secrets never reach the bucket: values under secret-looking keys, and key=value pairs,
bearer tokens and URL passwords inside strings, are masked before writing."""

from __future__ import annotations

from typing import Any

from lore_core import LoreTracker
from lore_core.redaction import REDACTED, Redactor


def _raw(s3_client: Any, bucket: str, key: str) -> str:
    return str(s3_client.get_object(Bucket=bucket, Key=f".lore-s3/{key}.json")["Body"].read().decode())


def test_secrets_are_masked_in_input_output_metadata_and_errors(
    s3_tracker: LoreTracker, s3_client: Any, bucket: str
) -> None:
    seen: dict[str, Any] = {}

    def handler(ctx: Any) -> dict[str, Any]:
        seen.update(ctx.input)
        return {"session_token": "tok-OUT-123", "rows": 3}

    s3_tracker.run(
        "in/a.csv",
        step="load",
        handler=handler,
        input={"db": {"user": "ann", "Password": "hunter2-IN"}, "API-Key": "k-IN-456", "limit": 5},
        metadata={"authorization": "Bearer abcdefghijklmnop", "note": "conn=postgres://ann:pw-META@db/x"},
    )

    def fails(ctx: Any) -> None:
        raise ConnectionError("login failed for password=pw-ERR-789 with token: tok-ERR-000")

    failed = s3_tracker.run("in/a.csv", step="connect", handler=fails)

    assert seen["API-Key"] == "k-IN-456"  # the handler itself gets the real value
    raw = _raw(s3_client, bucket, "in/a.csv")
    for secret in ["hunter2-IN", "k-IN-456", "tok-OUT-123", "abcdefghijklmnop", "pw-META", "pw-ERR-789", "tok-ERR-000"]:
        assert secret not in raw, secret
    entry = s3_tracker.get_history("in/a.csv").entries[0]  # type: ignore[union-attr]
    assert entry.input == {"db": {"user": "ann", "Password": REDACTED}, "API-Key": REDACTED, "limit": 5}
    assert entry.output == {"session_token": REDACTED, "rows": 3}
    assert failed.error is not None and "password=***" in failed.error.message
    assert failed.error.stack is not None and "pw-ERR-789" not in failed.error.stack
    index = s3_client.list_objects_v2(Bucket=bucket, Prefix=".lore-s3/~lore/failed/")["Contents"]
    body = s3_client.get_object(Bucket=bucket, Key=index[0]["Key"])["Body"].read().decode()
    assert "pw-ERR-789" not in body


def test_secret_keys_are_configurable_and_redaction_can_be_turned_off() -> None:
    custom = LoreTracker.from_url("memory://redact-custom", extra_secret_keys=["ssn"])
    custom.run("p", step="s", handler=lambda ctx: None, input={"SSN": "123-45-6789", "name": "ann"})
    assert custom.get_history("p").entries[0].input == {"SSN": REDACTED, "name": "ann"}  # type: ignore[union-attr]
    plain = LoreTracker.from_url("memory://redact-off", redact=False)
    plain.run("p", step="s", handler=lambda ctx: None, input={"password": "visible"})
    assert plain.get_history("p").entries[0].input == {"password": "visible"}  # type: ignore[union-attr]


def test_redactor_text_patterns() -> None:
    r = Redactor()
    assert r.redact_text("Authorization: Bearer abcdefghijkl") == "Authorization: *** ***"
    assert r.redact_text("s3://user:pass@host/x and https://a:b@c") == "s3://user:***@host/x and https://a:***@c"
    assert r.redact_text('{"client_secret": "zzz", "n": 1}') == '{"client_secret": "***", "n": 1}'
    assert r.redact_text("rows=3 took 2s") == "rows=3 took 2s"


def test_redaction_stays_linear_on_long_pathological_strings() -> None:
    import threading

    texts = ["x" * 2_000_000, "a-" * 1_000_000, "a:" * 1_000_000, "http://" * 300_000, "password" * 250_000]
    done: list[int] = []

    def work() -> None:
        r = Redactor()
        done.extend(len(r.redact_text(t)) for t in texts)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=300)  # liveness bound: a backtracking pattern would take hours here
    assert not worker.is_alive() and len(done) == len(texts)
