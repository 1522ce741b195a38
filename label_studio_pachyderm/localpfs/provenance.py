"""Branch provenance: what pachd does with it for commits and waits, minus the pipelines.

pachd 2.12 (``createBranch``, ``propagateBranches``, ``startCommit`` and ``inspectCommit``
in src/server/pfs/server/driver.go; errors in src/server/pfs/pfs.go):

* CreateBranch with ``provenance`` records the branch's direct provenance; branches named
  there that do not exist yet are created with an empty commit. A repo cannot be in the
  provenance of its own branch, and the branches connected by provenance may not hold two
  branches of one repo ("multiple branches from the same repo, ... cannot participate in a
  DAG"). A new branch, or one whose provenance changed, gets a new empty head commit
  (origin AUTO) whose provenance is the heads of its provenance branches.
* Whenever a branch gets a new head (a commit started on it, or CreateBranch moving it),
  every branch downstream of it gets a new open commit with the same id (one commit set),
  origin AUTO, on top of its head, provenant on its provenance branches' heads. Nothing
  finishes those commits here (a pipeline would); a client finishes them with FinishCommit.
* StartCommit on a branch that has provenance (an output branch) is refused.
* InspectCommit/SubscribeCommit waiting for READY wait until every commit in the commit's
  provenance has finished.

Stored as direct edges: ``branch_provenance`` (branch -> provenance branch) and
``commit_provenance`` (commit -> provenance commit).
"""
from __future__ import annotations

import time
from typing import Optional

from . import errors

BranchKey = tuple  # (repo_id, branch name)


def direct(conn, key: BranchKey) -> list[BranchKey]:
    return [tuple(r) for r in conn.execute(
        'SELECT prov_repo_id, prov_branch FROM branch_provenance WHERE repo_id = ? AND branch = ? '
        'ORDER BY prov_repo_id, prov_branch', key)]


def _direct_subvenance(conn, key: BranchKey) -> list[BranchKey]:
    return [tuple(r) for r in conn.execute(
        'SELECT repo_id, branch FROM branch_provenance WHERE prov_repo_id = ? AND prov_branch = ? '
        'ORDER BY repo_id, branch', key)]


