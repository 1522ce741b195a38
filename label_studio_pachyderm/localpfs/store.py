"""The versioned file system itself: projects, repos, branches, commits, file trees.

Everything a gRPC handler needs is a method here taking and returning plain Python values
(records below, ``tree.Entry``); nothing in this module knows about gRPC or protobuf.
Failures are ``errors.PFSError`` subclasses carrying pachd's status code and wording.

See the package docstring for the semantics chosen where pachd leaves room.
"""
from __future__ import annotations

import functools
import itertools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from . import errors, names, paths, provenance, tree
from .blobs import INLINE_LIMIT, BlobStore
from .db import Database
from .subscribers import Subscriber, Subscribers
from .tree import Entry, Tree

ORIGIN_USER = 1
ORIGIN_AUTO = 2

# Below this many changed paths a commit's size is derived from its base's size by looking
# up each changed path; above it, summing the whole tree is cheaper.
_INCREMENTAL_SIZE_LIMIT = 2000

_COMMIT_COLUMNS = ('SELECT c.seq, c.id, c.repo_id, r.project, r.name, c.branch, c.parent_seq, c.origin, '
                   'c.description, c.started, c.finished, c.error, c.size FROM commits c '
                   'JOIN repos r ON r.id = c.repo_id ')


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class CommitRef:
    """A commit as a request names it: an id (maybe with ancestry) and/or a branch."""

    project: str
    repo: str
    id: str = ''
    branch: str = ''

    @property
    def repo_key(self) -> str:
        return f'{self.project}/{self.repo}'

    @property
    def text(self) -> str:
        return self.id or self.branch


@dataclass(frozen=True)
class CommitRow:
    seq: int
    id: str
    repo_id: int
    project: str
    repo: str
    branch: Optional[str]
    parent_seq: Optional[int]
    origin: int
    description: str
    started: float
    finished: Optional[float]
    error: str
    size: Optional[int]

    @property
    def repo_key(self) -> str:
        return f'{self.project}/{self.repo}'


@dataclass(frozen=True)
class CommitRec:
    """A commit with its parent and children, as InspectCommit reports it."""

    row: CommitRow
    parent: Optional[tuple[str, Optional[str]]]  # (id, branch)
    children: list = field(default_factory=list)  # [(id, branch)]
    provenance: list = field(default_factory=list)  # [(project, repo, id)]: direct provenance
    metadata: dict = field(default_factory=dict)  # its metadata.API map (see metadata.py)


@dataclass(frozen=True)
class ProjectRec:
    name: str
    description: str
    created: float


@dataclass(frozen=True)
class RepoRec:
    project: str
    name: str
    description: str
    created: float
    branches: tuple
    size: int


@dataclass(frozen=True)
class BranchRec:
    project: str
    repo: str
    name: str
    head_id: str
    head_branch: Optional[str]
    created: float
    updated: float
    direct_provenance: tuple = ()  # ((project, repo, branch), ...)
    provenance: tuple = ()
    subvenance: tuple = ()


# ----------------------------------------------------------------------------- read views
class View:
    """The tree of one commit, open for reading inside one read transaction."""

    def __init__(self, commit: CommitRow, tree_: Tree, opener: Callable):
        self.commit = commit
        self.tree = tree_
        self._opener = opener

    def open(self, entry: Entry):
        """A readable file with the content of ``entry`` (a regular file)."""
        return self._opener(entry.hash, entry.size)

    def _not_found(self, path: str) -> errors.NotFound:
        return errors.file_not_found(self.commit.repo_key, self.commit.id, path)

    def inspect(self, path: str) -> Entry:
        path = paths.clean(path)
        entry = self.tree.inspect(path)
        if entry is None:
            raise self._not_found(path)
        return entry

    def list(self, path: str) -> Iterator[Entry]:
        return self.tree.list(paths.clean(path))

    def walk(self, path: str) -> Iterator[Entry]:
        path = paths.clean(path)
        entries = self.tree.walk(path)
        first = next(entries, None)
        if first is None:
            if path == '/':
                return iter(())  # an empty commit walks to nothing, as in pachd
            raise self._not_found(path)
        return _chain_first(first, entries)

    def glob(self, pattern: str) -> Iterator[Entry]:
        return self.tree.glob(pattern)

    def tar_entries(self, pattern: str, start: str = '') -> Iterator[Entry]:
        """What GetFileTAR packs for ``pattern``, in path order from ``start`` on: the entries
        the path or glob matches, each matched directory followed by everything below it
        (pachd's getFile source with its directory inserter; an empty result is NOT_FOUND,
        as there). Directories carry no size or hash: a tar header has neither."""
        cleaned = paths.clean(pattern)
        if paths.has_glob(cleaned):
            match = paths.compile_glob(cleaned)
            begin = paths.parent_dir(paths.glob_literal_prefix(cleaned)).rstrip('/') or '/'
            entries = self.tree.walk_names(begin, start)
        else:
            match, entries = None, self.tree.walk_names(cleaned, start)
        sent = False
        # Started inside a directory the glob matched: all of it is sent, as from the top.
        inside = _matched_ancestor(match, start) if match is not None and start else None
        for entry in entries:
            if match is not None:
                if inside is not None and entry.path.startswith(inside):
                    pass
                elif match(entry.path):
                    inside = entry.path if entry.is_dir else None
                else:
                    inside = None
                    continue
            sent = True
            yield entry
        if not sent:
            raise self._not_found(cleaned)

    def file(self, path: str) -> Entry:
        """The one regular file ``path`` names (a glob must match exactly one file)."""
        cleaned = paths.clean(path)
        row = self.tree.file(cleaned) if cleaned != '/' else None
        if row is not None:
            return Entry(row[0], False, row[2], row[1])
        if paths.has_glob(cleaned):
            matches = list(itertools.islice(self.tree.glob(cleaned), 2))  # two tell "several"
            if len(matches) > 1:
                raise errors.InvalidArgument('matched multiple files. Use GetFileTAR instead')
            if matches and not matches[0].is_dir:
                return matches[0]
            if matches:
                raise errors.InvalidArgument('cannot get directory or non-regular file. Use GetFileTAR instead')
        elif next(self.tree.files(*paths.subtree_range(cleaned)), None) is not None:
            raise errors.InvalidArgument('cannot get directory or non-regular file. Use GetFileTAR instead')
        raise self._not_found(cleaned)


