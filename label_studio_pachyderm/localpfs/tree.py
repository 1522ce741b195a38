"""Reading the file tree of one commit.

A commit's tree is its own change layer over the tree of its base: the nearest ancestor
that did not finish with an error (pachd builds a commit on that same base). Layers are
read newest first; the first layer that mentions a path decides it (a NULL digest there
means the path was deleted). A finished commit whose chain has grown long gets a full copy
(``snapshots``), where the chain stops. Each layer is read in path order straight from its
primary key and the layers are merged lazily, so even 100,000-file trees stream in bounded
memory.

Directories are derived: a directory exists while a file below it does; its size is the sum
of its files and its hash is the sha256 of its children's hashes in order (the way pachd
hashes directories).
"""
from __future__ import annotations

import hashlib
import heapq
import sqlite3
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from . import paths

# A chain of more change layers than this gets a snapshot when its commit finishes.
SNAPSHOT_AFTER_LAYERS = 32

Row = tuple  # (path, digest-or-None, size)


@dataclass(frozen=True)
class Entry:
    """A file or directory of a tree; directories have a trailing slash in ``path``."""

    path: str
    is_dir: bool
    size: int
    hash: bytes


@dataclass(frozen=True)
class Layer:
    table: str  # 'changes' or 'snapshots'
    seq: int


def layers_for(conn: sqlite3.Connection, seq: int) -> list[Layer]:
    rows = conn.execute(
        """
        WITH RECURSIVE chain(seq, parent, error, snap, depth) AS (
            SELECT seq, parent_seq, error, snapshot, 0 FROM commits WHERE seq = ?
            UNION ALL
            SELECT c.seq, c.parent_seq, c.error, c.snapshot, chain.depth + 1
            FROM commits c JOIN chain ON c.seq = chain.parent
            WHERE chain.snap = 0
        )
        SELECT seq, error, snap, depth FROM chain ORDER BY depth
        """, (seq,)).fetchall()
    layers: list[Layer] = []
    for commit_seq, error, snap, depth in rows:
        if depth > 0 and error:
            continue  # pachd never builds on a commit that finished with an error
        if snap:
            layers.append(Layer('snapshots', commit_seq))
            break
        layers.append(Layer('changes', commit_seq))
    return layers


def change_layer_count(layers: list[Layer]) -> int:
    return sum(1 for layer in layers if layer.table == 'changes')


