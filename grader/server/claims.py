"""Who grades what, when several servers share one database.

A dispatcher claims queued submissions by setting them `running` under its owner id
(`claimed_by`). On PostgreSQL the claim is `SELECT ... FOR UPDATE SKIP LOCKED`, so the
dispatchers of several servers take work from one queue without two ever taking the same
row, and each dispatcher holds a session-level advisory lock on its owner id for as long as
it runs. A running claim whose owner's lock can be taken belongs to a server that died
(PostgreSQL drops the lock with the dead server's connection), so it is queued again, at
start and every `SWEEP_S` while serving; a live server's claims are never touched.

SQLite has one writer, so it serves one server (several servers need PostgreSQL): its
claims are serialized by the database's write lock, and at start everything left running
is queued again.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.orm import Session

from grader.server.db import Submission

LOCK_CLASS = 0x646C67  # the first key of the grader's two-key advisory locks ("dlg")
SWEEP_S = 10.0


def _requeue(connection: Connection | Session, *where: Any) -> int:
    result = connection.execute(
        update(Submission)
        .where(Submission.status == "running", *where)
        .values(status="queued", running_check=None, running_hidden=None, claimed_by=None)
    )
    return result.rowcount or 0


class Claims:
    """One dispatcher's claims on the queue (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"
        self.owner = secrets.randbelow(2**31 - 2) + 1
        self._holder: Connection | None = None

    def hold(self) -> None:
        """Take this dispatcher's advisory lock (PostgreSQL): its claims are live while held."""
        if self.shared and self._holder is None:
            self._holder = self.engine.connect()
            self._holder.execute(text("SELECT pg_advisory_lock(:c, :o)"), self._key(self.owner))
            self._holder.commit()

    def release(self) -> None:
        if self._holder is not None:
            self._holder.execute(text("SELECT pg_advisory_unlock(:c, :o)"), self._key(self.owner))
            self._holder.close()
            self._holder = None

    @staticmethod
    def _key(owner: int) -> dict[str, int]:
        return {"c": LOCK_CLASS, "o": owner}

    def claim(self, assignment: str, count: int) -> list[tuple[int, str]]:
        """Up to `count` queued submissions of `assignment`, oldest first, now `running`
        under this owner: (id, folder) of each."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(Submission)
                .where(Submission.assignment == assignment, Submission.status == "queued")
                .order_by(Submission.id)
                .limit(count)
                .with_for_update(skip_locked=True)  # SQLite: nothing (its writer lock)
            ).all()
            for row in rows:
                row.status = "running"
                row.attempts += 1
                row.running_check = row.running_hidden = None
                row.claimed_by = self.owner
            claimed = [(row.id, row.folder) for row in rows]
            session.commit()
        return claimed

    def requeue_own(self, assignment: str) -> int:
        """Queue again this owner's running claims of `assignment` (its grading stopped)."""
        with Session(self.engine) as session:
            count = _requeue(
                session, Submission.assignment == assignment, Submission.claimed_by == self.owner
            )
            session.commit()
        return count

    def requeue_orphans(self) -> int:
        """Queue again what servers that died were grading; how many there were. SQLite:
        everything running (its one server is starting). PostgreSQL: the running claims whose
        owner holds no lock."""
        if not self.shared:
            with Session(self.engine) as session:
                count = _requeue(session)
                session.commit()
            return count
        count = 0
        with self.engine.connect() as connection:
            owners = connection.scalars(
                select(Submission.claimed_by).where(Submission.status == "running").distinct()
            ).all()
            connection.commit()
            for owner in owners:
                if owner == self.owner:
                    continue
                if owner is None:  # claimed before claims had owners
                    count += _requeue(connection, Submission.claimed_by.is_(None))
                    connection.commit()
                    continue
                key = self._key(owner)
                if connection.scalar(text("SELECT pg_try_advisory_lock(:c, :o)"), key):
                    count += _requeue(connection, Submission.claimed_by == owner)
                    connection.commit()
                    connection.execute(text("SELECT pg_advisory_unlock(:c, :o)"), key)
                    connection.commit()
        return count