def _closure(conn, key: BranchKey, step) -> list[BranchKey]:
    seen, order, todo = {key}, [], [key]
    while todo:
        for nxt in step(conn, todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
                todo.append(nxt)
    return order


def full(conn, key: BranchKey) -> list[BranchKey]:
    return _closure(conn, key, direct)


def subvenance(conn, key: BranchKey) -> list[BranchKey]:
    return _closure(conn, key, _direct_subvenance)


def repo_label(conn, repo_id: int) -> str:
    project, name = conn.execute('SELECT project, name FROM repos WHERE id = ?', (repo_id,)).fetchone()
    return f'{project}/{name}'


def branch_label(conn, key: BranchKey) -> str:
    return f'{repo_label(conn, key[0])}@{key[1]}'


def head_seq(conn, key: BranchKey) -> Optional[int]:
    row = conn.execute('SELECT head_seq FROM branches WHERE repo_id = ? AND name = ?', key).fetchone()
    return row[0] if row else None


def set_direct(conn, key: BranchKey, provenance: list[BranchKey]) -> bool:
    """Replace the branch's direct provenance; True if it changed. Checks pachd's rules."""
    for prov in provenance:
        if prov[0] == key[0]:
            raise errors.Unknown(f'repo {repo_label(conn, key[0])} cannot be in the provenance of its own branch')
    old = set(direct(conn, key))
    conn.execute('DELETE FROM branch_provenance WHERE repo_id = ? AND branch = ?', key)
    conn.executemany('INSERT OR IGNORE INTO branch_provenance(repo_id, branch, prov_repo_id, prov_branch) '
                     'VALUES (?, ?, ?, ?)', [(*key, *prov) for prov in provenance])
    if any(key in full(conn, prov) for prov in provenance):  # a cycle: the branch's own repo would be in its provenance
        raise errors.Unknown(f'repo {repo_label(conn, key[0])} cannot be in the provenance of its own branch')
    _check_dag(conn, key)
    return old != set(provenance)


def _check_dag(conn, key: BranchKey) -> None:
    """pachd's validateDAGStructure: the branches connected to ``key`` by provenance edges
    (either way) hold at most one branch per repo (this also rules out cycles)."""
    seen, todo = {key}, [key]
    while todo:
        current = todo.pop()
        for nxt in direct(conn, current) + _direct_subvenance(conn, current):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    repos = {}
    for repo_id, _ in sorted(seen):
        if repo_id in repos:
            raise errors.Unknown(f'multiple branches from the same repo, "{repo_label(conn, repo_id)}", '
                                 f'cannot participate in a DAG')
        repos[repo_id] = True


def record_commit(conn, seq: int, key: BranchKey) -> None:
    """The new commit ``seq`` on branch ``key`` is provenant on its provenance branches' heads."""
    heads = [head_seq(conn, prov) for prov in direct(conn, key)]
    conn.executemany('INSERT OR IGNORE INTO commit_provenance(commit_seq, prov_seq) VALUES (?, ?)',
                     [(seq, h) for h in heads if h is not None])


def refuse_output_branch(conn, key: BranchKey) -> None:
    if direct(conn, key):
        # pachd's ErrCommitOnOutputBranch: no gRPC status of its own, so code UNKNOWN
        raise errors.Unknown(f'cannot start a commit on an output branch: {branch_label(conn, key)}')


def propagate(conn, sources: list[BranchKey], commit_id: str, origin_auto: int) -> None:
    """Give every branch downstream of ``sources`` a new open commit ``commit_id``."""
    downstream = {}
    for source in sources:
        for key in subvenance(conn, source):
            downstream[key] = len(full(conn, key))
    now = time.time()
    for key in sorted(downstream, key=lambda k: (downstream[k], k)):  # upstream ones first
        parent = head_seq(conn, key)
        if parent is not None and conn.execute('SELECT id FROM commits WHERE seq = ?', (parent,)).fetchone()[0] == commit_id:
            continue
        seq = conn.execute(
            'INSERT INTO commits(id, repo_id, branch, parent_seq, origin, description, started) '
            "VALUES (?, ?, ?, ?, ?, '', ?)", (commit_id, key[0], key[1], parent, origin_auto, now)).lastrowid
        record_commit(conn, seq, key)
        conn.execute('INSERT INTO branches(repo_id, name, head_seq, created, updated) VALUES (?, ?, ?, ?, ?) '
                     'ON CONFLICT(repo_id, name) DO UPDATE SET head_seq = excluded.head_seq, '
                     'updated = excluded.updated', (key[0], key[1], seq, now, now))


def commit_provenance(conn, seq: int) -> list[tuple[str, str, str]]:
    """The direct provenance of a commit: (project, repo, id) of each."""
    return [tuple(r) for r in conn.execute(
        'SELECT r.project, r.name, c.id FROM commit_provenance p JOIN commits c ON c.seq = p.prov_seq '
        'JOIN repos r ON r.id = c.repo_id WHERE p.commit_seq = ? ORDER BY c.seq', (seq,))]


def walk(conn, starts: list[int], upstream: bool, max_depth: int = 0, max_commits: int = 0) -> list[int]:
    """WalkCommitProvenance (``upstream``) or WalkCommitSubvenance from each start in turn, as
    pachd 2.12's pfsdb.GetProvenantCommits/GetSubvenantCommits: breadth first along the commit
    provenance edges, the start itself left out; ``max_depth`` bounds the steps and
    ``max_commits`` the commits found from one start (0: no bound)."""
    step = ('SELECT prov_seq FROM commit_provenance WHERE commit_seq = ? ORDER BY prov_seq' if upstream else
            'SELECT commit_seq FROM commit_provenance WHERE prov_seq = ? ORDER BY commit_seq')
    return [seq for start in starts for seq in _walk_one(conn, start, step, max_depth, max_commits)]


def _walk_one(conn, start: int, step: str, max_depth: int, max_commits: int) -> list[int]:
    seen, level, found, depth = {start}, [start], [], 0
    while level and (not max_depth or depth < max_depth):
        depth += 1
        following = []
        for seq in level:
            for (nxt,) in conn.execute(step, (seq,)):
                if nxt not in seen:
                    seen.add(nxt)
                    following.append(nxt)
                    found.append(nxt)
                    if max_commits and len(found) >= max_commits:
                        return found
        level = following
    return found


def unfinished_provenance(conn, seq: int) -> bool:
    """Whether some commit in the (transitive) provenance of ``seq`` is still open."""
    seen, todo = set(), [seq]
    while todo:
        for (prov, finished) in conn.execute(
                'SELECT c.seq, c.finished FROM commit_provenance p JOIN commits c ON c.seq = p.prov_seq '
                'WHERE p.commit_seq = ?', (todo.pop(),)):
            if finished is None:
                return True
            if prov not in seen:
                seen.add(prov)
                todo.append(prov)
    return False


def forget_commit(conn, seq: int) -> None:
    conn.execute('DELETE FROM commit_provenance WHERE commit_seq = ? OR prov_seq = ?', (seq, seq))


def forget_branch(conn, key: BranchKey) -> None:
    conn.execute('DELETE FROM branch_provenance WHERE (repo_id = ? AND branch = ?) '
                 'OR (prov_repo_id = ? AND prov_branch = ?)', (*key, *key))


def forget_repo(conn, repo_id: int) -> None:
    conn.execute('DELETE FROM branch_provenance WHERE repo_id = ? OR prov_repo_id = ?', (repo_id, repo_id))
    seqs = 'SELECT seq FROM commits WHERE repo_id = ?'
    conn.execute(f'DELETE FROM commit_provenance WHERE commit_seq IN ({seqs}) OR prov_seq IN ({seqs})',
                 (repo_id, repo_id))
