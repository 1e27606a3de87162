"""The SQLite state store: a step is one transaction, the outbox is queryable, and a state
file that cannot be trusted stops ``credsync sync`` with a clear error and stays untouched."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

import scenarios.cli as cli
from adapter import SqliteStore, apply_links, load_engine
from adapter.store import SCHEMA_VERSION
from simulators.world import World
from sync_core import StateError, SyncEngine, Tick, state
from sync_core.state import FORMAT_VERSION, AwardStatus, OutboxEntry


def state_with_outbox() -> str:
    """A linked, ticked engine's state, holding one award of each outbox status."""
    world, rules = World.small(1)
    engine = SyncEngine()
    apply_links(engine, [world.link_course(c, r) for c, r in sorted(rules.items())])
    engine.handle(Tick(world.clock.now))
    courses, next_request_id, now = state.load(engine.to_json())
    for uid, status in enumerate(AwardStatus, start=1):
        courses[101].outbox[f"{uid}:b{uid}"] = OutboxEntry(uid, f"b{uid}", status, "why")
    return state.dump(courses, next_request_id, now)


def as_version_1(text: str) -> str:
    """An engine state as credsync wrote it before the Credentials cache (format 1)."""
    data = json.loads(text)
    data["format"] = 1
    for course in data["courses"]:
        course["submissions"] = [
            [u, a, s, False, None] for a, table in course.pop("scores") for u, s in table
        ]
        for key in ("students", "earned", "assignments", "quizzes", "members"):
            del course[key]
        del course["live_awards"], course["leaderboard"]
    return json.dumps(data)


def test_a_version_1_state_loads_and_its_courses_resync_in_full() -> None:
    """Format 2 added the engine's cache of Credentials; a format 1 state has none, so its
    courses run a full round next, which fills it. Nothing it did hold is lost."""
    world, rules = World.small(1)
    engine = SyncEngine()
    apply_links(engine, [world.link_course(c, r) for c, r in sorted(rules.items())])
    engine.handle(Tick(world.clock.now))
    courses, _, _ = state.load(engine.to_json())
    courses[101].scores[8] = {7: 9.5}
    courses[101].known_emails[7] = ["a@x.edu"]
    text = state.dump(courses, 5, world.clock.now)
    old, _, _ = state.load(as_version_1(text))
    assert old[101].force_full and old[101].scores == {8: {7: 9.5}}
    assert old[101].known_emails == {7: ["a@x.edu"]} and old[101].owners == {"a@x.edu": 7}
    new, _, _ = state.load(text)
    assert not new[101].force_full and new[101].scores == {8: {7: 9.5}}


