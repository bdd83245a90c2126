"""The registry: the shipped read-only catalog with the user's database attached beside it.

The user database (``ZOO_DB`` / ``--db``, default in the user data dir) is the connection's
``main`` schema and holds everything a user's work writes; the catalog (``registry.db``) is
attached read-only as ``catalog``. A model in the user database shadows the catalog's record
with the same id, so a newer shipped catalog never loses a user's history.

Failures: the connection (``zoo.connection._Connection``) raises every SQLite error as zoo's own, built in one
place, ``translate_sqlite_error`` (locked, read-only, full, corrupt, I/O, cannot open; a newer schema is refused on
opening). A write is one transaction (``transaction``): it waits for another writer's lock up to
``ZOO_LOCK_TIMEOUT`` seconds, saying so first, and a failed ``COMMIT`` reports its own error. Reading never
needs to write: a database in a folder zoo cannot write, or on a full disk, is read ``immutable``; a 0-byte
file is said to be empty rather than silently rebuilt.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import heapq
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zoo import config
from zoo.connection import (
    BUSY_TIMEOUT_MS,
    _connect,
    _Connection,
    translate_sqlite_error,
    write_wait_s,
)
from zoo.errors import (
    DatabaseError,
    DatabaseLocked,
    DatabaseReadOnly,
    SchemaTooNew,
    UnknownModel,
    UsageError,
    warn,
)
from zoo.ids import ModelId
from zoo.migrations import FTS_COLUMNS, MIGRATION_NAMES, MIGRATION_SET, migration_set
from zoo.record import ROW_COLUMNS, ModelRecord

BEST_EFFORT_WAIT_S = 2.0  # a cache write (vectors) waits this long, then is skipped with a warning
COUNT_CAP = 10_000
SORTS = {
    # name -> (sql column, descending, python key for merging)
    "top1": ("imagenet_top1", True),
    "params": ("params", False),
    "-params": ("params", True),
    "downloads": ("downloads", True),
    "likes": ("likes", True),
    "latency": ("cpu_latency_ms", False),
    "id": ("id", False),
}


@dataclass
class SearchResult:
    records: list[ModelRecord]
    total: int  # rows matching the filters (before --limit), across catalog and user db
    query: str | None
    filters: dict[str, Any]
    total_is_lower_bound: bool = False  # more than COUNT_CAP matched


@dataclass
class IndexSummary:
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    run_id: int | None = None


@dataclass
class Stats:
    total: int
    by_source: dict[str, int]
    by_modality: dict[str, int]
    by_license_class: dict[str, int]
    by_domain: dict[str, int]
    catalog: str | None
    catalog_version: str | None
    user_db: str
    loadable: int = 0  # records zoo can load (zoo.loadable.loadable_reason), fetching from the Hub if need be
    not_loadable: dict[str, int] = field(default_factory=dict)  # the others, by why (library, modality, ...)


IN_CHUNK = 900  # ids per ``IN (...)`` query: SQLite allows 999 host parameters by default


def in_chunks(ids: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """Slices of ``ids`` with their ``?, ?, ...`` placeholders, for ``WHERE id IN (...)`` queries."""
    for i in range(0, len(ids), IN_CHUNK):
        chunk = list(ids[i : i + IN_CHUNK])
        yield chunk, ", ".join("?" * len(chunk))


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fts_query(text: str) -> str:
    """Quote every word so user input is never FTS syntax; all words must match, as prefixes
    (``resnet`` finds ``resnet50``)."""
    words = re.findall(r"[^\W_]+", text.lower())
    return " ".join('"' + w + '"*' for w in words)


class Registry:
    """Open with ``Registry()`` (environment defaults) or explicit paths; use as a context manager."""

    def __init__(self, db: str | Path | None = None, catalog: str | Path | None = None, *, create: bool = False):
        self.db_path = Path(db) if db else config.user_db_path()
        cat = Path(catalog) if catalog else config.catalog_path()
        self.catalog_path: Path | None = cat if cat.exists() else None
        self._create = create
        self._conn: sqlite3.Connection | None = None
        self._has_user_db = False
        self._empty_noted = False
        self._immutable: DatabaseError | None = None  # why it was opened immutable, read-only (see _readable)

    # -- connection ---------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _user_db_state(self) -> str:
        """``absent``, ``empty`` (a 0-byte file: no database yet, or one truncated by a crash) or ``present``."""
        try:
            size = self.db_path.stat().st_size
        except FileNotFoundError:
            return "absent"
        except OSError as e:
            raise DatabaseError(f"Cannot read database {self.db_path}: {e}. Check its permissions, or set --db.") from None
        if size == 0:
            wal = self.db_path.with_name(self.db_path.name + "-wal")
            if not (wal.exists() and wal.stat().st_size > 0):  # pages only in the WAL are still a database
                return "empty"
        return "present"

    def _open(self) -> sqlite3.Connection:
        state = self._user_db_state()
        if state == "empty":
            if self._create:
                warn(f"{self.db_path} was an empty file (0 bytes), not a zoo database: zoo created a new, empty "
                     "database in it. If it held your runs and indexed models (a crash or a full disk can truncate "
                     "a file), restore it from a backup.")
            elif not self._empty_noted:
                self._empty_noted = True
                warn(f"{self.db_path} is an empty file (0 bytes), not a zoo database: only the catalog is read. "
                     "The next command that writes creates a new database in it; if it held your runs and indexed "
                     "models (a crash or a full disk can truncate a file), restore it from a backup first.")
        self._has_user_db = state == "present" or self._create
        if self._has_user_db:
            try:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DatabaseError(f"Cannot create {self.db_path.parent}: {e}. Set ZOO_DB or --db.") from None
            conn = _connect(str(self.db_path), self.db_path, timeout_s=BUSY_TIMEOUT_MS / 1000)
            if state == "present":
                conn = self._readable(conn)
        else:
            # Reading only and no user database yet: nothing is written to disk.
            conn = _connect(":memory:", self.db_path, timeout_s=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA cache_size = -65536")  # 64 MB: index inserts of large runs stay in memory
            if self._has_user_db and set(MIGRATION_NAMES) - self._applied(conn, self.db_path, "main"):
                self._migrate(conn)
            if self.catalog_path is not None:
                uri = "file:" + str(self.catalog_path.resolve()) + "?mode=ro"
                conn.zoo_path = self.catalog_path  # an error while attaching is the catalog's
                conn.execute("ATTACH DATABASE ? AS catalog", (uri,))
                self._applied(conn, self.catalog_path, "catalog")
                conn.zoo_path = self.db_path
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            raise
        return conn

    def _readable(self, conn: _Connection) -> _Connection:
        """The connection, or, for a database in a folder this user cannot write (a read-only mount, another
        user's files) or on a full disk, one opened ``immutable``: SQLite cannot create the WAL's shared-memory file
        there, yet a command that only reads must still work. A write through it then fails, saying why."""
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except DatabaseError as e:
            # Read-only folder: READONLY_DIRECTORY / _CANTINIT as another user, CANTOPEN on a read-only mount; a full
            # disk: IOERR_SHMSIZE (no room for the shared-memory file).
            raw = getattr(e, "sqlite_error", None)
            name = getattr(raw, "sqlite_errorname", "") or ""
            if name:
                folder_problem = name.startswith(("SQLITE_READONLY_", "SQLITE_CANTOPEN", "SQLITE_IOERR_SHM"))
            else:  # Python 3.10: the message only
                folder_problem = isinstance(e, DatabaseReadOnly) or any(
                    w in str(raw).lower() for w in ("unable to open", "disk i/o error"))
            wal = self.db_path.with_name(self.db_path.name + "-wal")
            unflushed = wal.exists() and wal.stat().st_size > 0  # commits only in the WAL: immutable would miss them
            if not folder_problem or unflushed:
                raise
            self._immutable = e
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        uri = "file:" + quote(str(self.db_path.resolve())) + "?immutable=1"
        return _connect(uri, self.db_path, timeout_s=BUSY_TIMEOUT_MS / 1000, uri=True)

    def _migrate(self, conn: _Connection) -> None:
        """Apply the missing migrations in one write transaction, re-checked once the lock is held (two commands
        opening a new database at once migrate it once). A read-only database of an older zoo is read as it is."""
        from sqlite_utils import Database

        with contextlib.suppress(DatabaseError):
            conn.execute("PRAGMA journal_mode = WAL")  # not inside a transaction; a failure shows at BEGIN below
        try:
            self._begin(conn, write_wait_s())
        except DatabaseReadOnly:
            if self._create:
                raise
            warn(f"{self.db_path} was written by an older zoo and is read-only, so it cannot be upgraded: zoo reads "
                 "it as it is. Make it writable once to upgrade it.")
            return
        try:
            if set(MIGRATION_NAMES) - self._applied(conn, self.db_path, "main"):
                conn.raw_errors = True  # sqlite-utils catches sqlite3's errors itself
                try:
                    migration_set().apply(Database(conn))
                except sqlite3.Error as e:
                    raise translate_sqlite_error(e, self.db_path, writing=True) from None
                finally:
                    conn.raw_errors = False
            self._commit(conn)
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _applied(conn: sqlite3.Connection, path: Path, schema: str) -> set[str]:
        """Migrations applied to ``schema``; refuses a database from a newer zoo."""
        has = conn.execute(
            f"SELECT 1 FROM {schema}.sqlite_master WHERE type='table' AND name='_sqlite_migrations'"
        ).fetchone()
        if not has:
            return set()
        applied = {r[0] for r in conn.execute(
            f"SELECT name FROM {schema}._sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET])}
        newer = sorted(applied - set(MIGRATION_NAMES))
        if newer:
            raise SchemaTooNew(
                f"Database {path} was written by a newer zoo (unknown migrations: {', '.join(newer)}). "
                "Upgrade zoo (pip install -U zoo) or use another --db."
            )
        return applied

    def close(self) -> None:
        self._immutable = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):  # closing checkpoints the WAL; a full disk must not mask anything
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _schemas(self) -> list[str]:
        self.conn  # noqa: B018 - opens and attaches
        return (["main"] if self._has_user_db else []) + (["catalog"] if self.catalog_path is not None else [])

    def _not_shadowed(self, schema: str, col: str = "id") -> str:
        """SQL condition hiding catalog rows that the user database overrides."""
        if schema == "catalog" and self._has_user_db:
            return f"{col} NOT IN (SELECT id FROM main.models)"
        return ""

    def _visible(self, schema: str, col: str = "id") -> str:
        """`` WHERE <not shadowed>`` for a whole-table query, or nothing."""
        cond = self._not_shadowed(schema, col)
        return f" WHERE {cond}" if cond else ""

    def _ensure_writable(self) -> None:
        if self._conn is None:
            self._empty_noted = True  # about to write: the warning for a 0-byte file is the one said on creating
        self.conn  # noqa: B018 - opened first: only then is it known whether there is a user database
        if not self._has_user_db:
            self.close()
            self._create = True
            try:
                self.conn  # noqa: B018
            except BaseException:
                self._create = False  # the reads that follow still work, from the catalog alone
                self.close()
                raise

    def _begin(self, conn: sqlite3.Connection, wait_s: float) -> None:
        """``BEGIN IMMEDIATE``: the write lock up front. When another writer holds it, say so, then wait up to
        ``wait_s`` seconds for it (a reader never waits here: WAL readers take no lock)."""
        if self._immutable is not None:
            cause = getattr(self._immutable, "sqlite_error", None)
            if cause is not None and not isinstance(self._immutable, DatabaseReadOnly) \
                    and "i/o" in str(cause).lower():
                raise translate_sqlite_error(cause, self.db_path, writing=True)  # a full disk: say so
            raise DatabaseReadOnly(
                f"Database {self.db_path} is in a folder zoo cannot write to (a read-only file system, or another "
                "user's folder), and this command writes to it. Nothing was written. Make the folder writable, or "
                "point --db (ZOO_DB) at a writable file; commands that only read (search, show, stats, recommend) "
                "work with it as it is.")
        conn.execute("PRAGMA busy_timeout = 100")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except DatabaseLocked:
            pass
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if wait_s > 0:
            warn(f"Waiting up to {wait_s:g} s for the write lock on {self.db_path}: another connection is writing "
                 "to it (another zoo command, or any program that has it open).")
        t0 = time.monotonic()
        conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except DatabaseLocked as e:
            raise translate_sqlite_error(e.sqlite_error, self.db_path,  # type: ignore[attr-defined]
                                         waited_s=round(time.monotonic() - t0 + 0.1, 1)) from None
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT, reporting its own error (a full disk, an I/O error): SQLite has then rolled back already, and
        the ROLLBACK that follows must not hide it behind 'cannot rollback - no transaction is active'."""
        try:
            conn.execute("COMMIT")
        except DatabaseError as e:
            self._rollback(conn)
            raw = getattr(e, "sqlite_error", None)
            raise (translate_sqlite_error(raw, self.db_path, writing=True) if raw is not None else e) from None

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # an error such as SQLITE_FULL may have rolled the transaction back already
            with contextlib.suppress(DatabaseError, sqlite3.Error):
                conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self, *, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction: all or nothing. ``BEGIN IMMEDIATE`` takes the write lock up front, waiting up
        to ``wait_s`` seconds (default ``ZOO_LOCK_TIMEOUT``, 30) for another writer. Every error is zoo's
        ``DatabaseError`` with the fix, and one that ends the transaction says that nothing was written."""
        self._ensure_writable()
        conn = self.conn
        self._begin(conn, write_wait_s() if wait_s is None else wait_s)
        try:
            yield conn
        except DatabaseError as e:
            self._rollback(conn)
            raw = getattr(e, "sqlite_error", None)
            if raw is None:
                raise
            raise translate_sqlite_error(raw, getattr(e, "db_path", self.db_path), writing=True) from None
        except BaseException:
            self._rollback(conn)
            raise
        self._commit(conn)

    # -- reading ------------------------------------------------------------------------------
    def _where(self, schema: str, filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if filters.get("modality"):
            clauses.append("m.modality = ?")
            params.append(filters["modality"])
        lcs = filters.get("license_classes")
        if lcs:
            clauses.append(f"m.license_class IN ({', '.join('?' * len(lcs))})")
            params.extend(lcs)
        # Unary + keeps SQLite from choosing the params index when the result is sorted by another
        # column: walking the (modality, license_class, imagenet_top1) index in order and stopping at
        # LIMIT beats sorting every match of a broad size filter.
        p = "m.params" if filters.get("sort") in ("params", "-params") else "+m.params"
        if filters.get("max_params") is not None:
            clauses.append(f"{p} <= ?")
            params.append(int(filters["max_params"]))
        if filters.get("min_params") is not None:
            clauses.append(f"{p} >= ?")
            params.append(int(filters["min_params"]))
        if filters.get("min_top1") is not None:
            clauses.append("m.imagenet_top1 >= ?")
            params.append(float(filters["min_top1"]))
        if filters.get("source"):
            clauses.append("m.source = ?")
            params.append(filters["source"])
        if filters.get("ids") is not None:
            ids = list(filters["ids"])
            clauses.append(f"m.id IN ({', '.join('?' * len(ids))})" if ids else "0")
            params.extend(ids)
        domains = filters.get("domains")
        if domains:
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each(m.domains) WHERE value IN ({', '.join('?' * len(domains))}))"
            )
            params.extend(domains)
        if cond := self._not_shadowed(schema, "m.id"):
            clauses.append(cond)
        return clauses, params

    def search(
        self,
        query: str | None = None,
        *,
        modality: str | None = None,
        domains: Iterable[str] | None = None,
        license_classes: Iterable[str] | None = None,
        max_params: int | None = None,
        min_params: int | None = None,
        min_top1: float | None = None,
        source: str | None = None,
        ids: Iterable[str] | None = None,
        available: bool = False,
        sort: str | None = None,
        limit: int | None = 20,
        count: bool = True,
    ) -> SearchResult:
        from zoo import vocab

        if modality is not None:
            self._check_vocab("modality", modality, vocab.MODALITIES)
        for d in domains or ():
            self._check_vocab("domain", d, vocab.DOMAINS)
        for c in license_classes or ():
            self._check_vocab("license class", c, vocab.LICENSE_CLASSES)
        if sort is not None and sort not in SORTS and sort != "relevance":
            raise UsageError(f"Unknown sort {sort!r}; use one of: relevance, {', '.join(SORTS)}.")
        filters = {
            "modality": modality, "domains": list(domains or []), "license_classes": list(license_classes or []),
            "max_params": max_params, "min_params": min_params, "min_top1": min_top1, "source": source,
            "ids": list(ids) if ids is not None else None,
        }
        match = fts_query(query) if query else ""
        if query and not match:
            raise UsageError(f"The query {query!r} has no searchable words.")
        sort = sort or ("relevance" if match else "top1")
        if sort == "relevance" and not match:
            sort = "top1"
        filters["sort"] = sort

        per_schema: list[list[tuple[Any, ...]]] = []
        total, capped = 0, False
        fetch = None if (limit is None or available) else limit
        # Several license classes: one index-ordered query per class, merged below, instead of one
        # query that has to sort every match.
        lcs = filters["license_classes"]
        parts = [[c] for c in lcs] if len(lcs) > 1 and sort != "relevance" else [lcs]
        for schema, part in ((s, p) for s in self._schemas() for p in parts):
            clauses, params = self._where(schema, {**filters, "license_classes": part})
            frm = f"{schema}.models m"
            if match:
                frm = f"{schema}.models_fts f JOIN {schema}.models m ON m.rowid = f.rowid"
                clauses.insert(0, "f.models_fts MATCH ?")
                params.insert(0, match)
            where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
            if sort == "relevance":
                order, key_sql = "ORDER BY f.rank, m.id", "f.rank"
            else:
                col, desc = SORTS[sort]
                # DESC puts NULLs last by itself and lets SQLite walk the filter index in order.
                order = f"ORDER BY m.{col} {'DESC' if desc else 'ASC NULLS LAST'}, m.id"
                key_sql = f"m.{col}"
            lim = f"LIMIT {int(fetch)}" if fetch is not None else ""
            sql = f"SELECT {key_sql} AS _key, m.* FROM {frm} {where} {order} {lim}"
            rows = self.conn.execute(sql, params).fetchall()
            per_schema.append([self._sort_key(sort, r) + (r,) for r in rows])
            if count:
                # Counting every match of a broad filter over a million rows costs more than the
                # search itself; past COUNT_CAP the total is reported as "at least".
                n = self.conn.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {frm} {where} LIMIT {COUNT_CAP + 1})", params
                ).fetchone()[0]
                total += n
                capped = capped or n > COUNT_CAP
        merged = heapq.merge(*per_schema, key=lambda t: t[:-1])
        records: list[ModelRecord] = []
        for *_, row in merged:
            rec = ModelRecord.from_row(dict(row))
            if available and not self.is_available(rec):
                continue
            records.append(rec)
            if limit is not None and len(records) >= limit:
                break
        if available and count:
            total = len(records) if limit is None else total  # exact only without a limit
        return SearchResult(records=records, total=min(total, COUNT_CAP) if capped else total if count else len(records),
                            query=query, filters=filters, total_is_lower_bound=capped)

    @staticmethod
    def _sort_key(sort: str, row: sqlite3.Row) -> tuple[Any, ...]:
        key = row["_key"]
        if sort == "relevance":
            return (key, row["id"])
        _, desc = SORTS[sort]
        if key is None:
            return (1, 0, row["id"])
        if isinstance(key, str):
            return (0, key, row["id"])
        return (0, -key if desc else key, row["id"])

    @staticmethod
    def _check_vocab(kind: str, value: str, allowed: dict[str, str]) -> None:
        if value not in allowed:
            close = difflib.get_close_matches(value, list(allowed), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"Unknown {kind} {value!r}.{hint} Known: {', '.join(allowed)}.")

    def get(self, model_id: str) -> ModelRecord:
        return self.get_many([str(ModelId.parse(model_id))])[0]

    def get_many(self, ids: Iterable[str]) -> list[ModelRecord]:
        """Records for ``ids`` in that order (user database first); unknown ids raise ``UnknownModel``."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, ModelRecord] = {}
        for schema in self._schemas():
            missing = [i for i in wanted if i not in found]
            for chunk, marks in in_chunks(missing):
                for row in self.conn.execute(f"SELECT * FROM {schema}.models WHERE id IN ({marks})", chunk):
                    found[row["id"]] = ModelRecord.from_row(dict(row))
        for i in wanted:
            if i not in found:
                raise UnknownModel(i, self.suggest(i))
        return [found[i] for i in wanted]

    def exists(self, model_id: str) -> bool:
        try:
            self.get(model_id)
        except UnknownModel:
            return False
        return True

    def all_ids(self) -> list[str]:
        out: list[str] = []
        for schema in self._schemas():
            out.extend(r[0] for r in self.conn.execute(f"SELECT id FROM {schema}.models"))
        return out

    def suggest(self, model_id: str, n: int = 3) -> list[str]:
        ids = self.all_ids()
        target = model_id.lower()
        name = target.partition(":")[2] or target
        by_id = difflib.get_close_matches(target, ids, n=n, cutoff=0.6)
        by_name = {i.partition(":")[2]: i for i in ids}
        by_name_matches = [by_name[m] for m in difflib.get_close_matches(name, list(by_name), n=n, cutoff=0.6)]
        out = list(dict.fromkeys(by_id + by_name_matches))
        return out[:n]

    def iter_records(self) -> Iterator[ModelRecord]:
        for schema in self._schemas():
            for row in self.conn.execute(f"SELECT * FROM {schema}.models{self._visible(schema)} ORDER BY id"):
                yield ModelRecord.from_row(dict(row))

    @staticmethod
    def is_available(record: ModelRecord) -> bool:
        from zoo.weights import is_available

        return is_available(record.weights)

    def stats(self) -> Stats:
        by_source: dict[str, int] = {}
        by_modality: dict[str, int] = {}
        by_license: dict[str, int] = {}
        by_domain: dict[str, int] = {}
        for schema in self._schemas():
            cond = self._visible(schema, "m.id")
            for col, acc in (("source", by_source), ("modality", by_modality), ("license_class", by_license)):
                for k, n in self.conn.execute(f"SELECT {col}, count(*) FROM {schema}.models m{cond} GROUP BY {col}"):
                    acc[k] = acc.get(k, 0) + n
            for k, n in self.conn.execute(
                f"SELECT j.value, count(*) FROM {schema}.models m, json_each(m.domains) j{cond} GROUP BY j.value"
            ):
                by_domain[k] = by_domain.get(k, 0) + n
        total = sum(by_source.values())
        loadable, not_loadable = self._loadability()
        return Stats(
            total=total,
            by_source=dict(sorted(by_source.items())),
            by_modality=dict(sorted(by_modality.items())),
            by_license_class=dict(sorted(by_license.items())),
            by_domain=dict(sorted(by_domain.items(), key=lambda kv: -kv[1])),
            catalog=str(self.catalog_path) if self.catalog_path else None,
            catalog_version=self.meta("catalog_version", schema="catalog"),
            user_db=str(self.db_path),
            loadable=loadable,
            not_loadable=dict(sorted(not_loadable.items(), key=lambda kv: -kv[1])),
        )

    def _loadability(self) -> tuple[int, dict[str, int]]:
        """How many visible records zoo can load, and the others counted by a short reason."""
        from types import SimpleNamespace

        from zoo.loadable import loadable_reason

        ok, why = 0, {}
        for schema in self._schemas():
            rows = self.conn.execute(f"SELECT id, library, modality, weights, architecture, extra "
                                     f"FROM {schema}.models m{self._visible(schema, 'm.id')}")
            for mid, lib, modality, weights, arch, extra in rows:
                rec = SimpleNamespace(id=mid, library=lib, modality=modality, weights=weights, architecture=arch,
                                      extra=json.loads(extra) if extra else {})
                if loadable_reason(rec) is None:
                    ok += 1
                    continue
                if (weights or "").startswith("url:"):
                    key = "weights only at a release URL"
                elif not weights:
                    key = "no weights location"
                else:
                    key = f"{lib or 'unknown'} {modality} models"
                why[key] = why.get(key, 0) + 1
        return ok, why

    def stats_total(self) -> int:
        """Number of distinct models (user database and catalog), cheaply."""
        total = 0
        for schema in self._schemas():
            total += self.conn.execute(f"SELECT count(*) FROM {schema}.models{self._visible(schema)}").fetchone()[0]
        return total

    def meta(self, key: str, schema: str = "main") -> str | None:
        if schema not in self._schemas():
            return None
        row = self.conn.execute(f"SELECT value FROM {schema}.meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def known_revisions(self, source: str) -> dict[str, str]:
        if not self._schemas() or not self._has_user_db:
            return {}
        rows = self.conn.execute("SELECT id, revision FROM main.models WHERE source = ?", [source])
        return {r[0]: r[1] for r in rows if r[1]}

    # -- writing ------------------------------------------------------------------------------
    def write_records(
        self,
        records: Iterable[ModelRecord],
        *,
        conn: sqlite3.Connection,
        indexed_at: str | None = None,
        summary: IndexSummary | None = None,
    ) -> IndexSummary:
        """Upsert records inside an open transaction; unchanged records keep their ``indexed_at``."""
        summary = summary or IndexSummary(source="")
        recs = list(records)
        stamp = indexed_at or utcnow()
        existing: dict[str, str] = {}
        for chunk, marks in in_chunks([r.id for r in recs]):
            q = f"SELECT id, content_hash FROM main.models WHERE id IN ({marks})"
            existing.update({row[0]: row[1] for row in conn.execute(q, chunk)})
        cols = ROW_COLUMNS
        values = f"({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        upsert = (f"INSERT INTO main.models {values} "
                  f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in cols if c != 'id')}")
        new: dict[str, list[Any]] = {}  # plain inserts are cheaper than upserts; the last duplicate wins
        updates: list[list[Any]] = []
        at, hashed = ROW_COLUMNS.index("indexed_at"), ROW_COLUMNS.index("content_hash")
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a bulk load allocates only acyclic rows: collection passes are pure overhead
        try:
            for rec in recs:
                row = rec.row_values()
                if existing.get(rec.id) == row[hashed]:
                    summary.unchanged += 1
                    continue
                rec.indexed_at = row[at] = stamp
                if rec.id in existing:
                    summary.updated += 1
                    updates.append(row)
                else:
                    if rec.id in new:
                        summary.added -= 1
                    summary.added += 1
                    new[rec.id] = row
        finally:
            if gc_was_enabled:
                gc.enable()
        if not new and not updates:
            return summary
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _changed (id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp._changed")
        conn.executemany("INSERT OR IGNORE INTO temp._changed (id) VALUES (?)", [(u[0],) for u in updates])
        self._fts_sync(conn, "delete")  # old text of the updated rows
        conn.executemany(upsert, updates)
        self._fts_sync(conn, "insert")
        conn.execute("DELETE FROM temp._changed")
        # New rows get rowids above the current maximum: index their text in one pass, no id join.
        last = conn.execute("SELECT coalesce(max(rowid), 0) FROM main.models").fetchone()[0]
        conn.executemany(f"INSERT INTO main.models {values}", [new[i] for i in sorted(new)])  # id order
        cols_fts = ", ".join(FTS_COLUMNS)
        conn.execute(f"INSERT INTO main.models_fts (rowid, {cols_fts}) SELECT rowid, {cols_fts} "
                     "FROM main.models WHERE rowid > ?", [last])
        return summary

    @staticmethod
    def _fts_sync(conn: sqlite3.Connection, action: str) -> None:
        """Remove (before an upsert) or add (after it) the full-text rows of the ids in temp._changed."""
        cols = ", ".join(FTS_COLUMNS)
        src = ", ".join(f"m.{c}" for c in FTS_COLUMNS)
        join = "FROM main.models m JOIN temp._changed c ON c.id = m.id"
        if action == "delete":
            conn.execute(f"INSERT INTO main.models_fts (models_fts, rowid, {cols}) SELECT 'delete', m.rowid, {src} {join}")
        else:
            conn.execute(f"INSERT INTO main.models_fts (rowid, {cols}) SELECT m.rowid, {src} {join}")

    def index(
        self,
        source: str,
        items: Iterable[Any],
        *,
        options: dict[str, Any] | None = None,
        indexed_at: str | None = None,
        allow_shadow: bool = True,
    ) -> IndexSummary:
        """Run one index: read everything from the source first (network, files), then write it all in
        one transaction, so an interrupted or failed run leaves the previous state intact."""
        from zoo.sources import Failed, Unchanged

        t0 = time.perf_counter()
        summary = IndexSummary(source=source)
        started = indexed_at or utcnow()
        records: list[ModelRecord] = []
        for item in items:
            if isinstance(item, Unchanged):
                summary.unchanged += 1
            elif isinstance(item, Failed):
                summary.failed += 1
                summary.failures.append((item.id, item.reason))
            else:
                records.append(item)
        if not allow_shadow:
            self._check_collisions(records)
        with self.transaction() as conn:
            self.write_records(records, conn=conn, indexed_at=indexed_at, summary=summary)
            cur = conn.execute(
                "INSERT INTO main.index_runs (source, options, started_at, finished_at, added, updated, unchanged,"
                " failed, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [source, json.dumps(options or {}, sort_keys=True, default=str), started, indexed_at or utcnow(),
                 summary.added, summary.updated, summary.unchanged, summary.failed, "ok"],
            )
            summary.run_id = cur.lastrowid
        summary.seconds = time.perf_counter() - t0
        return summary

    def _check_collisions(self, records: list[ModelRecord]) -> None:
        from zoo.errors import IdCollision

        if self.catalog_path is None:
            return
        for chunk, marks in in_chunks([r.id for r in records]):
            taken = [r[0] for r in self.conn.execute(f"SELECT id FROM catalog.models WHERE id IN ({marks})", chunk)]
            if taken:
                raise IdCollision(
                    f"{taken[0]} is already a catalog model; give the local model another id with --id NAME."
                )

    def set_meta(self, conn: sqlite3.Connection, values: dict[str, str]) -> None:
        conn.executemany(
            "INSERT INTO main.meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            list(values.items()),
        )

    def remove(self, model_id: str) -> bool:
        mid = str(ModelId.parse(model_id))
        with self.transaction() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS _changed (id TEXT PRIMARY KEY)")
            conn.execute("INSERT OR IGNORE INTO temp._changed (id) VALUES (?)", [mid])
            self._fts_sync(conn, "delete")
            conn.execute("DELETE FROM temp._changed")
            cur = conn.execute("DELETE FROM main.models WHERE id = ?", [mid])
        return cur.rowcount > 0