class Tree:
    """Read access to the tree of one commit (``layers`` from ``layers_for``)."""

    def __init__(self, conn: sqlite3.Connection, layers: list[Layer]):
        self._conn = conn
        self._layers = layers

    # -- files (stored rows) ------------------------------------------------------------
    def files(self, low: str = '/', high: str = '0') -> Iterator[Row]:
        """Files with low <= path < high, in path order, deletions resolved."""
        if not self._layers:
            return
        if len(self._layers) == 1:
            layer = self._layers[0]
            yield from self._conn.execute(
                f'SELECT path, blob, size FROM {layer.table} '
                'WHERE commit_seq = ? AND path >= ? AND path < ? AND blob IS NOT NULL ORDER BY path',
                (layer.seq, low, high))
            return
        cursors = [self._conn.execute(
            f'SELECT path, blob, size FROM {layer.table} '
            'WHERE commit_seq = ? AND path >= ? AND path < ? ORDER BY path', (layer.seq, low, high))
            for layer in self._layers]
        # heapq.merge is stable, so for equal paths the newest layer comes first.
        last = None
        for path, digest, size in heapq.merge(*cursors, key=_path_of):
            if path == last:
                continue
            last = path
            if digest is not None:
                yield path, digest, size

    def file(self, path: str) -> Optional[Row]:
        for layer in self._layers:
            row = self._conn.execute(
                f'SELECT path, blob, size FROM {layer.table} WHERE commit_seq = ? AND path = ?',
                (layer.seq, path)).fetchone()
            if row is not None:
                return row if row[1] is not None else None
        return None

    def first_after(self, path: str) -> Optional[str]:
        """The first file path that sorts after ``path`` (None at the end of the tree)."""
        row = next(self.files(path + '\x00', '0'), None)
        return row[0] if row else None

    def last_before(self, path: str) -> Optional[str]:
        """The last file path that sorts before ``path`` (None at the start of the tree)."""
        cursors = [self._conn.execute(
            f'SELECT path, blob FROM {layer.table} WHERE commit_seq = ? AND path < ? ORDER BY path DESC',
            (layer.seq, path)) for layer in self._layers]
        last = None
        for found, digest in heapq.merge(*cursors, key=_path_of, reverse=True):
            if found == last:
                continue  # an older layer's row for a path a newer layer decided
            last = found
            if digest is not None:
                return found
        return None

    def files_with_children(self, paths_: Iterable[str], batch: int = 400) -> list[str]:
        """Those of ``paths_`` that are files of this tree and have a stored row below them
        (``path/...``) in some layer: the only files that can collide with a directory.

        Set-at-a-time (one query per layer and batch) rather than per path and layer, so a
        commit of a few hundred files over a long chain of layers is checked in milliseconds.
        """
        wanted = sorted(paths_)
        alive: dict[str, bool] = {}  # path -> is a live file (the newest layer's row decides)
        below: set[str] = set()
        for start in range(0, len(wanted), batch):
            chunk = wanted[start:start + batch]
            values = ','.join('(?)' for _ in chunk)
            for layer in self._layers:
                for path, has_blob in self._conn.execute(
                        f'WITH cand(p) AS (VALUES {values}) SELECT p, t.blob IS NOT NULL FROM cand '
                        f'JOIN {layer.table} t ON t.commit_seq = ? AND t.path = p',
                        (*chunk, layer.seq)):
                    alive.setdefault(path, bool(has_blob))
                for (path,) in self._conn.execute(
                        f'WITH cand(p) AS (VALUES {values}) SELECT p FROM cand WHERE EXISTS ('
                        f'SELECT 1 FROM {layer.table} t WHERE t.commit_seq = ? '
                        f"AND t.path >= p || '/' AND t.path < p || '0')",
                        (*chunk, layer.seq)):
                    below.add(path)
        return [path for path in wanted if alive.get(path) and path in below]

    def files_under(self, path: str) -> Iterator[Row]:
        """The file at ``path`` if there is one, else every file below it as a directory."""
        if path == '/':
            yield from self.files()
            return
        row = self.file(path)
        if row is not None:
            yield row
            return
        yield from self.files(*paths.subtree_range(path))

    # -- entries (files and directories) ------------------------------------------------
    def inspect(self, path: str) -> Optional[Entry]:
        if path != '/':
            row = self.file(path)
            if row is not None:
                return _file_entry(row)
        low, high = paths.subtree_range(path)
        summary = DirSummary(paths.dir_key(path))
        for row in self.files(low, high):
            summary.add(row)
        if summary.empty:
            return None
        return Entry(paths.dir_key(path), True, summary.size, summary.digest())

    def list(self, path: str) -> Iterator[Entry]:
        """Direct children of directory ``path`` (or the file itself, as pachd does)."""
        if path != '/':
            row = self.file(path)
            if row is not None:
                yield _file_entry(row)
                return
        prefix, high = paths.subtree_range(path)
        child_dir, summary = None, None
        for row in self.files(prefix, high):
            rest = row[0][len(prefix):]
            slash = rest.find('/')
            if slash == -1:
                if child_dir is not None:
                    yield Entry(child_dir, True, summary.size, summary.digest())
                    child_dir = None
                yield _file_entry(row)
                continue
            name = prefix + rest[:slash + 1]
            if name != child_dir:
                if child_dir is not None:
                    yield Entry(child_dir, True, summary.size, summary.digest())
                child_dir, summary = name, DirSummary(name)
            summary.add(row)
        if child_dir is not None:
            yield Entry(child_dir, True, summary.size, summary.digest())

    def walk(self, path: str) -> Iterator[Entry]:
        """``path`` and everything below it, directories before their contents (pre-order).

        Two passes: the first sums up every directory (its size and hash are needed before
        its contents are sent), the second streams the entries.
        """
        if path != '/':
            row = self.file(path)
            if row is not None:
                yield _file_entry(row)
                return
        low, high = paths.subtree_range(path)
        root = paths.dir_key(path)
        summaries: dict[str, tuple[int, bytes]] = {}
        summer = DirSummary(root, on_close=lambda d, size, digest: summaries.__setitem__(d, (size, digest)))
        for row in self.files(low, high):
            summer.add(row)
        if summer.empty:
            return
        summer.digest()  # closes the root too
        yield Entry(root, True, *summaries[root])
        open_dir = root
        for row in self.files(low, high):
            parent = paths.parent_dir(row[0])
            if parent != open_dir:
                for directory in _dirs_between(open_dir, parent):
                    yield Entry(directory, True, *summaries[directory])
                open_dir = parent
            yield _file_entry(row)

    def walk_names(self, path: str, start: str = '') -> Iterator[Entry]:
        """What ``walk`` yields from the entry ``start`` on (every entry if empty), but with no
        size or hash for directories (0 and b''): one pass over the files from ``start``,
        none over the whole subtree first. For readers that need only the names (a tar)."""
        if path != '/':
            row = self.file(path)
            if row is not None:
                if row[0] >= start:
                    yield _file_entry(row)
                return
        low, high = paths.subtree_range(path)
        root = paths.dir_key(path)
        open_dir = None
        for row in self.files(max(low, start), high):
            parent = paths.parent_dir(row[0])
            if open_dir is None:  # the first file: the root and the directories down to it
                for directory in (root, *_dirs_between(root, parent)):
                    if directory >= start:
                        yield Entry(directory, True, 0, b'')
            elif parent != open_dir:
                for directory in _dirs_between(open_dir, parent):
                    yield Entry(directory, True, 0, b'')
            open_dir = parent
            yield _file_entry(row)

    def glob(self, pattern: str) -> Iterator[Entry]:
        match = paths.compile_glob(pattern)
        start = paths.parent_dir(paths.glob_literal_prefix(paths.clean(pattern)))
        for entry in self.walk(start.rstrip('/') or '/'):
            if match(entry.path):
                yield entry


