"""Account changes into the ledger: every row of `users.sqlite3`'s `changes` table becomes a
security event (`user_created`, `authz_change`, `user_deleted`, `authn_password_change`,
`authn_token_created`, `authn_token_revoked`) stamped with the time of the change.

The dashboard flushes right after each change it makes; the collector's tick flushes what
`apiwatch users` wrote beside it (or while it was stopped). A row is marked recorded only after
its event is durable in the ledger, so a crash in between records it twice rather than never.
"""

from __future__ import annotations

import threading

from anyio import to_thread

from apiwatch.collector.pipeline import Pipeline
from apiwatch.events import Event, make_event
from apiwatch.users import Accounts, Change


def change_event(change: Change) -> Event:
    """The security event of one account change."""
    fields = {"user.name": change.actor, "user.target.name": change.target}
    if change.detail:
        fields["apiwatch.change.detail"] = change.detail
    detail = f" ({change.detail})" if change.detail else ""
    return make_event(
        change.action, fields, timestamp_ns=int(change.at * 1e9),
        message=f"{change.actor}: {change.action} {change.target}{detail}")


class AccountAudit:
    """Copies pending account changes into the ledger; safe to call from any thread."""

    def __init__(self, accounts: Accounts, pipeline: Pipeline) -> None:
        self.accounts = accounts
        self.pipeline = pipeline
        # One flush at a time: two would both read the same pending rows.
        self._lock = threading.Lock()

    def flush_sync(self) -> int:
        """Record every pending change; how many were recorded."""
        done = 0
        with self._lock:
            while changes := self.accounts.pending_changes():
                for change in changes:
                    self.pipeline.record(change_event(change))
                self.accounts.mark_recorded([c.id for c in changes])
                done += len(changes)
        return done

    async def flush(self) -> int:
        """`flush_sync` in a worker thread."""
        return await to_thread.run_sync(self.flush_sync)
