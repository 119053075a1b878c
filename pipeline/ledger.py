"""The run ledger: durable state of every run, chunk, import job and user outcome (SQLite).

WAL journal, ``synchronous=FULL`` and autocommit: each state change is on disk before the load stage
takes its next side effect (create a job, upload, start), so a run killed at any point resumes from
what the ledger says plus what Cognito says, and never imports a chunk twice.

Two runs against the same account and region must not collide (one import job per account, fact 27):
``Ledger.open(..., lock_key=...)`` takes an ``fcntl.flock`` on a lock file named after the key in one
directory per OS user (``lock_dir``), not beside the ledger, so that runs from two checkouts or two
runs directories block each other too. The OS releases it when the holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import LedgerError, RunLockedError
from pipeline.reasons import IN_POOL

# "failed": its job ended Failed and was harvested; the chunk is not done, so a rerun retries it.
CHUNK_STATES = ("planned", "job_created", "uploaded", "started", "finished", "harvested", "verified",
                "failed")
DONE_STATES = ("harvested", "verified")
# SQLITE_CORRUPT, SQLITE_NOTADB: the file itself is damaged. Any other error opening it (SQLITE_FULL,
# SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN...) leaves it whole: moved aside, its state would be lost.
_DAMAGED = (11, 26)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, target TEXT NOT NULL, region TEXT NOT NULL,
    pool_id TEXT NOT NULL, started REAL NOT NULL, finished REAL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    tenant TEXT NOT NULL, pool_id TEXT NOT NULL, sha256 TEXT NOT NULL, name TEXT NOT NULL,
    rows INTEGER NOT NULL, state TEXT NOT NULL, run_id TEXT, job_id TEXT, header TEXT,
    updated REAL NOT NULL, PRIMARY KEY (tenant, pool_id, sha256));
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, job_name TEXT NOT NULL, tenant TEXT NOT NULL, pool_id TEXT NOT NULL,
    chunk_sha256 TEXT NOT NULL, chunk TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0, imported INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, completion_message TEXT,
    created_at REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    tenant TEXT NOT NULL, pool_id TEXT NOT NULL, legacy_id TEXT NOT NULL, outcome TEXT NOT NULL,
    message TEXT, job_id TEXT, line INTEGER, username TEXT, sub TEXT, confirmed INTEGER NOT NULL DEFAULT 0,
    attrs_digest TEXT, PRIMARY KEY (tenant, pool_id, legacy_id));
CREATE INDEX IF NOT EXISTS outcomes_by_tenant ON outcomes (tenant, outcome);
"""

OUTCOME_COLUMNS = [
    "legacy_id",
    "outcome",
    "message",
    "job_id",
    "line",
    "username",
    "sub",
    "confirmed",
    "attrs_digest",
]


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    job_name: str
    tenant: str
    pool_id: str
    chunk_sha256: str
    chunk: str
    status: str
    uploaded: bool
    imported: int
    skipped: int
    failed: int
    completion_message: str | None
    created_at: float


class _FileLock:
    """An exclusive, non-blocking ``flock`` whose file names the holder (pid, key, since)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            info: dict[str, Any] = {}
            try:
                info = json.loads(holder) if holder else {}
            except ValueError:
                pass
            since = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"])) if "since" in info else "?"
            )
            raise RunLockedError(
                f"Another migrate run (pid {info.get('pid', '?')}, since {since}) holds the lock for this "
                f"target ({_describe_key(self.key)}); only one import job can run per account and region. "
                f"Wait for it to finish; if that process is gone the lock is already free ({self.path})."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(
                fd,
                json.dumps({"pid": os.getpid(), "key": _describe_key(self.key), "since": time.time()}).encode(
                    "utf-8"
                ),
                0,
            )
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)   # the lock goes with it
            raise self._unwritable(exc) from None
        self._fd = fd

    def _unwritable(self, exc: OSError) -> LedgerError:
        """The lock file cannot be made or written (its disk is full, say): the lock directory is named,
        which is not the runs directory's disk."""
        return LedgerError(f"The run lock {self.path} cannot be written ({exc.strerror or exc}): free space on "
                           "its disk, or set MIGRATE_LOCK_DIR to a directory of yours that has room.")

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_dir() -> Path:
    """Where the account locks live: ``MIGRATE_LOCK_DIR``, else a directory of this OS user under
    ``XDG_RUNTIME_DIR`` or the temp directory, the same whatever the runs directory."""
    configured = os.environ.get("MIGRATE_LOCK_DIR")
    if configured:
        return Path(configured)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = runtime if runtime and os.path.isdir(runtime) else tempfile.gettempdir()
    return Path(base) / f"cognito-migrate-locks-{os.getuid()}"


