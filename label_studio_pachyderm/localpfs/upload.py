"""One ModifyFile stream: stage its puts, deletes and copies, then apply them at once.

pachd turns a ModifyFile stream into one file set that is added to the commit only when
the stream ends cleanly. The same here: contents are received into memory (small ones,
up to a per-stream budget) or temporary files while the stream runs, the changes wait in
this object, and ``commit()`` applies all of them in one database transaction. A stream
that breaks off calls ``abort()`` and leaves no trace.

Within a stream, operations apply in order, as in pachd's unordered writer:
  * ``add_file`` appends to the file's current content (what the commit holds, plus what
    this stream already wrote). The sdk sends ``delete_file`` before a put that should
    overwrite, then the content in chunks, so a put replaces and its chunks concatenate.
  * ``delete_file`` removes a file, or a directory with everything below it.
  * ``copy_file`` copies a file or a directory (from any commit or repo) under a new path;
    with ``append`` the source is added to the end of an existing destination.

Where a stream writes:
  * to an open commit named by id, or to the open head of the branch it names;
  * to a branch whose head is finished (or that does not exist yet): into a new commit on
    that branch, started and finished when the stream ends, as pachd's one-off writes do;
  * to a finished commit named by id: refused with FAILED_PRECONDITION.
"""
from __future__ import annotations

import io
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional

from . import errors, names, paths, tree
from .blobs import INLINE_LIMIT, BlobWriter, unlink_quietly
from .store import CommitRef, Store
from .tree import Tree

# Small contents of one stream are kept in memory up to this total, then spilled to disk.
MEMORY_BUDGET = 32 * 1024 * 1024
# The datum tag of a write that names none (pachd's fileset.DefaultFileDatum).
DEFAULT_DATUM = 'default'


def datum_clash(path: str, one: str, other: str) -> str:
    """pachd's message for a path written under two datum tags in one commit
    (``CheckIndex`` in src/internal/storage/fileset/validator.go; entries sort by datum)."""
    first, second = sorted((one, other))
    return f'duplicate path output by different datums ({path} from {first} and {path} from {second})'


@dataclass
class _OpenWrite:
    raw: str  # the path as the client sent it, to recognise its next chunk cheaply
    clean: str
    writer: BlobWriter
    datum: str = DEFAULT_DATUM


@dataclass
class _Staged:
    digest: Optional[bytes]  # None: the path is deleted
    size: int = 0
    data: Optional[bytes] = None  # small content received by this stream
    tmp_path: Optional[str] = None  # content received by this stream, on disk


