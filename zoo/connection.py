"""SQLite connections whose every error comes out as zoo's own, with the fix (one translation point).

Every read and write of the user database and the catalog goes through ``_connect``: its ``_Connection``
hands out ``_Cursor``s that raise :func:`translate_sqlite_error`'s result (locked, read-only, full, corrupt,
I/O, cannot open) instead of ``sqlite3``'s. Kept apart from :mod:`zoo.registry`, which holds what is stored.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from zoo.errors import DatabaseCorrupt, DatabaseError, DatabaseFull, DatabaseLocked, DatabaseReadOnly

BUSY_TIMEOUT_MS = 5000  # how long a read waits out a passing lock (WAL: only recovery and checkpoints take one)
WRITE_WAIT_S = 30.0  # how long a write waits for another writer (ZOO_LOCK_TIMEOUT overrides), saying so first


# SQLite's primary result codes (sqlite3.h); Python 3.11+ gives the code on the exception, older ones only
# the message, which the words below match.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 3, 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 11, 13, 14, 26


def write_wait_s() -> float:
    """How long a writer waits for another writer's lock: ``ZOO_LOCK_TIMEOUT`` seconds (default 30)."""
    try:
        return max(0.0, float(os.environ.get("ZOO_LOCK_TIMEOUT", WRITE_WAIT_S)))
    except ValueError:
        return WRITE_WAIT_S


def translate_sqlite_error(e: sqlite3.Error, path: Path | str, *, writing: bool = False,
                           waited_s: float | None = None) -> DatabaseError:
    """The one place that turns an ``sqlite3.Error`` into zoo's error with the fix: every read and write of the
    user database and the catalog goes through it (``_Connection`` raises only its results). ``writing``: the
    error ended a write transaction, which SQLite has rolled back."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    msg = str(e).lower()

    def kind(c: int, *words: str) -> bool:
        return primary == c if primary is not None else any(w in msg for w in words)

    undone = " Nothing was written: the transaction was rolled back." if writing else ""
    # An I/O error on a full disk (no room for the WAL's shared memory, say) is the full disk.
    full = kind(_SQLITE_FULL, "database or disk is full") or (kind(_SQLITE_IOERR, "disk i/o error") and _disk_full(path))
    if kind(_SQLITE_BUSY, "locked", "busy") or kind(_SQLITE_LOCKED, "locked"):
        waited = waited_s if waited_s is not None else BUSY_TIMEOUT_MS / 1000
        err: DatabaseError = DatabaseLocked(
            f"Database {path} is locked: another connection is writing to it (a zoo command in another terminal, "
            f"or any program that has it open, such as the sqlite3 shell or a backup tool); zoo waited {waited:g} s."
            f"{undone} Retry when it has finished, wait longer with ZOO_LOCK_TIMEOUT=SECONDS, or point --db "
            "(ZOO_DB) at another file.")
    elif kind(_SQLITE_READONLY, "readonly", "read-only") or kind(_SQLITE_PERM, "access permission"):
        err = DatabaseReadOnly(
            f"Database {path} is read-only (file or folder permissions, or a read-only file system; SQLite: {e}) and "
            f"this command writes to it.{undone} Make it writable, or point --db (ZOO_DB) at a writable file; "
            "commands that only read (search, show, stats, recommend) work with it as it is.")
    elif full:
        err = DatabaseFull(
            f"The disk holding {path} is full ({e}).{undone} Free some space and retry, or point --db (ZOO_DB) at a "
            "file on another disk.")
    elif kind(_SQLITE_CORRUPT, "malformed", "corrupt") or kind(_SQLITE_NOTADB, "not a database"):
        err = DatabaseCorrupt(
            f"Database {path} is corrupt or not a zoo database ({e}). Move it aside (zoo then starts an empty one; "
            "your runs and indexed models stay in the moved file, where `sqlite3 FILE .recover` may save them) and "
            "re-index, or restore it from a backup.")
    elif kind(_SQLITE_IOERR, "disk i/o error"):
        err = DatabaseError(
            f"Disk I/O error on {path} ({e}): a full disk, a file-size limit (ulimit -f), a removed drive or a failing "
            f"disk.{undone} Check the disk (df -h, dmesg) and retry, or point --db (ZOO_DB) at a file elsewhere.")
    elif kind(_SQLITE_CANTOPEN, "unable to open"):
        err = DatabaseError(
            f"Cannot open database {path} ({e}). Check that its folder exists and is readable and writable, or "
            "point --db (ZOO_DB) elsewhere.")
    else:
        err = DatabaseError(f"Database error in {path}: {e}.{undone}")
    err.sqlite_error, err.db_path = e, path  # type: ignore[attr-defined]
    return err


def _disk_full(path: Path | str) -> bool:
    try:
        return shutil.disk_usage(Path(path).parent).free < 64 * 1024
    except (OSError, ValueError):
        return False


def _raise_translated(conn: sqlite3.Connection, e: sqlite3.Error) -> None:
    if getattr(conn, "raw_errors", False):  # sqlite-utils' own code (migrations) catches sqlite3 errors
        raise e
    raise translate_sqlite_error(e, getattr(conn, "zoo_path", "the database")) from None


class _Cursor(sqlite3.Cursor):
    """A cursor whose every SQLite error comes out as zoo's ``DatabaseError`` (see ``translate_sqlite_error``)."""

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:  # type: ignore[override]
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as e:
            _raise_translated(self.connection, e)
            raise  # pragma: no cover - _raise_translated always raises

    def executemany(self, sql: str, seq: Any, /) -> _Cursor:  # type: ignore[override]
        try:
            return super().executemany(sql, seq)
        except sqlite3.Error as e:
            _raise_translated(self.connection, e)
            raise  # pragma: no cover

    def executescript(self, script: str, /) -> _Cursor:  # type: ignore[override]
        try:
            return super().executescript(script)
        except sqlite3.Error as e:
            _raise_translated(self.connection, e)
            raise  # pragma: no cover

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as e:
            _raise_translated(self.connection, e)
            raise  # pragma: no cover

    def fetchmany(self, size: int | None = None) -> list[Any]:
        try:
            return super().fetchmany(self.arraysize if size is None else size)
        except sqlite3.Error as e:
            _raise_translated(self.connection, e)
            raise  # pragma: no cover

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            _raise_translated(self.connection, e)
            raise  # pragma: no cover

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as e:  # damaged pages found part-way through a scan
            _raise_translated(self.connection, e)
            raise  # pragma: no cover


class _Connection(sqlite3.Connection):
    """``sqlite3.Connection`` with ``_Cursor``s, also behind its ``execute`` shortcuts."""

    zoo_path: Path | str = "the database"
    raw_errors = False

    def cursor(self, factory: Any = _Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any, /) -> _Cursor:  # type: ignore[override]
        return self.cursor().executemany(sql, seq)

    def executescript(self, script: str, /) -> _Cursor:  # type: ignore[override]
        return self.cursor().executescript(script)


def _connect(target: str, path: Path | str, *, timeout_s: float, uri: bool = False) -> _Connection:
    try:
        conn = sqlite3.connect(target, timeout=timeout_s, isolation_level=None, factory=_Connection, uri=uri)
    except sqlite3.Error as e:
        raise translate_sqlite_error(e, path) from None
    conn.zoo_path = path
    return conn