def _own_directory(path: Path) -> Path:
    """``path``, created 0700 if missing, refused unless it is a real directory of this user: in a
    shared temp directory another user could have made it first and could then unlock our runs."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise LedgerError(f"The lock directory {path} cannot be created ({exc.strerror}): set "
                          "MIGRATE_LOCK_DIR to a directory of yours.") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise LedgerError(f"The lock directory {path} is not a directory that only you can write to: "
                          "remove it, or set MIGRATE_LOCK_DIR to a directory of yours.")
    return path


def _describe_key(key: str) -> str:
    """The lock key without the full account number (messages stay account-free)."""
    parts = key.split(":")
    if parts[0] == "aws" and len(parts) >= 3:
        return f"aws account ...{parts[1][-4:]}, region {parts[-1]}"
    return key


class Ledger:
    """One SQLite ledger file (usually ``runs/ledger.sqlite``), safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # user data: owner only
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _DAMAGED:   # a full disk, a read-only one
                raise LedgerError(
                    f"The run ledger {self.path} cannot be opened ({exc}): its disk may be full, or the file, "
                    f"its directory or its -wal and -shm files not writable by you. Free space or fix that, "
                    "then rerun; keep the file, it holds what earlier runs did.") from None
            raise LedgerError(
                f"The run ledger {self.path} cannot be opened ({exc}). It holds what earlier runs did: "
                "restore it from a backup if you have one; otherwise move it aside and rerun (jobs of "
                "earlier runs are found again by their names in the pool and adopted).") from None
        self._mutex = threading.RLock()
        self._locks: dict[str, tuple[_FileLock, int]] = {}

    @classmethod
    def open(cls, path: Path, lock_key: str | None = None) -> Ledger:
        ledger = cls(path)
        if lock_key:
            try:
                ledger.acquire_lock(lock_key)
            except BaseException:
                ledger.close()
                raise
        return ledger

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for lock, _ in self._locks.values():
            lock.release()
        self._locks.clear()
        self._db.close()

    # ---- the account lock -------------------------------------------------------------------------

    @staticmethod
    def lock_path(key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return _own_directory(lock_dir()) / f"{digest}.lock"

    def acquire_lock(self, key: str) -> None:
        """Take the lock for ``key`` (re-entrant within this ledger); RunLockedError if another holds it."""
        with self._mutex:
            if key in self._locks:
                lock, count = self._locks[key]
                self._locks[key] = (lock, count + 1)
                return
            lock = _FileLock(self.lock_path(key), key)
            lock.acquire()
            self._locks[key] = (lock, 1)

    def release_lock(self, key: str) -> None:
        with self._mutex:
            if key not in self._locks:
                return
            lock, count = self._locks[key]
            if count > 1:
                self._locks[key] = (lock, count - 1)
            else:
                lock.release()
                del self._locks[key]

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        self.acquire_lock(key)
        try:
            yield
        finally:
            self.release_lock(key)

    # ---- plumbing ---------------------------------------------------------------------------------

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._mutex:
            return self._db.execute(sql, tuple(params))

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._mutex:
            cur = self._db.execute(sql, tuple(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:   # a failed COMMIT (disk full) too: never left open
                    self._db.execute("ROLLBACK")
                raise

    # ---- runs -------------------------------------------------------------------------------------

    def start_run(self, run_id: str, tenant: str, target: str, region: str, pool_id: str) -> None:
        self._exec(
            "INSERT INTO runs (run_id, tenant, target, region, pool_id, started, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running')",
            (run_id, tenant, target, region, pool_id, time.time()),
        )

    def finish_run(self, run_id: str, status: str) -> None:
        self._exec("UPDATE runs SET finished = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    def runs(self, tenant: str | None = None) -> list[dict[str, Any]]:
        if tenant is None:
            return self._rows("SELECT * FROM runs ORDER BY started")
        return self._rows("SELECT * FROM runs WHERE tenant = ? ORDER BY started", (tenant,))

    # ---- chunks -----------------------------------------------------------------------------------

    def plan_chunk(
        self,
        tenant: str,
        pool_id: str,
        name: str,
        sha256: str,
        rows: int,
        run_id: str,
        header: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register a chunk (idempotent) and return its row: an existing row keeps its state and job."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO chunks (tenant, pool_id, sha256, name, rows, state, run_id, header, updated) "
                "VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, ?) ON CONFLICT (tenant, pool_id, sha256) DO "
                "UPDATE SET run_id = excluded.run_id, name = excluded.name, "
                "header = COALESCE(excluded.header, chunks.header)",
                (
                    tenant,
                    pool_id,
                    sha256,
                    name,
                    rows,
                    run_id,
                    json.dumps(header) if header else None,
                    time.time(),
                ),
            )
        chunk = self.chunk(tenant, pool_id, sha256)
        assert chunk is not None
        return chunk

    def chunk(self, tenant: str, pool_id: str, sha256: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM chunks WHERE tenant = ? AND pool_id = ? AND sha256 = ?", (tenant, pool_id, sha256)
        )
        return rows[0] if rows else None

    def chunks(self, tenant: str, pool_id: str | None = None) -> list[dict[str, Any]]:
        if pool_id is None:
            return self._rows("SELECT * FROM chunks WHERE tenant = ? ORDER BY name", (tenant,))
        return self._rows(
            "SELECT * FROM chunks WHERE tenant = ? AND pool_id = ? ORDER BY name", (tenant, pool_id)
        )

    def set_chunk_state(
        self, tenant: str, pool_id: str, sha256: str, state: str, job_id: str | None = None
    ) -> None:
        self._exec(*_chunk_state(tenant, pool_id, sha256, state, job_id))

    def chunk_done(self, tenant: str, pool_id: str, sha256: str) -> bool:
        chunk = self.chunk(tenant, pool_id, sha256)
        return chunk is not None and chunk["state"] in DONE_STATES

    # ---- jobs -------------------------------------------------------------------------------------

    def record_job(
        self, job: dict[str, Any], *, tenant: str, chunk: str, chunk_sha256: str, run_id: str | None = None
    ) -> None:
        """Insert or update a job from its UserImportJobType (never stores the pre-signed URL)."""
        now = time.time()
        created = job.get("CreationDate")
        created_at = created.timestamp() if isinstance(created, datetime) else float(created or now)
        self._exec(
            "INSERT INTO jobs (job_id, job_name, tenant, pool_id, chunk_sha256, chunk, run_id, status, "
            "imported, skipped, failed, completion_message, created_at, updated) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, imported = excluded.imported, "
            "skipped = excluded.skipped, failed = excluded.failed, "
            "completion_message = excluded.completion_message, updated = excluded.updated",
            (
                job["JobId"],
                job.get("JobName", ""),
                tenant,
                job.get("UserPoolId", ""),
                chunk_sha256,
                chunk,
                run_id,
                job.get("Status", ""),
                int(job.get("ImportedUsers", 0) or 0),
                int(job.get("SkippedUsers", 0) or 0),
                int(job.get("FailedUsers", 0) or 0),
                job.get("CompletionMessage"),
                created_at,
                now,
            ),
        )

    def mark_uploaded(self, job_id: str) -> None:
        self._exec("UPDATE jobs SET uploaded = 1, updated = ? WHERE job_id = ?", (time.time(), job_id))

    def set_job_status(self, job_id: str, status: str) -> None:
        self._exec("UPDATE jobs SET status = ?, updated = ? WHERE job_id = ?", (status, time.time(), job_id))

    def job(self, job_id: str) -> JobRecord | None:
        rows = self._rows("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self, tenant: str | None = None, chunk_sha256: str | None = None) -> list[JobRecord]:
        sql, params = "SELECT * FROM jobs WHERE 1=1", list[str]()
        if tenant is not None:
            sql, params = sql + " AND tenant = ?", [*params, tenant]
        if chunk_sha256 is not None:
            sql, params = sql + " AND chunk_sha256 = ?", [*params, chunk_sha256]
        return [_job(r) for r in self._rows(sql + " ORDER BY created_at, rowid", params)]

    # ---- outcomes ---------------------------------------------------------------------------------

    def record_outcomes(self, tenant: str, pool_id: str, frame: pd.DataFrame,
                        chunk_state: tuple[str, str, str | None] | None = None) -> None:
        """Upsert one outcome per legacy id, in one transaction.

        A user already recorded as imported keeps that outcome when a later job of ours reports it as
        skipped (the later job met the user the earlier job created, e.g. after a stopped job).
        ``chunk_state`` (sha256, state, job id): the harvested chunk's new state, set in the same
        transaction. Apart, a kill between the two left a chunk with its outcomes but not done, and
        every rerun sent the users that had failed again, in a new job, as the chunk's remainder.
        """
        data = frame.reindex(columns=OUTCOME_COLUMNS)
        for c in ("line", "confirmed"):
            data[c] = pd.to_numeric(data[c]).astype("Int64")
        data = data.astype(object).where(data.notna(), None)
        rows = [(tenant, pool_id, *r) for r in data.itertuples(index=False, name=None)]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO outcomes (tenant, pool_id, legacy_id, outcome, message, job_id, line, username, "
                "sub, confirmed, attrs_digest) VALUES (?,?,?,?,?,?,?,?,?,COALESCE(?, 0),?) "
                "ON CONFLICT (tenant, pool_id, legacy_id) DO UPDATE SET "
                "outcome = excluded.outcome, message = excluded.message, job_id = excluded.job_id, "
                "line = excluded.line, username = excluded.username, "
                "sub = COALESCE(excluded.sub, outcomes.sub), confirmed = excluded.confirmed, "
                "attrs_digest = COALESCE(excluded.attrs_digest, outcomes.attrs_digest) "
                "WHERE NOT (outcomes.outcome = 'imported' AND excluded.outcome = 'skipped')",
                rows,
            )
            if chunk_state is not None:
                db.execute(*_chunk_state(tenant, pool_id, *chunk_state))

    def outcomes(self, tenant: str, pool_id: str | None = None) -> pd.DataFrame:
        sql = "SELECT pool_id, " + ", ".join(OUTCOME_COLUMNS) + " FROM outcomes WHERE tenant = ?"
        params: list[Any] = [tenant]
        if pool_id is not None:
            sql, params = sql + " AND pool_id = ?", [*params, pool_id]
        with self._mutex:
            frame = pd.read_sql_query(sql + " ORDER BY rowid", self._db, params=params)
        return frame

    def in_pool_ids(self, tenant: str, pool_id: str, confirmed_only: bool = False) -> pd.Index:
        """The legacy ids recorded as imported or skipped in ``pool_id``: the users the pool holds.

        ``confirmed_only``: only those a check against the pool (a harvest's or a reconciliation's)
        confirmed there; read before a run loads, they are the users an earlier run settled.
        """
        sql = "SELECT legacy_id FROM outcomes WHERE tenant = ? AND pool_id = ? AND outcome IN (?, ?)"
        with self._mutex:
            rows = self._db.execute(sql + (" AND confirmed = 1" if confirmed_only else ""),
                                    (tenant, pool_id, *IN_POOL)).fetchall()
        return pd.Index([str(r[0]) for r in rows], dtype=object)

    def confirm_outcomes(self, tenant: str, pool_id: str, frame: pd.DataFrame) -> None:
        """Store ``confirmed`` and ``sub`` per legacy id after a check against the pool."""
        rows = [
            (int(c), s, tenant, pool_id, lid)
            for lid, c, s in frame[["legacy_id", "confirmed", "sub"]]
            .astype(object)
            .where(frame[["legacy_id", "confirmed", "sub"]].notna(), None)
            .itertuples(index=False, name=None)
        ]
        with self._transaction() as db:
            db.executemany(
                "UPDATE outcomes SET confirmed = ?, sub = COALESCE(?, sub) WHERE tenant = ? AND "
                "pool_id = ? AND legacy_id = ?",
                rows,
            )


def _job(row: dict[str, Any]) -> JobRecord:
    return JobRecord(
        job_id=row["job_id"],
        job_name=row["job_name"],
        tenant=row["tenant"],
        pool_id=row["pool_id"],
        chunk_sha256=row["chunk_sha256"],
        chunk=row["chunk"],
        status=row["status"],
        uploaded=bool(row["uploaded"]),
        imported=row["imported"],
        skipped=row["skipped"],
        failed=row["failed"],
        completion_message=row["completion_message"],
        created_at=row["created_at"],
    )


def _chunk_state(tenant: str, pool_id: str, sha256: str, state: str,
                 job_id: str | None = None) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE that sets a chunk's state (and its job, when given)."""
    if state not in CHUNK_STATES:
        raise ValueError(f"unknown chunk state {state!r}")
    if job_id is None:
        return ("UPDATE chunks SET state = ?, updated = ? WHERE tenant = ? AND pool_id = ? AND sha256 = ?",
                (state, time.time(), tenant, pool_id, sha256))
    return ("UPDATE chunks SET state = ?, job_id = ?, updated = ? WHERE tenant = ? AND pool_id = ? "
            "AND sha256 = ?", (state, job_id, time.time(), tenant, pool_id, sha256))