class Upload:
    def __init__(self, store: Store, ref: CommitRef):
        self._store = store
        self._changes: dict[str, _Staged] = {}
        self._absent: set[str] = set()  # paths known not to exist (saves lookups)
        self._writer: Optional[_OpenWrite] = None
        self._memory = 0
        self._datums: dict[str, str] = {}  # path -> datum tag, for paths this stream wrote
        self._clash: Optional[str] = None  # the first datum clash: the commit will fail
        self._target_seq: Optional[int] = None  # an open commit to write into
        self._branch: Optional[str] = None  # or: the branch of a one-off commit
        self._repo_key = ref.repo_key
        # One read transaction serves all lookups of the stream: the tree it writes over
        # is read as it was when the stream started, like pachd's parent file set.
        self._resources = ExitStack()
        try:
            self._conn = self._resources.enter_context(store.db.read())
            self._resolve_target(ref)
        except BaseException:
            self._resources.close()
            raise

    def _resolve_target(self, ref: CommitRef) -> None:
        store, conn = self._store, self._conn
        self._repo_id = store.repo_row(conn, ref.project, ref.repo)[0]
        branch = _plain_branch(ref)
        if branch is None:
            row, _ = store.resolve(conn, ref)
            if row.finished is not None:
                raise errors.commit_finished(row.repo_key, row.id)
            self._target_seq = row.seq
            self._layers = tree.layers_for(conn, row.seq)
            return
        names.validate_name(branch)
        head = conn.execute('SELECT head_seq FROM branches WHERE repo_id = ? AND name = ?',
                            (self._repo_id, branch)).fetchone()
        head_row = store.commit_by_seq(conn, head[0]) if head else None
        if head_row is not None and head_row.finished is None:
            self._target_seq = head_row.seq
            self._layers = tree.layers_for(conn, head_row.seq)
            return
        self._branch = branch
        base = head_row
        while base is not None and base.error:  # the new commit will build on this one
            base = store.commit_by_seq(conn, base.parent_seq) if base.parent_seq else None
        self._layers = tree.layers_for(conn, base.seq) if base else []

    # -- what the stream sees --------------------------------------------------------------
    def _current(self, path: str) -> Optional[_Staged]:
        staged = self._changes.get(path)
        if staged is not None:
            return staged if staged.digest is not None else None
        if path in self._absent:
            return None
        row = Tree(self._conn, self._layers).file(path)
        return _Staged(row[1], row[2]) if row else None

    def _open_content(self, staged: _Staged):
        if staged.data is not None:
            return io.BytesIO(staged.data)
        if staged.tmp_path is not None:
            return open(staged.tmp_path, 'rb')
        return self._store.open_content(self._conn, staged.digest, staged.size)

    def _stage(self, path: str, staged: _Staged) -> None:
        previous = self._changes.get(path)
        if previous is not None:
            self._forget(previous)
        if staged.data is not None:
            if self._memory + len(staged.data) > MEMORY_BUDGET:
                staged.tmp_path, staged.data = self._store.blobs.spill(staged.data), None
            else:
                self._memory += len(staged.data)
        self._changes[path] = staged
        self._absent.discard(path)

    def _forget(self, staged: _Staged) -> None:
        if staged.tmp_path:
            unlink_quietly(staged.tmp_path)
        if staged.data is not None:
            self._memory -= len(staged.data)

    def _stage_written(self, path: str, writer: BlobWriter) -> None:
        digest, size = writer.finish()
        self._stage(path, _Staged(digest, size, writer.data, writer.tmp_path))

    # -- operations ------------------------------------------------------------------------
    def add(self, path: str, data, datum: str = '') -> None:
        datum = datum or DEFAULT_DATUM
        current = self._writer
        if current is not None and current.raw == path and current.datum == datum:  # the next chunk
            current.writer.write(data)
            return
        clean = paths.validate_for_write(path)
        if current is not None and current.clean == clean and current.datum == datum:
            current.writer.write(data)
            return
        self._flush_writer()
        self._note_datum(clean, datum)
        writer = self._store.blobs.writer()
        try:
            existing = self._current(clean)
            if existing is not None:
                with self._open_content(existing) as handle:
                    writer.write_from(handle)
            writer.write(data)
        except BaseException:
            writer.discard()
            raise
        self._writer = _OpenWrite(path, clean, writer, datum)

    def _note_datum(self, path: str, datum: str) -> None:
        prior = self._datums.get(path)
        if prior is None and self._target_seq is not None and path not in self._changes:
            # written to this open commit by an earlier stream?
            row = self._conn.execute('SELECT blob IS NOT NULL FROM changes WHERE commit_seq = ? AND path = ?',
                                     (self._target_seq, path)).fetchone()
            if row is not None and row[0]:
                tagged = self._conn.execute('SELECT datum FROM datums WHERE commit_seq = ? AND path = ?',
                                            (self._target_seq, path)).fetchone()
                prior = tagged[0] if tagged else DEFAULT_DATUM
        if prior is not None and prior != datum and self._clash is None:
            self._clash = datum_clash(path, prior, datum)
        self._datums[path] = datum

    def _flush_writer(self) -> None:
        current, self._writer = self._writer, None
        if current is not None:
            self._stage_written(current.clean, current.writer)

    def delete(self, path: str) -> None:
        """Delete a file, or with a trailing slash a directory and everything below it.

        pachd's rule (``UnorderedWriter.Delete`` in src/internal/storage/fileset,
        pachyderm 2.12): only a path ending in ``/`` names a directory, so deleting
        ``/foo`` removes the file ``/foo`` and leaves ``/foo/bar`` alone (the sdk's
        overwriting put sends exactly that delete before the new content).
        """
        self._flush_writer()
        target = paths.clean(path)
        tree_ = Tree(self._conn, self._layers)
        if target == '/' or path.endswith('/'):
            low, high = paths.subtree_range(target)
            doomed = [p for p in self._changes if target == '/' or low <= p < high]
            existing = [row[0] for row in (tree_.files() if target == '/' else tree_.files(low, high))]
        else:
            doomed = [target] if target in self._changes else []
            existing = [target] if tree_.file(target) is not None else []
        for gone in doomed + existing:
            self._stage(gone, _Staged(None))
            self._datums.pop(gone, None)
        if target != '/' and not path.endswith('/'):
            self._absent.add(target)

    def copy(self, dst: str, src: CommitRef, src_path: str, append: bool = False, datum: str = '') -> None:
        self._flush_writer()
        destination = '/' if paths.clean(dst) == '/' else paths.validate_for_write(dst)
        source = paths.clean(src_path)
        with self._store.reading(src) as view:
            entries = [tree.Entry(path, False, size, digest) for path, digest, size in view.tree.files_under(source)]
            if not entries:
                raise errors.file_not_found(view.commit.repo_key, view.commit.id, source)
            for entry in entries:
                if source == '/':
                    relative = entry.path
                else:
                    relative = entry.path[len(source):]  # '' when the source is this file
                target = (destination.rstrip('/') + relative) if relative else destination
                self._note_datum(target, datum or DEFAULT_DATUM)
                existing = self._current(target) if append else None
                if existing is None:
                    self._stage(target, _Staged(entry.hash, entry.size))
                    continue
                writer = self._store.blobs.writer()
                try:
                    with self._open_content(existing) as handle:
                        writer.write_from(handle)
                    with view.open(entry) as handle:
                        writer.write_from(handle)
                except BaseException:
                    writer.discard()
                    raise
                self._stage_written(target, writer)

    # -- end of stream ---------------------------------------------------------------------
    def commit(self) -> None:
        """Apply every staged change: to the open commit, or as a new finished commit."""
        self._flush_writer()
        self._resources.close()  # the stream's read snapshot is no longer needed
        store = self._store
        with store.db.write() as conn:
            if self._target_seq is not None:
                row = store.commit_by_seq(conn, self._target_seq)
                if row is None:
                    raise errors.NotFound(f'a commit of repo {self._repo_key} was dropped while being written')
                if row.finished is not None:
                    raise errors.commit_finished(row.repo_key, row.id)
            else:
                if conn.execute('SELECT 1 FROM repos WHERE id = ?', (self._repo_id,)).fetchone() is None:
                    raise errors.repo_not_found(self._repo_key)  # deleted while the stream ran
                row = store.start_commit_locked(conn, self._repo_id, self._repo_key, self._branch, None, '')
            rows = []
            for path, staged in self._changes.items():
                if staged.digest is not None:
                    self._store_content(conn, path, staged)
                rows.append((row.seq, path, staged.digest, staged.size))
            conn.executemany('INSERT OR REPLACE INTO changes(commit_seq, path, blob, size) VALUES (?, ?, ?, ?)', rows)
            tagged = [(row.seq, path, self._datums[path]) for path, staged in self._changes.items()
                      if staged.digest is not None and self._datums.get(path, DEFAULT_DATUM) != DEFAULT_DATUM]
            if self._target_seq is not None:
                conn.executemany('DELETE FROM datums WHERE commit_seq = ? AND path = ?',
                                 [(row.seq, path) for path in self._changes])
            conn.executemany('INSERT INTO datums(commit_seq, path, datum) VALUES (?, ?, ?)', tagged)
            if self._clash is not None:
                conn.execute('INSERT OR IGNORE INTO pending_errors(commit_seq, message) VALUES (?, ?)',
                             (row.seq, self._clash))
            if self._target_seq is None:
                store.finish_locked(conn, row, '', '')
        self._changes.clear()
        store.notify_changed(self._repo_id)

    def _store_content(self, conn, path: str, staged: _Staged) -> None:
        blobs = self._store.blobs
        if staged.size <= INLINE_LIMIT and (staged.data is not None or staged.tmp_path):
            data = staged.data
            if data is None:
                with open(staged.tmp_path, 'rb') as handle:
                    data = handle.read()
                unlink_quietly(staged.tmp_path)
            blobs.store_small(conn, staged.digest, data)
        elif staged.tmp_path:
            blobs.publish(staged.tmp_path, staged.digest)
        elif not blobs.exists(conn, staged.digest, staged.size):  # copied from a commit dropped since
            raise errors.FailedPrecondition(f'the source of {path} was deleted while it was being copied')
        staged.tmp_path = staged.data = None

    def abort(self) -> None:
        """Forget the stream: nothing it wrote becomes part of any commit."""
        self._resources.close()
        if self._writer is not None:
            self._writer.writer.discard()
            self._writer = None
        for staged in self._changes.values():
            self._forget(staged)
        self._changes.clear()


def _plain_branch(ref: CommitRef) -> Optional[str]:
    """The branch name when ``ref`` names a branch head (no commit id, no ancestry)."""
    if not ref.id:
        return ref.branch or None
    base, offset = names.parse_ancestry(ref.id)
    if offset == 0 and not names.is_commit_id(base) and not ref.branch:
        return base
    return None
