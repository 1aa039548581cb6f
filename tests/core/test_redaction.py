"""Secrets never reach the bucket: values under secret-looking keys, and key=value pairs,
bearer tokens and URL passwords inside strings, are masked before writing."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

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
    assert r.redact_text("Authorization: Bearer abcdefghijkl") == "Authorization: ***"
    assert r.redact_text("s3://user:pass@host/x and https://a:b@c") == "s3://user:***@host/x and https://a:***@c"
    assert r.redact_text('{"client_secret": "zzz", "n": 1}') == '{"client_secret": "***", "n": 1}'
    assert r.redact_text("rows=3 took 2s") == "rows=3 took 2s"


def test_redaction_stays_linear_on_long_pathological_strings() -> None:
    import threading

    texts = [
        "x" * 2_000_000,
        "a-" * 1_000_000,
        "a:" * 1_000_000,
        "http://" * 300_000,
        "password" * 250_000,
        "\\" * 2_000_000,
        '"' * 1_000_000,
        'password="' * 200_000,
        "password=a," * 180_000,
        "--password " * 180_000,
        "Authorization: " * 130_000,
        "Token " * 300_000,
        "-p " * 600_000,
        "&sig=" * 400_000,
        "-----BEGIN PRIVATE KEY-----" * 70_000,
    ]
    done: list[int] = []

    def work() -> None:
        r = Redactor()
        done.extend(len(r.redact_text(t)) for t in texts)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=300)  # liveness bound: a backtracking pattern would take hours here
    assert not worker.is_alive() and len(done) == len(texts)


# Issue 9: each shape below was stored unmasked; the marker after it must never survive.
ISSUE_9_TEXTS = {
    "authorization_token_scheme": "Authorization: Token tok-LEAK-1a2b3c",
    "authorization_other_scheme": "Proxy-Authorization: Negotiate YIIneg-LEAK-9z8y",
    "calledprocesserror_long_flag": str(
        subprocess.CalledProcessError(1, ["mysql", "--password", "hunter2-LEAK", "-h", "db"])
    ),
    "calledprocesserror_short_flag": str(subprocess.CalledProcessError(1, ["psql", "-p", "pw-LEAK-77", "-U", "ann"])),
    "shell_long_flag": "mysql --password hunter2-LEAK -h db",
    "shell_flag_equals": "mysql --password=hunter2-LEAK -h db",
    "shell_short_flag": "psql -p pw-LEAK-77 -U ann",
    "comma_value": "login failed: password=abc,def-LEAK",
    "escaped_quote": 'login failed: password="ab\\"cd-LEAK" for ann',
    "escaped_quote_json_in_string": json.dumps(json.dumps({"password": 'ab"cd-LEAK'})),
    "pem_block": "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB-LEAK\nAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
    "pem_block_truncated": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC-LEAK",
    "azure_sas_sig": "GET https://acct.blob.core.windows.net/c/b?sv=2020-08-04&sp=r&sig=Zx9%2BLEAK%3D&se=2030",
    "db_pass_pair": "connect(db_pass=pw-LEAK-db)",
    "auth_pair": "auth=tok-LEAK-auth",
    "dsn_pair": "dsn: host-LEAK-dsn",
}


@pytest.mark.parametrize("name", sorted(ISSUE_9_TEXTS))
def test_issue_9_shapes_are_masked_in_strings(name: str) -> None:
    masked = Redactor().redact_text(ISSUE_9_TEXTS[name])
    assert "LEAK" not in masked, masked
    assert REDACTED in masked


def test_issue_9_shapes_keep_their_context() -> None:
    r = Redactor()
    assert r.redact_text("Authorization: Token abc123") == "Authorization: ***"
    assert r.redact_text("mysql --password hunter2 -h db") == "mysql --password *** -h db"
    assert r.redact_text("password=abc,def, user=ann") == "password=***, user=ann"
    assert r.redact_text('password="ab\\"cd" user=x') == 'password="***" user=x'
    assert r.redact_text("?sv=1&sig=abc%2B&se=2") == "?sv=1&sig=***&se=2"
    assert (
        r.redact_text(str(subprocess.CalledProcessError(1, ["mysql", "--password", "hunter2"])))
        == "Command '['mysql', '--password', '***']' returned non-zero exit status 1."
    )
    # Whole words only for short names: nothing here is a secret.
    assert r.redact_text("passenger=3 author=ann design=x rows=3") == "passenger=3 author=ann design=x rows=3"


ISSUE_9_KEYS = ["db_pass", "dbPass", "passphrase", "auth", "connection_string", "dsn", "keyfile_dict", "webhook_url"]
# Airflow 3.3's DEFAULT_SENSITIVE_FIELDS (tests/airflow/test_secrets.py checks this list against Airflow's own).
AIRFLOW_SENSITIVE_FIELDS = [
    "access_key", "access_token", "api_key", "apikey", "auth_header", "authorization", "bearer",
    "connection_string", "dsn", "passphrase", "passwd", "password", "private_key", "proxy", "proxy_password",
    "proxies", "secret", "service_account", "service_key", "token", "keyfile_dict", "webhook_url",
]  # fmt: skip


@pytest.mark.parametrize("key", sorted(set(ISSUE_9_KEYS + AIRFLOW_SENSITIVE_FIELDS)))
def test_issue_9_secret_keys_are_masked(key: str) -> None:
    assert Redactor().redact({key: "v-LEAK", "rows": 3}) == {key: REDACTED, "rows": 3}


@pytest.mark.parametrize("key", ["passenger", "author", "file_key", "fileKey", "step", "design", "signal", "rows"])
def test_short_secret_words_are_whole_words_only(key: str) -> None:
    assert Redactor().redact({key: "kept"}) == {key: "kept"}


def test_issue_9_shapes_never_reach_the_bucket(s3_tracker: LoreTracker, s3_client: Any, bucket: str) -> None:
    def fails(ctx: Any) -> None:
        raise subprocess.CalledProcessError(1, ["mysql", "--password", "hunter2-LEAK", "-h", "db"])

    s3_tracker.run(
        "in/b.csv",
        step="load",
        handler=lambda ctx: {"note": ISSUE_9_TEXTS["pem_block"]},
        input={k: "v-LEAK" for k in ISSUE_9_KEYS} | {"texts": list(ISSUE_9_TEXTS.values())},
        metadata={"env": [{"name": "DB_PASSWORD", "value": "env-LEAK"}]},
    )
    s3_tracker.run("in/b.csv", step="connect", handler=fails)
    raw = _raw(s3_client, bucket, "in/b.csv")
    assert "LEAK" not in raw
    failure = s3_tracker.get_history("in/b.csv").entries[-1].error  # type: ignore[union-attr]
    assert failure is not None and "'--password', '***'" in failure.message


def test_extra_maskers_run_first_and_mask_values_under_innocent_keys() -> None:
    known = "plain-looking-value"

    def masker(value: Any) -> Any:  # what an orchestrator's secrets masker does with values it knows
        if isinstance(value, str):
            return value.replace(known, REDACTED)
        if isinstance(value, dict):
            return {k: masker(v) for k, v in value.items()}
        if isinstance(value, list):
            return [masker(v) for v in value]
        return value

    tracker = LoreTracker.from_url("memory://extra-maskers", extra_maskers=[masker])
    tracker.run(
        "p",
        step="s",
        handler=lambda ctx: {"result": f"used {known}"},
        input={"target": known, "password": "x"},
        description=f"with {known}",
    )
    failed = tracker.run("p", step="t", handler=lambda ctx: (_ for _ in ()).throw(ValueError(f"bad {known}")))
    entry = tracker.get_history("p").entries[0]  # type: ignore[union-attr]
    assert entry.input == {"target": REDACTED, "password": REDACTED}
    assert entry.output == {"result": f"used {REDACTED}"}
    assert entry.description == f"with {REDACTED}"
    assert failed.error is not None and known not in failed.error.message and known not in (failed.error.stack or "")
    # redact=False turns Lore's own masking off, never the orchestrator's.
    only = LoreTracker.from_url("memory://extra-maskers-only", redact=False, extra_maskers=[masker])
    only.run("p", step="s", handler=lambda ctx: None, input={"target": known, "password": "x"})
    assert only.get_history("p").entries[0].input == {"target": REDACTED, "password": "x"}  # type: ignore[union-attr]


def test_orchestrator_links_lose_their_credentials() -> None:
    tracker = LoreTracker.from_url("memory://orchestrator-url")
    entry = tracker.record("p", "s", orchestrator={"system": "dagster", "url": "https://ann:pw-LEAK@dagster/runs/1"})
    assert entry.orchestrator is not None and entry.orchestrator.url == "https://ann:***@dagster/runs/1"
