"""People: the roster import, staff accounts, API tokens, extensions and display names.

A token is 32 random bytes (URL-safe text); only its SHA-256 is stored, so a stolen database
holds no usable token. Resetting a token revokes the old one at once. Roster files are CSV
with the columns id, name, email, section (a header row; extra columns are ignored).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import BadInput
from grader.safetext import csv_cell, one_line
from grader.server.db import Extension, User
from grader.server.leaderboard import clean_display_name, display_key

TOKEN_PREFIX = "dlg_"
ROSTER_COLUMNS = ("id", "name", "email", "section")
MAX_ROSTER_BYTES = 10 << 20


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def find_by_token(session: Session, token: str) -> User | None:
    """The account holding `token`, or None (a revoked or unknown token)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return session.scalar(select(User).where(User.token_hash == token_hash(token)))


def find_user(session: Session, login: str) -> User:
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise BadInput(f"no account with id {one_line(login)!r}.")
    return user


@dataclass(frozen=True)
class Issued:
    """A token handed out now: who it is for (the only time the token is seen)."""

    login: str
    name: str
    email: str
    section: str
    token: str


def read_roster(path: Path) -> list[dict[str, str]]:
    """The roster's rows, each with id, name, email and section; BadInput naming the line
    of the first problem."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_ROSTER_BYTES + 1)
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from error
    if len(data) > MAX_ROSTER_BYTES:
        raise BadInput(f"{path} is larger than {MAX_ROSTER_BYTES >> 20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(f"{path} is not UTF-8 text.") from error
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "id" not in header:
        raise BadInput(f"{path} needs a header row with the columns {', '.join(ROSTER_COLUMNS)}.")
    reader.fieldnames = header
    rows, seen = [], set()
    for number, raw in enumerate(reader, start=2):
        row = {key: one_line((raw.get(key) or "").strip(), 200) for key in ROSTER_COLUMNS}
        if not row["id"]:
            raise BadInput(f"{path}, line {number}: the id is empty.")
        if row["id"] in seen:
            raise BadInput(f"{path}, line {number}: id {row['id']!r} appears twice.")
        seen.add(row["id"])
        rows.append(row)
    return rows


def import_roster(session: Session, rows: list[dict[str, str]]) -> tuple[list[Issued], int]:
    """Create an account with a new token for each new student; update the name, email and
    section of the others (their tokens stay). Returns the tokens issued and how many were
    updated."""
    issued, updated = [], 0
    for row in rows:
        user = session.scalar(select(User).where(User.login == row["id"]))
        if user is not None:
            user.name, user.email, user.section = row["name"], row["email"], row["section"]
            updated += 1
            continue
        token = new_token()
        session.add(
            User(
                login=row["id"],
                name=row["name"],
                email=row["email"],
                section=row["section"],
                role="student",
                token_hash=token_hash(token),
            )
        )
        issued.append(Issued(row["id"], row["name"], row["email"], row["section"], token))
    session.commit()
    return issued, updated


def add_staff(session: Session, login: str, name: str, email: str) -> Issued:
    """A staff account with a new token (an existing student becomes staff)."""
    user = session.scalar(select(User).where(User.login == login))
    token = new_token()
    if user is None:
        user = User(login=login, name=name, email=email, section="", role="staff")
        session.add(user)
    user.role = "staff"
    user.token_hash = token_hash(token)
    session.commit()
    return Issued(login, user.name, user.email, user.section, token)


def reset_token(session: Session, login: str) -> Issued:
    """Revoke the account's token and issue a new one."""
    user = find_user(session, login)
    token = new_token()
    user.token_hash = token_hash(token)
    session.commit()
    return Issued(user.login, user.name, user.email, user.section, token)


def extend(session: Session, login: str, assignment: str, days: float) -> None:
    """Give the student `days` more for `assignment` (replacing an earlier extension)."""
    if days < 0:
        raise BadInput("--days must not be negative.")
    user = find_user(session, login)
    extension = session.scalar(
        select(Extension).where(Extension.user_id == user.id, Extension.assignment == assignment)
    )
    if extension is None:
        session.add(Extension(user_id=user.id, assignment=assignment, days=days))
    else:
        extension.days = days
    session.commit()


def set_display_name(session: Session, login: str, name: str | None) -> str | None:
    """Set (or, with None or "", clear) what leaderboards show of `login`; it may not be
    anyone else's id, name or display name. Returns the name as stored."""
    user = find_user(session, login)
    others = session.execute(
        select(User.login, User.name, User.display_name).where(User.id != user.id)
    ).all()
    taken = {display_key(value) for row in others for value in row if value}
    user.display_name = clean_display_name(name, taken)
    session.commit()
    return user.display_name


def write_tokens(path: Path, issued: list[Issued]) -> None:
    """Write the tokens for the staff to hand out: CSV, readable by the owner only."""
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")
    writer.writerow(["id", "name", "email", "section", "token"])
    for item in issued:
        writer.writerow(
            [csv_cell(v) for v in (item.login, item.name, item.email, item.section)] + [item.token]
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise BadInput(f"{path} exists; tokens are written only to a new file.") from None
    except OSError as error:
        raise BadInput(f"cannot write {path}: {error.strerror or error}") from error
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
        file.write(lines.getvalue())
        file.flush()
        os.fsync(file.fileno())
