"""The service's tables, its database engine and the migrations that create and upgrade them.

The same schema runs on SQLite (the default: `DATA/grader.db`, in WAL mode so readers never
wait for the grading thread's writes) and on PostgreSQL (`--db postgresql://...`). The schema
is created and upgraded only by the Alembic migrations in `grader/server/migrations`, so an
upgrade of the grader keeps every submission.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from grader.errors import BadInput

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def now() -> datetime.datetime:
    """The current time in UTC (every time the service stores is UTC)."""
    return datetime.datetime.now(datetime.UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and read back aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.astimezone(datetime.UTC) if value is not None else None

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value


class Base(DeclarativeBase):
    pass


class User(Base):
    """A student (from the roster) or a member of staff; `token_hash` is the SHA-256 of their
    API token (the token itself is never stored); `display_name` is what leaderboards show
    of them, set by themselves (none: "anonymous")."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    section: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20), default="student")
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=now)


class Extension(Base):
    """Extra days a student has for one assignment (`grade admin extend`)."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("user_id", "assignment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assignment: Mapped[str] = mapped_column(String(100))
    days: Mapped[float] = mapped_column(Float)


class Submission(Base):
    """One upload. `status`: queued, running, graded, rejected, error, timeout or crashed;
    its files are in DATA/submissions/<folder>/, written before the row is committed.
    While it runs, `running_check` names the check in progress (`running_hidden`: whether
    that check is hidden, so a student sees its name only as the policy allows) and
    `claimed_by` the dispatcher grading it (`grader.server.claims`)."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    assignment: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=now)
    sha256: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    running_check: Mapped[str | None] = mapped_column(String(200), nullable=True)
    running_hidden: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    claimed_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Result(Base):
    """A grade of one submission under one grade fingerprint (checks, grader, options):
    written once, so a retried or resumed grade never leaves two conflicting results."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("submission_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    max_score: Mapped[float] = mapped_column(Float, default=0.0)
    report: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=now)


def database_url(db: str | None, data: Path) -> str:
    """The SQLAlchemy URL for `--db` (PostgreSQL through psycopg 3), default SQLite in `data`."""
    if not db:
        return f"sqlite:///{data / 'grader.db'}"
    for prefix in ("postgresql://", "postgres://"):
        if db.startswith(prefix):
            return "postgresql+psycopg://" + db[len(prefix) :]
    if db.startswith(("sqlite:///", "postgresql+psycopg://")):
        return db
    raise BadInput(f"--db must be a postgresql://... or sqlite:///... URL, not {db!r}.")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys. The pool holds
    a connection for each of the web server's worker threads and the grading threads."""
    pool = {"pool_size": 20, "max_overflow": 40, "pool_timeout": 60}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )

        @event.listens_for(engine, "connect")
        def _pragmas(connection, record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