def saved(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "state.db"
    text = state_with_outbox()
    with SqliteStore(path) as store:
        store.save(text)
    return path, text


def test_a_new_store_loads_nothing_and_a_saved_state_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStore(path) as store:
        # FULL (2): a commit is on disk when save returns, so it survives a power loss too
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert store.load() is None
        text = state_with_outbox()
        store.save(text)
        assert store.load() == text
    with SqliteStore(path) as again:
        assert again.load() == text
        assert load_engine(again).to_json() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_the_outbox_table_is_what_a_restart_would_act_on(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    with closing(sqlite3.connect(path)) as db, db:
        rows = db.execute("SELECT user_id, status FROM outbox ORDER BY user_id").fetchall()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    # in flight at save time is uncertain after a restart, so that is what the table says;
    # a check (a read) sent nothing that could be stored, so it is pending again
    assert rows == [
        (1, "pending"),
        (2, "pending"),
        (3, "uncertain"),
        (4, "uncertain"),
        (5, "blocked"),
    ]
    assert mode == "wal"


def test_a_step_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save that fails halfway (here: after the state row, on the outbox) leaves the
    previous step whole, state and outbox alike."""
    path, before = saved(tmp_path)
    with SqliteStore(path) as store:
        courses, next_request_id, now = state.load(before)
        courses[101].outbox.clear()
        after = state.dump(courses, next_request_id, now)
        real = store._db

        class FailingOutbox:
            def execute(self, sql: str, *args: object) -> object:
                return real.execute(sql, *args)

            def executemany(self, sql: str, rows: object) -> object:
                raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_db", FailingOutbox())
        with pytest.raises(sqlite3.OperationalError):
            store.save(after)
        monkeypatch.undo()
        assert store.load() == before
        assert real.execute("SELECT count(*) FROM outbox").fetchone()[0] == len(AwardStatus)


def test_a_save_of_damaged_engine_json_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path, before = saved(tmp_path)
    with SqliteStore(path) as store:
        with pytest.raises(StateError):
            store.save(before[:-10])
        assert store.load() == before


# -- state files that cannot be trusted ----------------------------------------------------


def corrupt_payload(path: Path) -> None:
    """Flip one digit inside the stored JSON: still valid JSON, still a valid state."""
    with closing(sqlite3.connect(path)) as db, db:
        text = db.execute("SELECT state FROM engine").fetchone()[0]
        index = text.index('"next_request_id":') + len('"next_request_id":')
        digit = str((int(text[index]) + 1) % 10)
        db.execute("UPDATE engine SET state = ?", (text[:index] + digit + text[index + 1 :],))


def garble_pages(path: Path) -> None:
    """Overwrite the schema page's b-tree with junk, keeping the 100-byte file header."""
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * 3996
    path.write_bytes(bytes(data))


def damage_btree(path: Path) -> None:
    """Flip the page-type byte of the last page (the outbox index's root): SQLite opens the
    file, and only the integrity check finds the damage."""
    data = bytearray(path.read_bytes())
    data[len(data) - 4096] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def json_state(path: Path) -> None:
    """The JSON file earlier credsync versions wrote."""
    path.write_text(state_with_outbox(), encoding="utf-8")


def our_version_without_tables(path: Path) -> None:
    path.unlink()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def newer_schema(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def other_database(path: Path) -> None:
    path.unlink()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (body TEXT)")


def newer_engine_format(path: Path) -> None:
    """The schema is ours; the engine state inside it is from a newer engine."""
    with closing(sqlite3.connect(path)) as db, db:
        text = db.execute("SELECT state FROM engine").fetchone()[0]
        data = json.loads(text)
        data["format"] = FORMAT_VERSION + 1
        newer = json.dumps(data)
        digest = hashlib.sha256(newer.encode()).hexdigest()
        db.execute("UPDATE engine SET state = ?, sha256 = ?", (newer, digest))


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "corrupted bytes": (garble_pages, "damaged|not a readable SQLite"),
    "corrupted state": (corrupt_payload, "does not match its checksum"),
    "damaged b-tree": (damage_btree, r"the database is damaged \(\*\*\* in database main"),
    "truncated": (truncate, "damaged|not a readable SQLite"),
    "empty": (empty, "empty"),
    "JSON, not SQLite": (json_state, "not a readable SQLite database"),
    "another database": (other_database, "schema version 0: not a credsync state file"),
    "our version, no tables": (our_version_without_tables, r"tables \['engine', 'outbox'\]"),
    "newer schema": (newer_schema, f"schema version {SCHEMA_VERSION + 1} is newer"),
    "newer engine format": (newer_engine_format, f"state format {FORMAT_VERSION + 1}"),
}


@pytest.mark.parametrize("damage", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_state_file_stops_sync_with_a_clear_error_and_is_left_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    harm, message = BAD_FILES[damage]
    path, _ = saved(tmp_path)
    harm(path)
    before = path.read_bytes()
    links = tmp_path / "links.json"
    links.write_text("[]", encoding="utf-8")
    code = cli.main(
        [
            "sync",
            *("--canvas", "http://127.0.0.1:9", "--canvas-token", "t"),
            *("--credentials", "http://127.0.0.1:9", "--credentials-token", "t"),
            *("--links", str(links), "--state", str(path), "--once"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"credsync sync: state file {path}: ")
    assert "refusing to start over" in err
    assert re.search(message, err), err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["links.json", "state.db"]


def test_a_state_file_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"missing/state.db: cannot create it: .*unable to open"):
        SqliteStore(tmp_path / "missing" / "state.db")
    assert list(tmp_path.iterdir()) == []


def test_a_read_error_after_opening_is_a_clear_error(tmp_path: Path) -> None:
    """SQLite reads pages lazily: damage inside the state row's pages surfaces only at load,
    and must be a :class:`StateError` too, not a crash."""
    path, _ = saved(tmp_path)
    with SqliteStore(path) as store:
        store._db.execute("ALTER TABLE engine RENAME COLUMN state TO gone")
        with pytest.raises(StateError, match="the database is damaged: no such column: state"):
            store.load()