class DirSummary:
    """Sums up a path-ordered stream of the files below directory ``root``.

    Gives the directory's total size and hash, and reports every subdirectory to
    ``on_close`` as soon as the stream has moved past it. Most files share the directory
    of the file before them, so that case costs a string compare and a hash update; a
    directory's size reaches its parent when it closes.
    """

    def __init__(self, root: str, on_close: Optional[Callable[[str, int, bytes], None]] = None):
        self._stack = [[root, 0, hashlib.sha256()]]  # open directories: [path, size, hasher]
        self._top = self._stack[0]
        self._on_close = on_close
        self._digest: Optional[bytes] = None
        self.empty = True
        self.size = 0  # of every file added so far

    def add(self, row: Row) -> None:
        path, digest, size = row
        self.empty = False
        self.size += size
        top = self._top
        parent = path[:path.rfind('/') + 1]
        if parent != top[0]:
            top = self._enter(parent)
        top[1] += size
        top[2].update(digest)

    def _enter(self, directory: str) -> list:
        while not directory.startswith(self._stack[-1][0]):
            self._close_top()
        for below in _dirs_between(self._stack[-1][0], directory):
            self._stack.append([below, 0, hashlib.sha256()])
        self._top = self._stack[-1]
        return self._top

    def digest(self) -> bytes:
        if self._digest is None:
            while len(self._stack) > 1:
                self._close_top()
            path, size, hasher = self._stack[0]
            self._digest = hasher.digest()
            if self._on_close is not None:
                self._on_close(path, size, self._digest)
        return self._digest

    def _close_top(self) -> None:
        path, size, hasher = self._stack.pop()
        digest = hasher.digest()
        parent = self._top = self._stack[-1]
        parent[1] += size
        parent[2].update(digest)  # a subdirectory counts as one child of its parent
        if self._on_close is not None:
            self._on_close(path, size, digest)


def _path_of(row: Row) -> str:
    return row[0]


def _file_entry(row: Row) -> Entry:
    return Entry(row[0], False, row[2], row[1])


def _dirs_between(ancestor: str, directory: str) -> Iterator[str]:
    """Directories from just below ``ancestor`` down to ``directory`` (both end with '/'),
    after moving up to their common ancestor: '/a/x/' -> '/a/b/c/' gives '/a/b/', '/a/b/c/'."""
    common = ancestor
    while not directory.startswith(common):
        common = paths.parent_dir(common[:-1])
    index = directory.find('/', len(common))
    while index != -1:
        yield directory[:index + 1]
        index = directory.find('/', index + 1)


