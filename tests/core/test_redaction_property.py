"""Property test (issue 9): random secrets, in every shape Lore promises to mask, embedded in
inputs, outputs, metadata, descriptions, error messages and stack traces, never reach the
bucket — checked on the stored bytes of every object Lore wrote, over S3 (moto over HTTP).

Each secret is made of random letters-and-digits chunks joined by the separators its
shape allows (commas, escaped quotes, ...), so a mask that stops early (``password=abc``
masked, ``,def`` kept) shows up as a chunk found in the bucket."""

from __future__ import annotations

import json
import string
import subprocess
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lore_core import LoreTracker

ALNUM = string.ascii_letters + string.digits

# Words that appear in the templates: a chunk that happens to be part of one is no secret.
VOCABULARY = (
    "authorization proxy-authorization password passwd passphrase apikey api_key connection_string "
    "keyfile_dict webhook_url db_pass dbpass dsn auth sig secret token bearer basic digest negotiate "
    "begin end rsa private key openssh mysql psql command returned non-zero exit status postgres "
    "https acct blob core windows net sv2020 se x-api-key traceback most recent call last file line "
    "runtimeerror valueerror calledprocesserror the above exception was direct cause of following "
    "innocent nested note message failed while loading"
)

chunk = (
    st.text(alphabet=ALNUM, min_size=8, max_size=14)
    .filter(lambda c: any(ch.isdigit() for ch in c) and any(ch.isalpha() for ch in c))
    .filter(lambda c: c.lower() not in VOCABULARY.replace(" ", ""))
)


