"""Where the engine's durable state lives between steps: a :class:`Store`, and the embedded
default, :class:`SqliteStore`, on the standard library's ``sqlite3``.

The runner saves ``engine.to_json()`` after every ``handle`` and only then performs what it
returned, so a crash at any point restarts from a state the engine knows how to resume. The
store's part of that contract is that ``save`` is one transaction: when it returns, the
whole step is durable, and a crash before it returns leaves the previous step whole. The
interface is three calls on the engine's JSON text, so a PostgreSQL store (one row, one
transaction) could follow without the runner noticing.

A state file is never silently reset: forgetting it would forget which awards are
uncertain and which addresses a student had. Anything that is not a readable credsync state
of this version raises :class:`sync_core.StateError` naming the file and what is wrong, and
the file is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Protocol

from sync_core import state as engine_state
from sync_core.state import StateError

SCHEMA_VERSION = 1
"""Kept in ``PRAGMA user_version``; a file with any other version is refused, not guessed."""

_SCHEMA = """
CREATE TABLE engine (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE outbox (
    course_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    badge_class TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (course_id, user_id, badge_class)
);
"""
_TABLES = ("engine", "outbox")


class Store(Protocol):
    """Durable engine state: the last saved ``to_json()`` text, or ``None`` before the
    first save. ``save`` is atomic and durable when it returns."""

    def load(self) -> str | None: ...

    def save(self, engine_json: str) -> None: ...

    def close(self) -> None: ...


class SqliteStore:
    """The engine's state in one SQLite file, one transaction per engine step.

    ``journal_mode=WAL`` makes a step one append to the write-ahead log (no rewrite of the
    database, readers never block the writer), so an operator can query the file while the
    sync runs. ``synchronous=FULL`` fsyncs that log at every commit: the runner performs a
    step's commands as soon as ``save`` returns, and under WAL's ``NORMAL`` the last commits
    can vanish on a power loss, so the engine would restart from a state older than the
    commands it had already performed (an award it issued, not even marked uncertain).

    The engine JSON is the only thing ``load`` reads; the ``outbox`` table is its awards
    that are not yet known to be issued (pending, uncertain, blocked), materialised from
    that JSON in the same transaction so that ``SELECT * FROM outbox`` always shows what a
    restart would act on. It is derived, never read back, so the two cannot disagree. An
    award in flight at save time appears as ``uncertain``, because that is how a restart
    treats it. The state's SHA-256 is stored beside it: SQLite has no page checksums, and
    a flipped digit inside the JSON would otherwise load as a different, valid state.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            try:
                _create(path)
            except (OSError, sqlite3.Error) as exc:
                raise self._error(f"cannot create it: {exc}") from exc
        self._db = self._open()

    def load(self) -> str | None:
        """The saved state, checked: its bytes against the checksum, then as engine state."""
        try:
            row = self._db.execute("SELECT CAST(state AS BLOB), sha256 FROM engine").fetchone()
        except sqlite3.DatabaseError as exc:  # pages are read lazily: damage can show here
            raise self._error(f"the database is damaged: {exc}") from exc
        if row is None:
            return None  # created, never saved: nothing was ever done
        data, digest = bytes(row[0]), str(row[1])
        if hashlib.sha256(data).hexdigest() != digest:
            raise self._error("the saved engine state does not match its checksum (corrupted)")
        text = data.decode("utf-8")  # what was hashed was UTF-8 text
        try:
            engine_state.load(text)
        except StateError as exc:
            raise self._error(str(exc)) from exc
        return text

    def save(self, engine_json: str) -> None:
        courses, _, _ = engine_state.load(engine_json)  # what a restart would see
        outbox = [
            (cid, e.user_id, e.badge_class, e.status.value, e.reason)
            for cid, course in sorted(courses.items())
            for _, e in sorted(course.outbox.items())
        ]
        digest = hashlib.sha256(engine_json.encode("utf-8")).hexdigest()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO engine (id, state, sha256) VALUES (1, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET state = excluded.state, sha256 = excluded.sha256",
                (engine_json, digest),
            )
            db.execute("DELETE FROM outbox")
            db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?)", outbox)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> sqlite3.Connection:
        """Check before writing anything: setting WAL on a foreign database would change it."""
        if self.path.stat().st_size == 0:
            raise self._error("the file is empty (truncated?)")
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                newer = version > SCHEMA_VERSION
                raise self._error(
                    f"schema version {version} is newer than this credsync's "
                    f"({SCHEMA_VERSION}): upgrade credsync"
                    if newer
                    else f"schema version {version}: not a credsync state file"
                )
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            missing = [t for t in _TABLES if t not in tables]
            if missing:
                raise self._error(f"tables {missing} are missing: not a credsync state file")
            integrity = db.execute("PRAGMA quick_check").fetchone()[0]
            if integrity != "ok":
                raise self._error(f"the database is damaged ({integrity})")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # names are text too
            db.close()
            raise self._error(
                f"not a readable SQLite database (corrupt, truncated, or not a state file): {exc}"
            ) from exc
        except BaseException:
            db.close()
            raise
        return db

    def _error(self, what: str) -> StateError:
        return StateError(f"state file {self.path}: {what}; refusing to start over")


def _create(path: Path) -> None:
    """Build the empty schema beside ``path`` and rename it into place, so a crash during
    creation leaves no file at all rather than an empty one: an existing file without the
    schema is refused (it may be a truncated state), never taken for a new store."""
    temp = path.with_name(f".{path.name}.new")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # left by a crash during an earlier creation: it never held state
    db = sqlite3.connect(temp, isolation_level=None)
    try:
        db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    finally:
        db.close()
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power loss
    finally:
        os.close(directory)
