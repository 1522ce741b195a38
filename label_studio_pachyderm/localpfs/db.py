"""The SQLite database holding projects, repos, branches, commits and file trees.

One writer connection, guarded by a lock, makes every change; readers take a connection
from a small pool and read inside a transaction, so a listing that streams for a while
sees one consistent state while writers carry on (WAL mode).

File trees are stored per commit as changes against the parent (table ``changes``: the
path with its new content digest, or a NULL digest for a deletion). Reading a tree merges
the change layers of the commit and its ancestors. To keep that chain short, a finished
commit far from the last full copy gets one (table ``snapshots``) — see ``tree.py``.
Small file contents are kept here too (table ``small_blobs``) — see ``blobs.py``.
Open transactions are kept here too (table ``transactions``) — see ``transactions.py``.
So is commit metadata (table ``commit_metadata``) — see ``metadata.py``.

A table added later is created with ``IF NOT EXISTS`` when a server opens the database, so a data
directory written by an older localpfs gains it on the next start and keeps its schema version.
"""
from __future__ import annotations

import os
import queue
import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator

SCHEMA_VERSION = '1'

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects(
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS repos(
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    UNIQUE(project, name));
CREATE TABLE IF NOT EXISTS commits(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    repo_id INTEGER NOT NULL,
    branch TEXT,
    parent_seq INTEGER,
    origin INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL,
    error TEXT NOT NULL DEFAULT '',
    size INTEGER,
    snapshot INTEGER NOT NULL DEFAULT 0,
    UNIQUE(repo_id, id));
CREATE INDEX IF NOT EXISTS commits_by_parent ON commits(parent_seq);
CREATE INDEX IF NOT EXISTS commits_by_id ON commits(id);
CREATE TABLE IF NOT EXISTS branches(
    repo_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY(repo_id, name));
CREATE INDEX IF NOT EXISTS branches_by_head ON branches(head_seq);
CREATE TABLE IF NOT EXISTS changes(
    commit_seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    blob BLOB,
    size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(commit_seq, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS small_blobs(
    digest BLOB PRIMARY KEY,
    data BLOB NOT NULL);
-- The datum tag of a path an open commit wrote under a tag other than pachd's "default",
-- and the first datum clash of an open commit: pachd fails the commit at finish.
CREATE TABLE IF NOT EXISTS datums(
    commit_seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    datum TEXT NOT NULL,
    PRIMARY KEY(commit_seq, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_errors(
    commit_seq INTEGER PRIMARY KEY,
    message TEXT NOT NULL);
-- Branch provenance (see provenance.py): direct edges only.
CREATE TABLE IF NOT EXISTS branch_provenance(
    repo_id INTEGER NOT NULL,
    branch TEXT NOT NULL,
    prov_repo_id INTEGER NOT NULL,
    prov_branch TEXT NOT NULL,
    PRIMARY KEY(repo_id, branch, prov_repo_id, prov_branch)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS branch_subvenance ON branch_provenance(prov_repo_id, prov_branch);
CREATE TABLE IF NOT EXISTS commit_provenance(
    commit_seq INTEGER NOT NULL,
    prov_seq INTEGER NOT NULL,
    PRIMARY KEY(commit_seq, prov_seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS commit_subvenance ON commit_provenance(prov_seq);
CREATE TABLE IF NOT EXISTS snapshots(
    commit_seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    blob BLOB NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY(commit_seq, path)) WITHOUT ROWID;
-- Open transactions (see transactions.py): each one's TransactionInfo message, as pachd
-- keeps it in its database; ``seq`` keeps the order they were started in.
CREATE TABLE IF NOT EXISTS transactions(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    info BLOB NOT NULL);
-- Commit metadata (see metadata.py): pachd's CommitInfo.metadata map, one row per key. The
-- trigger forgets a commit's keys with the commit, whichever path drops, squashes or deletes it.
CREATE TABLE IF NOT EXISTS commit_metadata(
    commit_seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY(commit_seq, key)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS commit_metadata_forgotten AFTER DELETE ON commits BEGIN
    DELETE FROM commit_metadata WHERE commit_seq = OLD.seq;
END;
"""


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are opened explicitly (BEGIN / BEGIN IMMEDIATE),
    # never implicitly by the sqlite3 module. check_same_thread=False: a connection is
    # handed between gRPC worker threads, but only ever used by one at a time.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('PRAGMA synchronous=NORMAL')
    conn.execute('PRAGMA temp_store=MEMORY')
    conn.execute('PRAGMA cache_size=-16000')
    return conn


class Database:
    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, 'localpfs.sqlite3')
        self._writer = _connect(self.path)
        self._write_lock = threading.RLock()
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        self._writer.executescript(_SCHEMA)
        row = self._writer.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._writer.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise RuntimeError(f'{self.path} has schema version {row[0]}; this localpfs reads version {SCHEMA_VERSION}')

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; all writes of the process are serialised through it."""
        with self._write_lock:
            conn = self._writer
            if conn.in_transaction:  # nested use from the same thread joins the outer one
                yield conn
                return
            conn.execute('BEGIN IMMEDIATE')
            try:
                yield conn
            except BaseException:
                conn.execute('ROLLBACK')
                raise
            conn.execute('COMMIT')

    @property
    def write_lock(self) -> threading.RLock:
        return self._write_lock

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state."""
        conn = self._acquire_reader()
        try:
            conn.execute('BEGIN')
            yield conn
        finally:
            try:
                if conn.in_transaction:
                    conn.execute('ROLLBACK')
            finally:
                self._readers.put(conn)

    def _acquire_reader(self) -> sqlite3.Connection:
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            conn = _connect(self.path)
            with self._pool_lock:
                self._all_readers.append(conn)
            return conn

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._writer.close()
        with self._pool_lock:
            for conn in self._all_readers:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # still used by a stream being torn down; closed with it
