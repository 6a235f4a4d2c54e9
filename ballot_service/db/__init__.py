"""Engine and sessions: SQLite's single writer queue, read and write phases, bulk inserts. The
declarative base and the clocks are in db/base.py."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ballot_service.config import private_dir, private_file
from ballot_service.db import postgres, wal
from ballot_service.db.base import (  # noqa: F401  (the names the package has always offered)
    NAMING_CONVENTION,
    Base,
    UTCDateTime,
    database_now,
    db_now,
    utcnow,
)
from ballot_service.errors import NotFound

# Connection execution option naming how a SQLite transaction begins (see make_engine).
SQLITE_BEGIN = "ballot_sqlite_begin"
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
WRITE_LOCK_TIMEOUT_S = 30  # the same patience as SQLite's busy_timeout below


class _WriterQueue:
    """Where a server's writers wait their turn for SQLite's write lock.

    SQLite's own wait for the lock polls: a waiter sleeps 1, 2, 5, … up to 100 ms between
    tries, so under load a writer sleeps long after the lock was freed, and the longest
    waiters lose to newcomers (seconds at the tail, and a 30 s timeout now and then). Here
    a writer first takes a threading.Lock (the threads of one process) and then an exclusive
    flock() on a file beside the database (the processes, e.g. the server's workers); both wake
    a waiter the moment the lock is released, and only the head of the queue asks SQLite,
    which stays the one authority (programs that do not queue here still meet it there).
    The flock is released by the kernel if its process dies."""

    def __init__(self, lock_path: str | None):
        self._threads = threading.Lock()
        self._path = lock_path
        self._fd: int | None = None
        self._pid: int | None = None

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # after a fork, an own open file: flock is per open file
            self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd

    def acquire(self) -> None:
        if not self._threads.acquire(timeout=WRITE_LOCK_TIMEOUT_S):
            raise sqlite3.OperationalError(f"database is locked (no write lock within {WRITE_LOCK_TIMEOUT_S}s)")
        if self._path is not None:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)  # waits while another process writes
            except BaseException:
                self._threads.release()
                raise

    def release(self) -> None:
        try:
            if self._path is not None:
                fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()


_writer_queues: dict[str | None, _WriterQueue] = {}
_writer_queues_lock = threading.Lock()


def _writer_queue(db_file: str | None) -> _WriterQueue:
    """One queue per database file and process, shared by all its engines: two engines of
    one process on one file then queue on the same threading.Lock (which has a timeout)
    instead of meeting at the flock (which has none)."""
    key = os.path.realpath(db_file) if db_file and db_file != ":memory:" else None
    with _writer_queues_lock:
        queue = _writer_queues.get(key) if key is not None else None
        if queue is None:
            queue = _WriterQueue(f"{key}.writer-lock" if key is not None else None)
            if key is not None:
                _writer_queues[key] = queue
        return queue


class _QueuedConnection(sqlite3.Connection):
    """A pysqlite connection that takes its place in the engine's writer queue before
    BEGIN IMMEDIATE (make_engine) and leaves it when its transaction ends."""

    writer_queue: _WriterQueue | None = None
    in_queue = False
    checkpoint_on_commit = False  # set by checkpoint_wal_after_commit for this transaction

    def commit(self):
        try:
            super().commit()
            if self.checkpoint_on_commit:  # still in the writer queue: no other commit comes between
                self.checkpoint_on_commit = False
                wal.truncate_wal(self, WRITE_LOCK_TIMEOUT_S * 1000)
        finally:
            self.leave_queue()

    def rollback(self):
        self.checkpoint_on_commit = False
        try:
            super().rollback()
        finally:
            self.leave_queue()

    def close(self):
        try:
            super().close()
        finally:
            self.leave_queue()

    def enter_queue(self) -> None:
        if self.writer_queue is not None and not self.in_queue:
            self.writer_queue.acquire()
            self.in_queue = True

    def leave_queue(self) -> None:
        if self.in_queue:
            self.in_queue = False
            self.writer_queue.release()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            if not Path(path).parent.exists():
                private_dir(Path(path).parent)  # a folder made for the database: 0700
            private_file(Path(path))  # the database and its WAL: 0600
        # One connection per server thread at most (serve --threads is at most 256), so a
        # thread never waits for a pooled connection while the database itself is idle; up
        # to 64 stay open, since opening one (PRAGMAs, a cold statement cache) is not free.
        engine = create_engine(url, connect_args={"timeout": WRITE_LOCK_TIMEOUT_S, "factory": _QueuedConnection},
                               pool_size=64, max_overflow=192)
        writer_queue = _writer_queue(make_url(url).database)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets readers run beside the writer; FULL sync makes every
            # acknowledged commit survive a crash (a receipt means the vote is on disk).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Deleted content is overwritten, not left in free space: a round's private
            # blind-signing key, cleared at close (domain/issuance.py), leaves no copy in the page.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute(f"PRAGMA busy_timeout={WRITE_LOCK_TIMEOUT_S * 1000}")
            # A statement changing many rows (a batch of casts is one INSERT) keeps a statement
            # journal, which would otherwise spill to a temp file created and unlinked per batch
            # while the write lock is held. Only the statement's own undo lives there;
            # durability is the WAL's.
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; we issue BEGIN ourselves.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None
            if isinstance(dbapi_conn, _QueuedConnection):
                dbapi_conn.writer_queue = writer_queue

        # Every transaction takes the write lock at BEGIN (IMMEDIATE), so concurrent writers
        # queue rather than fail on upgrading a read snapshot: the safe default for any code
        # that reads and then writes. A declared read phase (read_phase below) begins
        # DEFERRED instead: a WAL snapshot that neither takes nor waits for the write lock.
        @event.listens_for(engine, "begin")
        def _begin(conn):
            mode = conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
            if mode not in ("IMMEDIATE", "DEFERRED"):
                raise ValueError(f"{SQLITE_BEGIN} must be IMMEDIATE or DEFERRED, not {mode!r}")
            dbapi_conn = conn.connection.dbapi_connection
            queued = mode == "IMMEDIATE" and isinstance(dbapi_conn, _QueuedConnection)
            if queued:
                dbapi_conn.enter_queue()
            try:
                # Straight to the driver: this runs for every transaction, and the
                # Connection.exec_driver_sql path costs more than the statement itself.
                dbapi_conn.execute("BEGIN " + mode)
            except BaseException:
                if queued:
                    dbapi_conn.leave_queue()
                raise

        # A read phase is read-only: a write there would try to upgrade a possibly stale
        # snapshot (SQLITE_BUSY_SNAPSHOT under load). Fail loudly and at once instead.
        @event.listens_for(engine, "before_cursor_execute")
        def _read_phase_is_read_only(conn, _cursor, statement, _params, _context, _many):
            if conn.get_execution_options().get(SQLITE_BEGIN) == "DEFERRED" and \
                    statement.lstrip()[:7].upper().startswith(_WRITE_VERBS):
                raise _write_in_read_phase()

        return engine
    if make_url(url).get_backend_name() == "postgresql":
        engine = create_engine(url, pool_size=10, max_overflow=20)
        postgres.configure(engine)  # durable commits; idle connections checked (db/postgres.py)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _write_in_read_phase() -> RuntimeError:
    return RuntimeError("a write inside a read phase (ballot_service.db.read_phase): "
                        "call begin_write(db) before writing")


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def _is_sqlite(db: Session) -> bool:
    bind = db.get_bind()
    return bind.dialect.name == "sqlite"


@contextmanager
def read_phase(db: Session):
    """Run the block's reads without SQLite's write lock, then end that read transaction.

    SQLite: when the session has no transaction yet, the block runs in a DEFERRED transaction
    (one WAL snapshot; it neither takes nor waits for the write lock) which is ended when the
    block exits, so whatever the request does next begins as usual (IMMEDIATE). The block
    must not write (a write raises RuntimeError). Objects loaded in it stay loaded (the
    service's sessions do not expire on commit) but may be stale by the time the request
    writes: re-read with populate_existing, under the write lock, whatever a decision
    depends on. If the session is already in a transaction the block simply joins it.

    PostgreSQL (MVCC: readers take no lock that blocks writers): the block joins or begins
    the request's one transaction, exactly as without it.
    """
    if not _is_sqlite(db) or db.in_transaction():
        yield
        return
    db.connection(execution_options={SQLITE_BEGIN: "DEFERRED"})
    try:
        yield
    except BaseException:
        if db.in_transaction():
            db.rollback()
        raise
    if db.in_transaction():
        if db.new or db.dirty or db.deleted:
            db.rollback()
            raise RuntimeError("pending changes at the end of a read phase")
        # Nothing was written: commit just ends the snapshot and keeps loaded objects.
        db.commit()


def in_write_transaction(db: Session) -> bool:
    """The session is in a transaction that is not a read phase (on SQLite: it holds the write lock)."""
    return db.in_transaction() and \
        db.connection().get_execution_options().get(SQLITE_BEGIN) != "DEFERRED"


def begin_write(db: Session) -> None:
    """Take the write lock now (SQLite: BEGIN IMMEDIATE), unless the session already holds it.
    On PostgreSQL a no-op: row locks (FOR UPDATE / FOR SHARE) do the job there."""
    if not _is_sqlite(db) or in_write_transaction(db):
        return
    if db.in_transaction():
        db.commit()  # a read snapshot (nothing written: writes there raise) ends here
    db.connection()  # autobegins: BEGIN IMMEDIATE


_insert_plans: dict = {}  # (table, columns) -> SQLite's (bind processors, SQL head, one row's placeholders)
_MAX_PARAMS = 999  # SQLite's smallest SQLITE_MAX_VARIABLE_NUMBER (newer builds allow 32,766)


def get_or_not_found(db: Session, model, key, *, where: str, en: str, zh: str):
    """The `model` row with primary key `key`, or NotFound(en, where, zh)."""
    row = db.get(model, key)
    if row is None:
        raise NotFound(en, where=where, zh=zh)
    return row


def checkpoint_wal_after_commit(db: Session) -> None:
    """SQLite: checkpoint and truncate the WAL once the session's transaction commits (db/wal.py)."""
    if not _is_sqlite(db):
        return
    if not in_write_transaction(db):
        begin_write(db)  # the checkpoint follows this session's next commit, in the writer queue
    raw = db.connection().connection.dbapi_connection
    if isinstance(raw, _QueuedConnection):
        raw.checkpoint_on_commit = True


def insert_rows(conn, table, rows: list[dict]) -> None:
    """INSERT `rows` (dicts with the same keys) on the connection's transaction. SQLite: one
    multi-row statement, sent straight to the driver; elsewhere SQLAlchemy's executemany.

    For cast intake's batches, stored while the write lock is held: executemany steps SQLite
    once per row, and each step gives up the GIL, which the request threads busy checking
    signatures then keep for up to the switch interval (5 ms), all while the lock is held;
    one statement steps once. Values go through the columns' own SQLAlchemy types (JSON, UTC
    datetimes), as conn.execute(insert(table), rows) would store them."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.execute(table.insert(), rows)
        return
    if conn.get_execution_options().get(SQLITE_BEGIN) == "DEFERRED":  # as _read_phase_is_read_only
        raise _write_in_read_phase()
    cols = tuple(rows[0])
    key = (table.name, cols)
    plan = _insert_plans.get(key)
    if plan is None:
        quote = dialect.identifier_preparer.quote
        procs = tuple(table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in cols)
        head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in cols)}) VALUES "
        plan = _insert_plans[key] = (procs, head, "(" + ", ".join("?" * len(cols)) + ")")
    procs, head, one = plan
    driver = conn.connection.dbapi_connection
    per_statement = max(1, _MAX_PARAMS // len(cols))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        params = [p(r[c]) if p is not None else r[c] for r in chunk for c, p in zip(cols, procs)]
        driver.execute(head + ", ".join([one] * len(chunk)), params)


def make_read_engine(main: Engine) -> Engine:
    """An engine for readers that poll beside the casts (the presiding screen). PostgreSQL:
    the main engine (MVCC readers do not block writers). SQLite: a second engine on the same
    file whose transactions begin DEFERRED (a WAL snapshot that never waits for the casts'
    writer, where the main engine begins IMMEDIATE) and are read-only."""
    if main.dialect.name != "sqlite":
        return main
    # Each poll and each state build holds a connection for a few milliseconds only; the pool
    # is sized like the threads of a worker so a reader never waits for a connection.
    eng = create_engine(main.url, connect_args={"timeout": 30}, pool_size=4, max_overflow=252)

    @event.listens_for(eng, "connect")
    def _pragmas(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(eng, "begin")
    def _begin_deferred(conn):
        conn.exec_driver_sql("BEGIN")

    return eng