def path_collision(tree_: Tree, added: Iterable[str], deleted: Iterable[str],
                   full_scan: bool = False) -> Optional[str]:
    """pachd's file / directory check of a commit's tree: the first path that lies below
    the file sorting just before it, or None.

    pachd (``CheckIndex`` in src/internal/storage/fileset/validator.go, pachyderm 2.12)
    compares each path of the finished commit with the one before it in path order, so
    ``/a`` then ``/a/b`` collide, while ``/a``, ``/a-x``, ``/a/b`` do not (``-`` sorts
    before ``/``). The same pairs are checked here: with ``full_scan`` over the whole
    tree, otherwise only the pairs a commit's changes can have created. Those involve a
    file that is an added path, an ancestor of one, or (for a deletion, which can make
    two paths neighbours) a path ancestor of the deleted path or a string prefix of it
    followed by a character sorting before ``/``.
    """
    if full_scan:
        previous = None
        for path, _, _ in tree_.files():
            if previous is not None and path.startswith(previous + '/'):
                return path
            previous = path
        return None
    candidates = set()
    for path in added:
        candidates.add(path)
        candidates.update(_ancestors(path))
    for path in deleted:
        candidates.update(_ancestors(path))
        candidates.update(path[:i] for i in range(2, len(path)) if path[i] < '/' and path[i - 1] != '/')
    found = None
    for path in tree_.files_with_children(candidates):
        following = tree_.first_after(path)
        if following is not None and following.startswith(path + '/') and (found is None or following < found):
            found = following
    return found


def _ancestors(path: str) -> Iterator[str]:
    index = path.find('/', 1)
    while index != -1:
        yield path[:index]
        index = path.find('/', index + 1)


# More changes than this and ``diff_trees`` leaves the diff to ``diff`` over two walks, which
# holds none of them (about 200 bytes each).
DIFF_HELD_CHANGES = 50000


def diff_trees(old: Tree, new: Tree, path: str) -> Optional[list[tuple[Optional[Entry], Optional[Entry]]]]:
    """What ``diff`` gives for the walks of ``path`` in both trees, in one pass over each.

    Like pachd's ``Differ``, this reads every file of both trees; but where two walks (each
    summing every directory first, then streaming) cost four passes, this merges the two
    file streams once, summing both sides' directories on the way, and holds the changed
    files. A directory differs where its hash does; both come out in walk order, which is
    path order with directories named with their trailing slash. None when ``path`` is a
    file in either tree, or when more than ``DIFF_HELD_CHANGES`` files changed (call ``diff``
    then).
    """
    if path != '/' and (old.file(path) is not None or new.file(path) is not None):
        return None
    low, high = paths.subtree_range(path)
    root = paths.dir_key(path)
    old_dirs: dict[str, tuple[int, bytes]] = {}
    new_dirs: dict[str, tuple[int, bytes]] = {}
    old_sum = DirSummary(root, on_close=lambda d, size, digest: old_dirs.__setitem__(d, (size, digest)))
    new_sum = DirSummary(root, on_close=lambda d, size, digest: new_dirs.__setitem__(d, (size, digest)))
    old_rows, new_rows = old.files(low, high), new.files(low, high)
    a, b = next(old_rows, None), next(new_rows, None)
    files: list[tuple[Optional[Row], Optional[Row]]] = []
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            old_sum.add(a)
            files.append((a, None))
            a = next(old_rows, None)
        elif a is None or b[0] < a[0]:
            new_sum.add(b)
            files.append((None, b))
            b = next(new_rows, None)
        else:
            old_sum.add(a)
            new_sum.add(b)
            if a[1] != b[1]:
                files.append((a, b))
            a, b = next(old_rows, None), next(new_rows, None)
        if len(files) > DIFF_HELD_CHANGES:
            return None
    for summary in (old_sum, new_sum):
        if not summary.empty:
            summary.digest()  # closes the root too
    changes = [(_file_entry(a) if a else None, _file_entry(b) if b else None) for a, b in files]
    for directory in old_dirs.keys() | new_dirs.keys():
        before, after = old_dirs.get(directory), new_dirs.get(directory)
        if before is None or after is None or before[1] != after[1]:
            changes.append((Entry(directory, True, *before) if before else None,
                            Entry(directory, True, *after) if after else None))
    changes.sort(key=_change_path)
    return changes


def _change_path(change: tuple[Optional[Entry], Optional[Entry]]) -> str:
    return (change[0] or change[1]).path


def diff(old: Iterable[Entry], new: Iterable[Entry]) -> Iterator[tuple[Optional[Entry], Optional[Entry]]]:
    """Merge two path-ordered entry streams: yield (old, new) where they differ."""
    old_iter, new_iter = iter(old), iter(new)
    a, b = next(old_iter, None), next(new_iter, None)
    while a is not None and b is not None:
        if a.path < b.path:
            yield a, None
            a = next(old_iter, None)
        elif b.path < a.path:
            yield None, b
            b = next(new_iter, None)
        else:
            if a.hash != b.hash:
                yield a, b
            a, b = next(old_iter, None), next(new_iter, None)
    while a is not None:
        yield a, None
        a = next(old_iter, None)
    while b is not None:
        yield None, b
        b = next(new_iter, None)
