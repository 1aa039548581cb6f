"""Claims: create-only objects that let exactly one worker run a piece of work.

Promises: of several workers claiming the same work (a replay of one failed entry,
or a ``skip_if_succeeded`` run of one step on one file) at the same time, exactly
one wins; the others learn the winner's entry id. A claim has a lease: one left by a
dead worker can be taken over once it expires (with ``If-Match``, so two takers
cannot both win). The winner renews it with the heartbeat and deletes it when its
entry finishes. It does not check whether the work is still needed: the caller
re-reads the history after winning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from . import keys
from .ids import format_timestamp, utc_now
from .leases import lease_expiry
from .stores import ConditionFailed, Store

__all__ = ["Claim", "Claims"]


@dataclass
class Claim:
    key: str
    entry_id: str
    etag: str


class Claims:
    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def _body(self, entry_id: str, lease_seconds: float) -> bytes:
        now = utc_now()
        body = {
            "entryId": entry_id,
            "claimedAt": format_timestamp(now),
            "expiresAt": format_timestamp(lease_expiry(lease_seconds, now)),
        }
        return json.dumps(body).encode()

    def acquire(
        self, file_key: str, kind: str, name: str, entry_id: str, lease_seconds: float
    ) -> tuple[Claim | None, str | None]:
        """``(claim, None)`` when this worker won, ``(None, winner_entry_id)`` when another holds it."""
        key = keys.claim_key(self.prefix, file_key, kind, name)
        for _ in range(10):
            try:
                etag = self.store.put(key, self._body(entry_id, lease_seconds), if_none_match=True)
                return Claim(key, entry_id, etag), None
            except ConditionFailed:
                pass
            found = self.store.get(key)
            if found is None:
                continue  # released meanwhile: try to create it again
            try:
                held = json.loads(found.data)
                holder = str(held["entryId"])
                expires = datetime.fromisoformat(str(held["expiresAt"]).replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError):
                holder, expires = "", utc_now()  # unreadable: treat as expired
            if holder == entry_id:
                return Claim(key, entry_id, found.etag), None  # our own write, retried and answered 412
            if expires > utc_now():
                return None, holder
            try:
                etag = self.store.put(key, self._body(entry_id, lease_seconds), if_match=found.etag)
                return Claim(key, entry_id, etag), None
            except ConditionFailed:
                continue  # someone else took it over first: look again
        return None, None

    def renew(self, claim: Claim, lease_seconds: float) -> bool:
        """Extend the claim; False when it was taken over (our lease had run out)."""
        try:
            claim.etag = self.store.put(claim.key, self._body(claim.entry_id, lease_seconds), if_match=claim.etag)
            return True
        except ConditionFailed:
            return False

    def release(self, claim: Claim) -> None:
        """Delete the claim if it is still ours (after a takeover it belongs to someone else)."""
        found = self.store.get(claim.key)
        if found is None:
            return
        try:
            holder = json.loads(found.data).get("entryId")
        except (ValueError, AttributeError):
            holder = None
        if holder == claim.entry_id:
            self.store.delete(claim.key)