def joined(separators: str, min_chunks: int = 1) -> st.SearchStrategy[tuple[list[str], str]]:
    """``(chunks, secret)``: 1-3 chunks joined by separators drawn from ``separators``."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[str], str]:
        parts = draw(st.lists(chunk, min_size=min_chunks, max_size=3, unique=True))
        out = parts[0]
        for part in parts[1:]:
            out += draw(st.text(alphabet=separators, min_size=1, max_size=2)) + part
        return parts, out

    return build()


def _pem(label: str) -> Callable[[str], str]:
    return lambda s: f"-----BEGIN {label}PRIVATE KEY-----\n{s}\n-----END {label}PRIVATE KEY-----"


# Each shape: the separators its secret may contain, and how it is written into a string.
SHAPES: dict[str, tuple[str, Callable[[str], str]]] = {
    "pair_bare": (",;)]}", lambda s: f"password={s}"),
    "pair_colon": (",;", lambda s: f"db_pass: {s}"),
    "camel_short": (",", lambda s: f"dbPass={s}"),
    "pair_json": ("\"'\\ ,&=", lambda s: json.dumps({"passphrase": s})),
    "pair_json_in_string": ("\"'\\ ,", lambda s: json.dumps(json.dumps({"connection_string": s}))),
    "pair_repr": ("\"' ,&", lambda s: repr({"auth": s})),
    "pair_quoted": ('"\\ ,', lambda s: "dsn=" + json.dumps(s)),
    "header_token": ("._~+/=-", lambda s: f"Authorization: Token {s}"),
    "header_other": ("._~+/=-", lambda s: f"Proxy-Authorization: Negotiate {s}"),
    "header_custom": ("._~+/=-", lambda s: f"X-Api-Key: {s}"),
    "scheme": (".", lambda s: f"sent Bearer {s} to the server"),
    "cli_space": (",;", lambda s: f"mysql --password {s} -h db"),
    "cli_equals": (",;", lambda s: f"mysql --password={s} -h db"),
    "cli_short": (",;", lambda s: f"psql -p {s} -U ann"),
    "cli_argv": (",;", lambda s: str(subprocess.CalledProcessError(1, ["mysql", "--password", s, "-h", "db"]))),
    "cli_argv_short": (",;", lambda s: str(subprocess.CalledProcessError(1, ["psql", "-p", s]))),
    "pem": ("\n/+=", _pem("RSA ")),
    "pem_openssh": ("\n/+=", _pem("OPENSSH ")),
    "pem_escaped": ("/+=", lambda s: json.dumps(_pem("")(s))),
    "sas": ("+/=", lambda s: f"https://acct.blob.core.windows.net/c/b?sv=2020-08-04&sig={quote(s, safe='')}&se=x"),
    "url_password": ("-._~!$*+,;=%:", lambda s: f"postgres://ann:{s}@db.internal:5432/app"),
}

# Keys whose values are masked wherever they sit in a JSON value.
SECRET_KEYS = [
    "password",
    "DB_PASSWORD",
    "db_pass",
    "dbPass",
    "passphrase",
    "auth",
    "connection_string",
    "connectionString",
    "dsn",
    "keyfile_dict",
    "webhook_url",
    "Authorization",
    "X-Api-Key",
    "private_key",
    "access_token",
    "service_account",
    "proxies",
]

shaped = st.sampled_from(sorted(SHAPES)).flatmap(
    lambda name: joined(SHAPES[name][0], 2 if name == "scheme" else 1).map(
        lambda made, name=name: (made[0], SHAPES[name][1](made[1]))
    )
)
under_key = st.tuples(st.sampled_from(SECRET_KEYS), joined(string.punctuation + " \n\t")).map(
    lambda t: (t[1][0], {t[0]: t[1][1]})
)


def _secret_text(item: tuple[list[str], str]) -> str:
    return f"failed while loading: {item[1]} (see above)"


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    texts = draw(st.lists(shaped, min_size=8, max_size=8))
    keyed = draw(st.lists(under_key, min_size=3, max_size=3))
    secrets = [c for chunks, _ in [*texts, *keyed] for c in chunks]
    return {
        "secrets": secrets,
        "input": {"innocent": _secret_text(texts[0]), "nested": [{"note": _secret_text(texts[1])}], **keyed[0][1]},
        "output": {"message": _secret_text(texts[2]), **keyed[1][1]},
        "metadata": {"note": _secret_text(texts[3]), "deep": {"list": [keyed[2][1]]}},
        "description": _secret_text(texts[4]),
        "error": _secret_text(texts[5]),
        "cause": _secret_text(texts[6]),
        "recorded_error": _secret_text(texts[7]),
    }


def _stored_text(s3_client: Any, bucket: str, prefix: str) -> str:
    """Every object under ``prefix``, as text (the bytes Lore stored)."""
    parts = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            parts.append(obj["Key"] + "\n" + body.decode("utf-8", "replace"))
    return "\n".join(parts)


def test_random_secrets_never_reach_the_bucket(s3_client: Any, bucket: str) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=scenario())
    def check(case: dict[str, Any]) -> None:
        # A prefix of its own per example: everything Lore wrote for it is under it.
        prefix = f"lore-{uuid.uuid4().hex[:12]}"
        tracker = LoreTracker(bucket=bucket, prefix=prefix, s3_client=s3_client, verify_conditional_writes=False)
        key = "in/data.csv"

        def ok(ctx: Any) -> Any:
            return case["output"]

        def load(cause: str, message: str) -> None:
            try:
                raise ValueError(cause)
            except ValueError as exc:
                raise RuntimeError(message) from exc

        def broken(ctx: Any) -> None:
            load(case["cause"], case["error"])

        tracker.run(
            key,
            step="load",
            handler=ok,
            input=case["input"],
            metadata=case["metadata"],
            description=case["description"],
            produces=[f"{key}.out"],
        )
        failed = tracker.run(key, step="parse", handler=broken, input=case["input"], metadata=case["metadata"])
        assert failed.error is not None and failed.error.stack  # the stack trace is stored too
        tracker.record(key, step="check", status="failed", error=case["recorded_error"], metadata=case["metadata"])
        with tracker.track(key, step="tracked", input=case["input"]) as ctx:
            ctx.output = case["output"]
            ctx.metadata.update(case["metadata"])

        stored = _stored_text(s3_client, bucket, prefix + "/")
        leaked = [s for s in case["secrets"] if s in stored]
        assert not leaked, f"leaked {leaked} from {case}"

    check()