class DiffView:
    def __init__(self, new: View, new_path: str, old: Optional[View], old_path: str):
        self.new, self.old = new, old
        self._new_path, self._old_path = paths.clean(new_path), paths.clean(old_path)

    def changes(self) -> Iterator[tuple[Optional[Entry], Optional[Entry]]]:
        if self.old is not None and self._old_path == self._new_path:
            found = tree.diff_trees(self.old.tree, self.new.tree, self._new_path)
            if found is not None:
                return iter(found)
        old_entries = self.old.tree.walk(self._old_path) if self.old is not None else iter(())
        return tree.diff(old_entries, self.new.tree.walk(self._new_path))


def _matched_ancestor(match, path: str) -> Optional[str]:
    """The highest directory above ``path`` that ``match`` accepts, or None."""
    index = path.find('/', 1)
    while index != -1:
        if match(path[:index + 1]):
            return path[:index + 1]
        index = path.find('/', index + 1)
    return None


def _chain_first(first, rest):
    yield first
    yield from rest


# ----------------------------------------------------------------------------- the store
class Store:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.blobs = BlobStore(data_dir)
        self.blobs.clear_tmp()
        self.db = Database(data_dir)
        # Waiters for commit state changes (InspectCommit with wait) sleep on this.
        self._changed = threading.Condition()
        self._generation = 0
        self._closed = False
        self._stopping = False  # set when the server stops: long waits end at once
        self.subscribers = Subscribers()  # open SubscribeCommit calls, woken per repo
        with self.db.write() as conn:
            conn.execute('INSERT OR IGNORE INTO projects(name, description, created) VALUES (?, ?, ?)',
                         (names.DEFAULT_PROJECT, 'The default project.', time.time()))
            if conn.execute('SELECT 1 FROM branch_provenance LIMIT 1').fetchone():
                self.subscribers.wake_everyone_always = True

    def begin_shutdown(self) -> None:
        """Wake every waiter (InspectCommit wait, SubscribeCommit) and make it end its call."""
        self._stopping = True
        self.notify_changed()

    def close(self) -> None:
        self._closed = self._stopping = True
        self.notify_changed()
        self.db.close()

    def notify_changed(self, repo_id: Optional[int] = None) -> None:
        """Wake whoever waits for a change: every waiting InspectCommit, and the subscribers of
        ``repo_id`` (all subscribers when None: a change not pinned to one repo)."""
        self.wake_waiters()
        self.subscribers.wake(repo_id)

    def wake_waiters(self) -> None:
        """Wake the waiting InspectCommit calls only (a call that ended wakes its own waiter)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    # -- lookups on a connection the caller holds (also used by upload.py) ----------------
    @staticmethod
    def _project_exists(conn, project: str) -> bool:
        return conn.execute('SELECT 1 FROM projects WHERE name = ?', (project,)).fetchone() is not None

    @staticmethod
    def repo_row(conn, project: str, name: str) -> tuple:
        row = conn.execute('SELECT id, project, name, description, created FROM repos '
                           'WHERE project = ? AND name = ?', (project, name)).fetchone()
        if row is None:
            raise errors.repo_not_found(f'{project}/{name}')
        return row

    @staticmethod
    def commit_by_seq(conn, seq: int) -> Optional[CommitRow]:
        row = conn.execute(_COMMIT_COLUMNS + 'WHERE c.seq = ?', (seq,)).fetchone()
        return CommitRow(*row) if row else None

    @staticmethod
    def _commit_by_id(conn, repo_id: int, commit_id: str) -> Optional[CommitRow]:
        row = conn.execute(_COMMIT_COLUMNS + 'WHERE c.repo_id = ? AND c.id = ?', (repo_id, commit_id)).fetchone()
        return CommitRow(*row) if row else None

    def resolve(self, conn, ref: CommitRef) -> tuple[CommitRow, bool]:
        """Find the commit ``ref`` names; the flag says it was named as a plain branch head."""
        repo_id = self.repo_row(conn, ref.project, ref.repo)[0]
        commit_id, offset = names.parse_ancestry(ref.id)
        branch = ref.branch
        if commit_id and not names.is_commit_id(commit_id):
            if branch:
                raise errors.InvalidArgument(
                    f'invalid commit ID given with a branch ({ref.repo_key}@{branch}): {ref.id}')
            branch, commit_id = commit_id, ''
        if not commit_id:
            if not branch:
                raise errors.InvalidArgument('cannot resolve commit with no ID or branch')
            head = conn.execute('SELECT head_seq FROM branches WHERE repo_id = ? AND name = ?',
                                (repo_id, branch)).fetchone()
            if head is None:
                raise errors.branch_not_found(ref.repo_key, branch)
            row = self.commit_by_seq(conn, head[0])
        else:
            row = self._commit_by_id(conn, repo_id, commit_id)
        if row is None:
            raise errors.commit_not_found(ref.repo_key, ref.text)
        if offset > 0:
            for _ in range(offset):
                row = self.commit_by_seq(conn, row.parent_seq) if row.parent_seq else None
                if row is None:
                    raise errors.commit_not_found(ref.repo_key, ref.text)
        elif offset < 0:
            lineage = [row]
            while lineage[-1].parent_seq:
                lineage.append(self.commit_by_seq(conn, lineage[-1].parent_seq))
            if -offset > len(lineage):
                raise errors.commit_not_found(ref.repo_key, ref.text)
            row = lineage[len(lineage) + offset]
        return row, bool(branch) and not commit_id and offset == 0

    def _commit_rec(self, conn, row: CommitRow) -> CommitRec:
        parent = None
        if row.parent_seq:
            found = conn.execute('SELECT id, branch FROM commits WHERE seq = ?', (row.parent_seq,)).fetchone()
            parent = tuple(found) if found else None
        children = [tuple(child) for child in conn.execute(
            'SELECT id, branch FROM commits WHERE parent_seq = ? ORDER BY seq', (row.seq,))]
        metadata = dict(conn.execute('SELECT key, value FROM commit_metadata WHERE commit_seq = ? ORDER BY key',
                                     (row.seq,)))
        return CommitRec(row, parent, children, provenance.commit_provenance(conn, row.seq), metadata)

    def _readable(self, conn, row: CommitRow, via_branch: bool) -> Optional[CommitRow]:
        """The commit whose files a read of ``row`` shows.

        Named by id, a commit shows its own files even while open. Named as a branch, reads
        skip back to the newest commit that finished without error, so work in progress on
        a branch is invisible to its readers (None: the branch has no such commit yet).
        """
        if not via_branch:
            return row
        while row is not None and (row.finished is None or row.error):
            row = self.commit_by_seq(conn, row.parent_seq) if row.parent_seq else None
        return row

    def _view(self, conn, ref: CommitRef) -> View:
        row, via_branch = self.resolve(conn, ref)
        readable = self._readable(conn, row, via_branch)
        opener = functools.partial(self.open_content, conn)
        if readable is None:
            return View(row, Tree(conn, []), opener)
        return View(readable, Tree(conn, tree.layers_for(conn, readable.seq)), opener)

    # -- projects ------------------------------------------------------------------------
    def create_project(self, name: str, description: str = '', update: bool = False) -> None:
        names.validate_project_name(name)
        with self.db.write() as conn:
            exists = self._project_exists(conn, name)
            if exists and not update:
                raise errors.AlreadyExists(f'project {name} already exists')
            if not exists and update:
                raise errors.project_not_found(name)
            if exists:
                conn.execute('UPDATE projects SET description = ? WHERE name = ?', (description, name))
            else:
                conn.execute('INSERT INTO projects(name, description, created) VALUES (?, ?, ?)',
                             (name, description, time.time()))

    def inspect_project(self, name: str) -> ProjectRec:
        with self.db.read() as conn:
            row = conn.execute('SELECT name, description, created FROM projects WHERE name = ?', (name,)).fetchone()
        if row is None:
            raise errors.project_not_found(name)
        return ProjectRec(*row)

    def list_projects(self) -> list[ProjectRec]:
        with self.db.read() as conn:
            return [ProjectRec(*row) for row in conn.execute(
                'SELECT name, description, created FROM projects ORDER BY name')]

    def delete_project(self, name: str, force: bool = False) -> None:
        names.validate_project_name(name)
        with self.db.write() as conn:
            if not self._project_exists(conn, name):
                raise errors.project_not_found(name)
            repos = [row[0] for row in conn.execute('SELECT name FROM repos WHERE project = ? ORDER BY name', (name,))]
            if repos:
                # pachd never deletes repos here, ``force`` or not: without it DeleteProject
                # refuses with this message; with it the check is skipped but the project row
                # cannot go while repos still refer to it, so the call fails all the same
                # (DeleteProject in src/server/pfs/server/driver/project.go, pachyderm 2.12).
                # Delete the repos first (DeleteRepos with the project).
                still = '\n'.join(f'repo {name}/{repo} still exists' for repo in repos)
                raise errors.FailedPrecondition(f'cannot delete project {name}: {still}')
            conn.execute('DELETE FROM projects WHERE name = ?', (name,))

    # -- repos ---------------------------------------------------------------------------
    def create_repo(self, project: str, name: str, description: str = '', update: bool = False) -> None:
        names.validate_name(name)
        with self.db.write() as conn:
            if not self._project_exists(conn, project):
                raise errors.project_not_found(project)
            row = conn.execute('SELECT id FROM repos WHERE project = ? AND name = ?', (project, name)).fetchone()
            if row is not None:
                if not update:
                    raise errors.AlreadyExists(f'repo {project}/{name} already exists')
                conn.execute('UPDATE repos SET description = ? WHERE id = ?', (description, row[0]))
                return
            conn.execute('INSERT INTO repos(project, name, description, created) VALUES (?, ?, ?, ?)',
                         (project, name, description, time.time()))

    def _repo_rec(self, conn, repo_row: tuple) -> RepoRec:
        repo_id, project, name, description, created = repo_row
        branches = tuple(row[0] for row in conn.execute(
            'SELECT name FROM branches WHERE repo_id = ? ORDER BY name', (repo_id,)))
        size = 0
        # pachd reports the size of the master branch: its newest finished commit
        head = conn.execute("SELECT head_seq FROM branches WHERE repo_id = ? AND name = 'master'",
                            (repo_id,)).fetchone()
        if head is not None:
            readable = self._readable(conn, self.commit_by_seq(conn, head[0]), True)
            size = (readable.size or 0) if readable else 0
        return RepoRec(project, name, description, created, branches, size)

    def inspect_repo(self, project: str, name: str) -> RepoRec:
        with self.db.read() as conn:
            return self._repo_rec(conn, self.repo_row(conn, project, name))

    def list_repos(self, projects: Optional[list[str]] = None) -> list[RepoRec]:
        with self.db.read() as conn:
            rows = conn.execute('SELECT id, project, name, description, created FROM repos ORDER BY project, name')
            return [self._repo_rec(conn, row) for row in rows.fetchall()
                    if not projects or row[1] in projects]

    def delete_repo(self, project: str, name: str, force: bool = False) -> bool:
        """Delete a repo with all its branches, commits and files; False if there was none."""
        with self.db.write() as conn:
            if conn.execute('SELECT 1 FROM repos WHERE project = ? AND name = ?', (project, name)).fetchone() is None:
                return False
            self._delete_repo_locked(conn, project, name)
        self.notify_changed()
        self.collect_garbage()
        return True

    def delete_repos(self, projects: list[str], all_repos: bool = False, force: bool = False) -> list[tuple[str, str]]:
        if not projects and not all_repos:
            raise errors.InvalidArgument('either projects or all must be set')
        with self.db.write() as conn:
            rows = conn.execute('SELECT project, name FROM repos ORDER BY project, name').fetchall()
            deleted = [(p, n) for p, n in rows if all_repos or p in projects]
            for project, name in deleted:
                self._delete_repo_locked(conn, project, name)
        if deleted:
            self.notify_changed()
            self.collect_garbage()
        return deleted

    def _delete_repo_locked(self, conn, project: str, name: str) -> None:
        repo_id = self.repo_row(conn, project, name)[0]
        seqs = 'SELECT seq FROM commits WHERE repo_id = ?'
        conn.execute(f'DELETE FROM changes WHERE commit_seq IN ({seqs})', (repo_id,))
        for table in ('snapshots', 'datums', 'pending_errors'):
            conn.execute(f'DELETE FROM {table} WHERE commit_seq IN ({seqs})', (repo_id,))
        provenance.forget_repo(conn, repo_id)
        conn.execute('DELETE FROM commits WHERE repo_id = ?', (repo_id,))
        conn.execute('DELETE FROM branches WHERE repo_id = ?', (repo_id,))
        conn.execute('DELETE FROM repos WHERE id = ?', (repo_id,))

    # -- branches ------------------------------------------------------------------------
    def create_branch(self, project: str, repo: str, name: str, head: Optional[CommitRef] = None,
                      provenance_of: Optional[list] = None) -> None:
        """Create or move a branch; with ``provenance_of`` [(project, repo, branch)], set its
        provenance (see provenance.py for what pachd does with it)."""
        try:
            self._create_branch(project, repo, name, head, provenance_of)
        finally:
            # A new branch's first commit, a moved head, commits propagated downstream: subscribers look.
            self.notify_changed()

    def _create_branch(self, project: str, repo: str, name: str, head: Optional[CommitRef],
                       provenance_of: Optional[list]) -> None:
        names.validate_name(name)
        for _, _, prov_branch in provenance_of or ():
            names.validate_name(prov_branch)
        with self.db.write() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            if provenance_of is not None:
                self._create_branch_with_provenance(conn, repo_id, name, head, provenance_of)
                return
            now = time.time()
            existing = conn.execute('SELECT head_seq FROM branches WHERE repo_id = ? AND name = ?',
                                    (repo_id, name)).fetchone()
            if head is not None:
                head_row, _ = self.resolve(conn, head)
                if head_row.repo_id != repo_id:
                    raise errors.InvalidArgument(
                        f'branch {project}/{repo}@{name} cannot point at commit {head_row.repo_key}@{head_row.id} '
                        f'of another repo')
                head_seq = head_row.seq
            elif existing is not None:
                return  # no new head given: the branch stays where it is
            else:
                # pachd gives a new branch without a head an empty, finished commit
                head_seq = conn.execute(
                    'INSERT INTO commits(id, repo_id, branch, parent_seq, origin, started, finished, size) '
                    'VALUES (?, ?, ?, NULL, ?, ?, ?, 0)',
                    (names.new_commit_id(), repo_id, name, ORIGIN_AUTO, now, now)).lastrowid
            conn.execute('INSERT INTO branches(repo_id, name, head_seq, created, updated) VALUES (?, ?, ?, ?, ?) '
                         'ON CONFLICT(repo_id, name) DO UPDATE SET head_seq = excluded.head_seq, '
                         'updated = excluded.updated', (repo_id, name, head_seq, now, now))

    def _create_branch_with_provenance(self, conn, repo_id: int, name: str, head: Optional[CommitRef],
                                       provenance_of: list) -> None:
        now = time.time()
        key = (repo_id, name)
        prov_keys = []
        self.subscribers.wake_everyone_always = True  # commits upstream now make and ready commits here
        for prov_project, prov_repo, prov_branch in provenance_of:
            prov_id = self.repo_row(conn, prov_project, prov_repo)[0]
            if provenance.head_seq(conn, (prov_id, prov_branch)) is None and prov_id != repo_id:
                self._new_auto_branch(conn, (prov_id, prov_branch), None, now)
            prov_keys.append((prov_id, prov_branch))
        changed = provenance.set_direct(conn, key, prov_keys)
        moved = False
        if head is not None:
            head_row, _ = self.resolve(conn, head)
            if head_row.repo_id != repo_id:
                raise errors.InvalidArgument(f'branch {provenance.branch_label(conn, key)} cannot point at commit '
                                             f'{head_row.repo_key}@{head_row.id} of another repo')
            self._set_head(conn, key, head_row.seq, now)
            moved = True
        current = provenance.head_seq(conn, key)
        if current is None or (changed and prov_keys):
            # a new head capturing the new structure: empty, AUTO, on top of the old head
            current = self._new_auto_branch(conn, key, current, now)
            moved = True
        if moved:
            commit_id = conn.execute('SELECT id FROM commits WHERE seq = ?', (current,)).fetchone()[0]
            provenance.propagate(conn, [key], commit_id, ORIGIN_AUTO)

    def _new_auto_branch(self, conn, key, parent_seq: Optional[int], now: float) -> int:
        """An empty AUTO commit at the head of branch ``key`` (created if need be). As pachd's
        makeEmptyCommit: finished on a branch without provenance (an input branch), left open on an
        output branch, for its pipeline (or a client playing one) to finish."""
        size = 0
        if parent_seq is not None:
            parent = self.commit_by_seq(conn, parent_seq)
            size = parent.size or 0
        finished = None if provenance.direct(conn, key) else now
        seq = conn.execute(
            'INSERT INTO commits(id, repo_id, branch, parent_seq, origin, started, finished, size) '
            'VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            (names.new_commit_id(), key[0], key[1], parent_seq, ORIGIN_AUTO, now, finished,
             size if finished else None)).lastrowid
        self._set_head(conn, key, seq, now)
        provenance.record_commit(conn, seq, key)
        return seq

    @staticmethod
    def _set_head(conn, key, seq: int, now: float) -> None:
        conn.execute('INSERT INTO branches(repo_id, name, head_seq, created, updated) VALUES (?, ?, ?, ?, ?) '
                     'ON CONFLICT(repo_id, name) DO UPDATE SET head_seq = excluded.head_seq, '
                     'updated = excluded.updated', (key[0], key[1], seq, now, now))

    def _branch_rec(self, conn, project: str, repo: str, row: tuple) -> BranchRec:
        name, head_seq, created, updated = row
        head = conn.execute('SELECT id, branch FROM commits WHERE seq = ?', (head_seq,)).fetchone()
        repo_id = self.repo_row(conn, project, repo)[0]

        def named(keys):
            out = []
            for prov_repo_id, prov_branch in keys:
                prov_project, prov_repo = conn.execute('SELECT project, name FROM repos WHERE id = ?',
                                                       (prov_repo_id,)).fetchone()
                out.append((prov_project, prov_repo, prov_branch))
            return tuple(out)

        key = (repo_id, name)
        return BranchRec(project, repo, name, head[0], head[1], created, updated,
                         named(provenance.direct(conn, key)), named(provenance.full(conn, key)),
                         named(provenance.subvenance(conn, key)))

    def inspect_branch(self, project: str, repo: str, name: str) -> BranchRec:
        with self.db.read() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            row = conn.execute('SELECT name, head_seq, created, updated FROM branches WHERE repo_id = ? AND name = ?',
                               (repo_id, name)).fetchone()
            if row is None:
                raise errors.branch_not_found(f'{project}/{repo}', name)
            return self._branch_rec(conn, project, repo, row)

    def list_branches(self, project: str, repo: str, reverse: bool = False) -> list[BranchRec]:
        with self.db.read() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            rows = conn.execute('SELECT name, head_seq, created, updated FROM branches WHERE repo_id = ? '
                                f'ORDER BY created {"ASC" if reverse else "DESC"}, name', (repo_id,)).fetchall()
            return [self._branch_rec(conn, project, repo, row) for row in rows]

    def delete_branch(self, project: str, repo: str, name: str, force: bool = False) -> None:
        with self.db.write() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            deleted = conn.execute('DELETE FROM branches WHERE repo_id = ? AND name = ?', (repo_id, name)).rowcount
            if not deleted:
                raise errors.branch_not_found(f'{project}/{repo}', name)
            provenance.forget_branch(conn, (repo_id, name))

    # -- commits -------------------------------------------------------------------------
    def start_commit(self, project: str, repo: str, branch: str, parent: Optional[CommitRef] = None,
                     description: str = '') -> CommitRow:
        if not branch:
            raise errors.InvalidArgument('branch must be specified')
        names.validate_name(branch)
        with self.db.write() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            row = self.start_commit_locked(conn, repo_id, f'{project}/{repo}', branch, parent, description)
        self.notify_changed(repo_id)  # subscribers asking for STARTED commits
        return row

    def start_commit_locked(self, conn, repo_id: int, repo_key: str, branch: str,
                             parent: Optional[CommitRef], description: str) -> CommitRow:
        parent_row = None
        if parent is not None:
            parent_row, _ = self.resolve(conn, parent)
            if parent_row.repo_id != repo_id:
                raise errors.InvalidArgument(f'parent commit {parent_row.repo_key}@{parent_row.id} '
                                             f'is not in repo {repo_key}')
        else:
            head = conn.execute('SELECT head_seq FROM branches WHERE repo_id = ? AND name = ?',
                                (repo_id, branch)).fetchone()
            if head is not None:
                parent_row = self.commit_by_seq(conn, head[0])
        if parent_row is not None and parent_row.finished is None:
            # pachd's wording; a branch holds at most one open commit, at its head
            raise errors.FailedPrecondition(f'parent commit {parent_row.repo_key}@{parent_row.id} has not been finished')
        provenance.refuse_output_branch(conn, (repo_id, branch))
        now = time.time()
        commit_id = names.new_commit_id()
        seq = conn.execute(
            'INSERT INTO commits(id, repo_id, branch, parent_seq, origin, description, started) '
            'VALUES (?, ?, ?, ?, ?, ?, ?)',
            (commit_id, repo_id, branch, parent_row.seq if parent_row else None,
             ORIGIN_USER, description, now)).lastrowid
        conn.execute('INSERT INTO branches(repo_id, name, head_seq, created, updated) VALUES (?, ?, ?, ?, ?) '
                     'ON CONFLICT(repo_id, name) DO UPDATE SET head_seq = excluded.head_seq, '
                     'updated = excluded.updated', (repo_id, branch, seq, now, now))
        provenance.propagate(conn, [(repo_id, branch)], commit_id, ORIGIN_AUTO)
        return self.commit_by_seq(conn, seq)

    def finish_commit(self, ref: CommitRef, description: str = '', error: str = '') -> None:
        with self.db.write() as conn:
            row, _ = self.resolve(conn, ref)
            self.finish_locked(conn, row, description, error)
        self.notify_changed(row.repo_id)

    def finish_locked(self, conn, row: CommitRow, description: str, error: str) -> None:
        if row.finished is not None:
            raise errors.commit_finished(row.repo_key, row.id)
        if not error:
            error = self._validation_error(conn, row)
        conn.execute('DELETE FROM datums WHERE commit_seq = ?', (row.seq,))
        conn.execute('DELETE FROM pending_errors WHERE commit_seq = ?', (row.seq,))
        size = self._compute_size(conn, row)
        conn.execute('UPDATE commits SET finished = ?, error = ?, size = ?, '
                     'description = CASE WHEN ? != \'\' THEN ? ELSE description END WHERE seq = ?',
                     (time.time(), error or '', size, description, description, row.seq))
        if not error:
            layers = tree.layers_for(conn, row.seq)
            if tree.change_layer_count(layers) > tree.SNAPSHOT_AFTER_LAYERS:
                self._snapshot_locked(conn, row.seq, layers)

    def _validation_error(self, conn, row: CommitRow) -> str:
        """What pachd's validation of a finishing commit finds wrong with it ('' if nothing).

        pachd finishes such a commit with the message as its ``error``; FinishCommit
        itself succeeds (src/server/pfs/server/driver.go, ``validate`` at finish).
        """
        pending = conn.execute('SELECT message FROM pending_errors WHERE commit_seq = ?', (row.seq,)).fetchone()
        if pending is not None:
            return pending[0]
        changes = conn.execute('SELECT path, blob IS NOT NULL FROM changes WHERE commit_seq = ?',
                               (row.seq,)).fetchall()
        if not changes:
            return ''
        tree_ = Tree(conn, tree.layers_for(conn, row.seq))
        if len(changes) > _INCREMENTAL_SIZE_LIMIT:
            collision = tree.path_collision(tree_, (), (), full_scan=True)
        else:
            collision = tree.path_collision(tree_, [p for p, added in changes if added],
                                            [p for p, added in changes if not added])
        return f'file / directory path collision ({collision})' if collision else ''

    def _compute_size(self, conn, row: CommitRow) -> int:
        layers = tree.layers_for(conn, row.seq)
        base_layers = layers[1:]
        base_size = None
        seq = row.parent_seq
        while seq:  # the base: nearest ancestor that finished without error
            base = self.commit_by_seq(conn, seq)
            if not base.error:
                base_size = base.size
                break
            seq = base.parent_seq
        else:
            base_size = 0
        changed = conn.execute('SELECT COUNT(*) FROM changes WHERE commit_seq = ?', (row.seq,)).fetchone()[0]
        if base_size is None or changed > _INCREMENTAL_SIZE_LIMIT:
            return sum(size for _, _, size in Tree(conn, layers).files())
        base_tree = Tree(conn, base_layers)
        size = base_size
        for path, digest, new_size in conn.execute('SELECT path, blob, size FROM changes WHERE commit_seq = ?',
                                                   (row.seq,)).fetchall():
            old = base_tree.file(path)
            size += (new_size if digest is not None else 0) - (old[2] if old else 0)
        return size

    def _snapshot_locked(self, conn, seq: int, layers) -> None:
        rows = Tree(conn, layers).files()
        batch = []
        for path, digest, size in rows:
            batch.append((seq, path, digest, size))
            if len(batch) >= 5000:
                conn.executemany('INSERT INTO snapshots(commit_seq, path, blob, size) VALUES (?, ?, ?, ?)', batch)
                batch = []
        if batch:
            conn.executemany('INSERT INTO snapshots(commit_seq, path, blob, size) VALUES (?, ?, ?, ?)', batch)
        conn.execute('UPDATE commits SET snapshot = 1 WHERE seq = ?', (seq,))

    def inspect_commit(self, ref: CommitRef, wait: bool = False,
                       is_active: Callable[[], bool] = lambda: True, ready: bool = False) -> CommitRec:
        """The commit ``ref`` names; with ``wait``, once it has finished; with ``ready``,
        once every commit in its provenance has."""
        with self.db.read() as conn:
            row, _ = self.resolve(conn, ref)
            if wait and row.finished is None:
                pass
            elif ready and provenance.unfinished_provenance(conn, row.seq):
                pass
            else:
                return self._commit_rec(conn, row)
        return self._wait_finished(row, is_active) if wait else self._wait_ready(row, is_active)

    def _wait_ready(self, row: CommitRow, is_active: Callable[[], bool]) -> CommitRec:
        return self._wait_until(row, is_active, lambda conn, current: not provenance.unfinished_provenance(
            conn, current.seq))

    def _wait_finished(self, row: CommitRow, is_active: Callable[[], bool]) -> CommitRec:
        return self._wait_until(row, is_active, lambda conn, current: current.finished is not None)

    def _wait_until(self, row: CommitRow, is_active: Callable[[], bool], reached) -> CommitRec:
        """Wait until ``reached(conn, current row)`` holds for the commit, waking on every change of the store."""
        while True:
            with self._changed:
                generation = self._generation
            with self.db.read() as conn:
                current = self.commit_by_seq(conn, row.seq)
                if current is None:
                    raise errors.NotFound(f'commit {row.repo_key}@{row.id} was deleted')
                if reached(conn, current):
                    return self._commit_rec(conn, current)
            self._wait_for_change(generation, is_active)

    def _wait_for_change(self, generation: int, is_active: Callable[[], bool]) -> None:
        """Sleep until the store changes after ``generation``; raise if the call should end."""
        if self._stopping:
            raise errors.Unavailable('the server is shutting down')
        if not is_active():
            raise errors.Cancelled('the client stopped waiting')
        with self._changed:
            self._changed.wait_for(lambda: self._generation != generation or self._stopping, timeout=1.0)
        if self._stopping:
            raise errors.Unavailable('the server is shutting down')
        if not is_active():
            raise errors.Cancelled('the client stopped waiting')

    def subscribe_commits(self, project: str, repo: str, branch: str = '', from_: Optional[CommitRef] = None,
                          state: str = 'started', origin: int = 0,
                          is_active: Callable[[], bool] = lambda: True,
                          on_end: Optional[Callable[[Callable[[], None]], object]] = None) -> Iterator[CommitRec]:
        """Commits of a repo in creation order, existing ones first, then new ones, forever.

        pachd's SubscribeCommit (``subscribeCommit`` in src/server/pfs/server/driver.go,
        pachyderm 2.12) watches every commit of the repo, keeps those created on ``branch``
        (when given) that pass the origin filter, skips ``from`` and waits for each commit
        to reach ``state`` before sending it (so an open commit holds back later ones).
        Here "after ``from``" means created after it. Ends only when the caller stops
        iterating, the client goes away (Cancelled) or the server stops (Unavailable).

        Between changes of its repo it sleeps (``subscribers``): no polling, no store reads.
        ``on_end(callback)``: registers ``callback`` to run when the call ends (gRPC's
        ``context.add_callback``), so a cancelled call wakes its sleeping handler at once.
        """
        with self.db.read() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            after = 0
            if from_ is not None:
                after = self.resolve(conn, from_)[0].seq
        subscriber = Subscriber(project, repo, branch, repo_id, is_active)
        if on_end is not None:
            on_end(subscriber.wake.set)
        self.subscribers.add(subscriber)
        try:
            while True:
                subscriber.wake.clear()  # before reading: a change during the read wakes the next sleep
                with self.db.read() as conn:
                    rows = [CommitRow(*r) for r in conn.execute(
                        _COMMIT_COLUMNS + 'WHERE c.repo_id = ? AND c.seq > ? ORDER BY c.seq', (repo_id, after))]
                for row in rows:
                    after = row.seq
                    if (branch and row.branch != branch) or (origin and row.origin != origin):
                        continue
                    if state in ('finishing', 'finished'):
                        rec = self._subscriber_waits(subscriber, row, lambda conn, current: current.finished is not None)
                    elif state == 'ready':
                        try:
                            rec = self._subscriber_waits(subscriber, row, lambda conn, current: not
                                                         provenance.unfinished_provenance(conn, current.seq))
                        except errors.NotFound:
                            continue  # dropped before it was ready
                    else:  # STARTED
                        with self.db.read() as conn:
                            current = self.commit_by_seq(conn, row.seq)
                            if current is None:
                                continue  # dropped before it was sent
                            rec = self._commit_rec(conn, current)
                    yield rec
                if not rows:
                    self._subscriber_sleeps(subscriber)
        finally:
            self.subscribers.remove(subscriber)

    def _subscriber_waits(self, subscriber: Subscriber, row: CommitRow, reached) -> CommitRec:
        """``_wait_until`` for a subscription: asleep on its own event rather than the store's condition."""
        while True:
            subscriber.wake.clear()
            with self.db.read() as conn:
                current = self.commit_by_seq(conn, row.seq)
                if current is None:
                    raise errors.NotFound(f'commit {row.repo_key}@{row.id} was deleted')
                if reached(conn, current):
                    return self._commit_rec(conn, current)
            self._subscriber_sleeps(subscriber)

    def _subscriber_sleeps(self, subscriber: Subscriber) -> None:
        self._end_if_over(subscriber)
        subscriber.sleep(lambda: self._stopping or not subscriber.is_active())
        self._end_if_over(subscriber)

    def _end_if_over(self, subscriber: Subscriber) -> None:
        if self._stopping:
            raise errors.Unavailable('the server is shutting down')
        if not subscriber.is_active():
            raise errors.Cancelled('the client stopped waiting')

    def list_commits(self, project: str, repo: str, number: int = 0, reverse: bool = False,
                     to: Optional[CommitRef] = None, from_: Optional[CommitRef] = None,
                     origin: int = 0) -> list[CommitRec]:
        with self.db.read() as conn:
            repo_id = self.repo_row(conn, project, repo)[0]
            if from_ is not None and to is None:
                raise errors.InvalidArgument('cannot use `from` commit without `to` commit')
            if to is not None:
                if reverse:
                    raise errors.InvalidArgument("cannot use 'Reverse' while also using 'From' or 'To'")
                row, _ = self.resolve(conn, to)
                stop = self.resolve(conn, from_)[0].seq if from_ is not None else None
                rows = []
                while row is not None and row.seq != stop:
                    rows.append(row)
                    row = self.commit_by_seq(conn, row.parent_seq) if row.parent_seq else None
            else:
                rows = [CommitRow(*r) for r in conn.execute(
                    _COMMIT_COLUMNS + f'WHERE c.repo_id = ? ORDER BY c.seq {"ASC" if reverse else "DESC"}',
                    (repo_id,))]
            if origin:
                rows = [r for r in rows if r.origin == origin]
            if number > 0:
                rows = rows[:number]
            return [self._commit_rec(conn, r) for r in rows]

    def _commits_of_set(self, conn, set_id: str) -> list[CommitRow]:
        rows = [CommitRow(*r) for r in conn.execute(_COMMIT_COLUMNS + 'WHERE c.id = ? ORDER BY c.seq', (set_id,))]
        if not rows:
            raise errors.NotFound(f'no commits found for commitset {set_id}')
        return rows

    def inspect_commit_set(self, set_id: str, wait: bool = False,
                           is_active: Callable[[], bool] = lambda: True) -> list[CommitRec]:
        # Every commit here is its own commit set (no pipelines make siblings in other repos).
        with self.db.read() as conn:
            rows = self._commits_of_set(conn, set_id)
            if not wait:
                return [self._commit_rec(conn, row) for row in rows]
        return [self._wait_finished(row, is_active) for row in rows]

    def walk_commits(self, starts: list[CommitRef], upstream: bool, max_depth: int = 0,
                     max_commits: int = 0) -> list[CommitRec]:
        """WalkCommitProvenance (``upstream``) / WalkCommitSubvenance; see provenance.walk."""
        with self.db.read() as conn:
            seqs = [self.resolve(conn, ref)[0].seq for ref in starts]
            return [self._commit_rec(conn, self.commit_by_seq(conn, seq))
                    for seq in provenance.walk(conn, seqs, upstream, max_depth, max_commits)]

    def drop_commit(self, ref: CommitRef, recursive: bool = False) -> None:
        with self.db.write() as conn:
            row, _ = self.resolve(conn, ref)
            rows = self._with_subvenance(conn, row, recursive, 'drop')
            for one in rows:  # pachd checks them all first
                if conn.execute('SELECT 1 FROM commits WHERE parent_seq = ?', (one.seq,)).fetchone():
                    raise errors.FailedPrecondition(f'cannot drop a commit that has children: {one.repo_key}@{one.id}')
            for one in reversed(rows):  # downstream first
                self._drop_locked(conn, one)
        self.notify_changed()
        self.collect_garbage()

    def _with_subvenance(self, conn, row: CommitRow, recursive: bool, verb: str) -> list[CommitRow]:
        """The commit and the commits provenant on it (transitively), as pachd's drop and
        squash take them: without ``recursive`` a commit with subvenance is refused
        (``dropCommit``/``squashCommit`` in src/server/pfs/server/driver.go; code UNKNOWN)."""
        found, todo, seen = [row], [row.seq], {row.seq}
        while todo:
            for (seq,) in conn.execute('SELECT commit_seq FROM commit_provenance WHERE prov_seq = ? ORDER BY commit_seq',
                                       (todo.pop(),)):
                if seq not in seen:
                    seen.add(seq)
                    todo.append(seq)
                    found.append(self.commit_by_seq(conn, seq))
        if len(found) > 1 and not recursive:
            raise errors.Unknown(f'cannot {verb} commit ({row.repo_key}@{row.id}) with subvenance without recursive')
        return found

    def drop_commit_set(self, set_id: str) -> None:
        with self.db.write() as conn:
            for row in self._commits_of_set(conn, set_id):
                self._drop_locked(conn, row)
        self.notify_changed()
        self.collect_garbage()

    def _drop_locked(self, conn, row: CommitRow) -> None:
        if conn.execute('SELECT 1 FROM commits WHERE parent_seq = ?', (row.seq,)).fetchone():
            raise errors.FailedPrecondition(f'cannot drop a commit that has children: {row.repo_key}@{row.id}')
        # Branches at the dropped commit move back to its parent; a branch the commit
        # created (it has no parent) goes away with it.
        if row.parent_seq:
            conn.execute('UPDATE branches SET head_seq = ?, updated = ? WHERE head_seq = ?',
                         (row.parent_seq, time.time(), row.seq))
        else:
            conn.execute('DELETE FROM branches WHERE head_seq = ?', (row.seq,))
        for table in ('changes', 'snapshots', 'datums', 'pending_errors'):
            conn.execute(f'DELETE FROM {table} WHERE commit_seq = ?', (row.seq,))
        provenance.forget_commit(conn, row.seq)
        conn.execute('DELETE FROM commits WHERE seq = ?', (row.seq,))

    def squash_commit(self, ref: CommitRef, recursive: bool = False) -> None:
        with self.db.write() as conn:
            row, _ = self.resolve(conn, ref)
            rows = self._with_subvenance(conn, row, recursive, 'squash')
            for one in rows:
                self._check_squashable(conn, one)
            for one in reversed(rows):
                self._squash_locked(conn, one)
        self.notify_changed()
        self.collect_garbage()

    def squash_commit_set(self, set_id: str) -> None:
        with self.db.write() as conn:
            rows = self._commits_of_set(conn, set_id)
            for row in rows:  # pachd checks every commit of the set before squashing any
                self._check_squashable(conn, row)
            for row in rows:
                self._squash_locked(conn, row)
        self.notify_changed()
        self.collect_garbage()

    @staticmethod
    def _check_squashable(conn, row: CommitRow) -> None:
        if conn.execute('SELECT 1 FROM commits WHERE parent_seq = ?', (row.seq,)).fetchone() is None:
            # pachd's ErrSquashWithoutChildren (src/server/pfs/pfs.go): no gRPC status of
            # its own, so code UNKNOWN
            raise errors.Unknown(f'cannot squash a commit that has no children as that would cause data loss, '
                                 f'use the drop operation instead: {row.repo_key}@{row.id}')

    def _squash_locked(self, conn, row: CommitRow) -> None:
        """Remove a commit that has children, keeping its changes in them (pachd's squash):
        each child takes over the commit's changes under its own and gets its parent."""
        self._check_squashable(conn, row)
        children = [r[0] for r in conn.execute('SELECT seq FROM commits WHERE parent_seq = ?', (row.seq,))]
        for child in children:
            if not row.error:  # a failed commit's changes were never part of its children's trees
                conn.execute('INSERT OR IGNORE INTO changes(commit_seq, path, blob, size) '
                             'SELECT ?, path, blob, size FROM changes WHERE commit_seq = ?', (child, row.seq))
            conn.execute('UPDATE commits SET parent_seq = ? WHERE seq = ?', (row.parent_seq, child))
        if row.parent_seq:
            conn.execute('UPDATE branches SET head_seq = ?, updated = ? WHERE head_seq = ?',
                         (row.parent_seq, time.time(), row.seq))
        else:
            conn.execute('UPDATE branches SET head_seq = ?, updated = ? WHERE head_seq = ?',
                         (children[0], time.time(), row.seq))
        for table in ('changes', 'snapshots', 'datums', 'pending_errors'):
            conn.execute(f'DELETE FROM {table} WHERE commit_seq = ?', (row.seq,))
        provenance.forget_commit(conn, row.seq)
        conn.execute('DELETE FROM commits WHERE seq = ?', (row.seq,))

    def list_commit_sets(self, project: Optional[str] = None) -> list[list[CommitRec]]:
        """Commit sets, newest first; here each holds one commit (no pipelines make siblings)."""
        with self.db.read() as conn:
            query = _COMMIT_COLUMNS + ('WHERE r.project = ? ' if project else '') + 'ORDER BY c.seq DESC'
            rows = [CommitRow(*r) for r in conn.execute(query, (project,) if project else ())]
            groups: dict[str, list[CommitRec]] = {}
            for row in rows:
                groups.setdefault(row.id, []).append(self._commit_rec(conn, row))
            return list(groups.values())

    def find_commits(self, ref: CommitRef, path: str, limit: int = 0) -> Iterator[tuple[str, CommitRow, int]]:
        """pachd's FindCommits (``findCommits`` in src/server/pfs/server/driver.go, 2.12):
        from ``ref`` back through its ancestors, the commits whose own changes touch
        ``path`` (added, changed or deleted), then the last commit searched. Yields
        ('found' | 'last', commit, commits searched so far)."""
        target = paths.clean(path)
        with self.db.read() as conn:
            row, _ = self.resolve(conn, ref)
            found = searched = 0
            while True:
                if row.finished is None:
                    raise errors.Unavailable(f'commit {row.repo_key}@{row.id} not finished')
                if conn.execute('SELECT 1 FROM changes WHERE commit_seq = ? AND path = ?',
                                (row.seq, target)).fetchone():
                    found += 1
                    yield 'found', row, searched
                searched += 1
                parent = self.commit_by_seq(conn, row.parent_seq) if row.parent_seq else None
                if (limit and found == limit) or parent is None:
                    yield 'last', row, searched
                    return
                row = parent

    def fsck(self) -> list[str]:
        """Problems with the stored metadata (pachd's Fsck checks provenance, which does
        not exist here; these are the invariants this store relies on)."""
        problems = []
        with self.db.read() as conn:
            for project, repo, branch in conn.execute(
                    'SELECT r.project, r.name, b.name FROM branches b JOIN repos r ON r.id = b.repo_id '
                    'LEFT JOIN commits c ON c.seq = b.head_seq WHERE c.seq IS NULL'):
                problems.append(f'branch {project}/{repo}@{branch} points at a commit that does not exist')
            for project, repo, commit_id in conn.execute(
                    'SELECT r.project, r.name, c.id FROM commits c JOIN repos r ON r.id = c.repo_id '
                    'LEFT JOIN commits p ON p.seq = c.parent_seq '
                    'WHERE c.parent_seq IS NOT NULL AND (p.seq IS NULL OR p.repo_id != c.repo_id)'):
                problems.append(f'commit {project}/{repo}@{commit_id} has a parent that is missing or in another repo')
            for project, repo, commit_id, path, digest, size in conn.execute(
                    'SELECT r.project, r.name, c.id, ch.path, ch.blob, ch.size FROM changes ch '
                    'JOIN commits c ON c.seq = ch.commit_seq JOIN repos r ON r.id = c.repo_id '
                    'WHERE ch.blob IS NOT NULL'):
                if not self.blobs.exists(conn, digest, size):
                    problems.append(f'file {path} in commit {project}/{repo}@{commit_id} has lost its content')
        return problems

    def clear_commit(self, ref: CommitRef) -> None:
        with self.db.write() as conn:
            row, _ = self.resolve(conn, ref)
            if row.finished is not None:
                raise errors.FailedPrecondition('cannot clear finished commit')
            for table in ('changes', 'datums', 'pending_errors'):
                conn.execute(f'DELETE FROM {table} WHERE commit_seq = ?', (row.seq,))
        self.collect_garbage()

    def delete_all(self) -> None:
        with self.db.write() as conn:
            for table in ('changes', 'snapshots', 'datums', 'pending_errors', 'commit_provenance',
                          'branch_provenance', 'commits', 'branches', 'repos'):
                conn.execute(f'DELETE FROM {table}')
            conn.execute('DELETE FROM projects WHERE name != ?', (names.DEFAULT_PROJECT,))
        self.notify_changed()
        self.collect_garbage()

    def collect_garbage(self) -> int:
        """Delete contents no commit references any more (after drops and deletes).

        Runs under the write lock, so no upload can publish a content meanwhile; contents
        of uploads still streaming are in memory or under tmp/, out of its reach.
        """
        referenced = 'SELECT blob FROM changes WHERE blob IS NOT NULL UNION SELECT blob FROM snapshots'
        with self.db.write() as conn:
            removed = conn.execute(f'DELETE FROM small_blobs WHERE digest NOT IN ({referenced})').rowcount
            keep = {row[0].hex() for row in conn.execute(
                'SELECT blob FROM changes WHERE blob IS NOT NULL AND size > ? '
                'UNION SELECT blob FROM snapshots WHERE size > ?', (INLINE_LIMIT, INLINE_LIMIT))}
            return removed + self.blobs.remove_files_except(keep)

    # -- reading files -------------------------------------------------------------------
    @contextmanager
    def reading(self, ref: CommitRef) -> Iterator[View]:
        """A view of the files of ``ref``, valid (and consistent) inside the ``with`` block."""
        with self.db.read() as conn:
            yield self._view(conn, ref)

    @contextmanager
    def reading_diff(self, new: CommitRef, new_path: str, old: Optional[CommitRef],
                     old_path: Optional[str]) -> Iterator[DiffView]:
        """Differences between ``new`` and ``old`` (default: the parent of ``new``)."""
        with self.db.read() as conn:
            new_view = self._view(conn, new)
            if old is not None:
                old_view = self._view(conn, old)
            else:
                parent = self.commit_by_seq(conn, new_view.commit.parent_seq) if new_view.commit.parent_seq else None
                old_view = (View(parent, Tree(conn, tree.layers_for(conn, parent.seq)),
                                 functools.partial(self.open_content, conn)) if parent else None)
            yield DiffView(new_view, new_path, old_view, old_path if old_path is not None else new_path)

    def open_content(self, conn, digest: bytes, size: int):
        try:
            return self.blobs.open(conn, digest, size)
        except FileNotFoundError:
            # only possible when the commit was dropped while the read was starting
            raise errors.NotFound('file content is gone: its commit was dropped') from None
