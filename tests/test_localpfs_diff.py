"""The local PFS server's DiffFile against a model of pachd's diff, over real gRPC.

pachd's ``Differ`` (src/server/pfs/server/diff.go) merges the walks of both commits by path
and reports each entry whose hash differs or that exists on one side only, directories
included. The model below computes those walks from plain dicts of files; the server must
give the same answer both ways it diffs: in one pass holding the changes, and over two
walks when more files changed than it holds.
"""
from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from label_studio_pachyderm.localpfs import start_server, tree

# Names around '/' in sort order ('-' and '.' sort before it, '0' after), so directory
# entries fall between files the way they do in real repos.
_NAMES = ['a', 'a-b', 'a.txt', 'a0', 'b']
_CONTENTS = [b'', b'1', b'22', b'x' * 3]


# ----------------------------------------------------------------------------- the model
def _walk(files: dict[str, bytes], root: str) -> list[tuple[str, int, bytes]]:
    """(path, size, hash) of what WalkFile gives for ``root``: the file there, or the directory
    and everything below it, directories (trailing slash) before their contents, in path order."""
    if root.rstrip('/') in files:  # a file: the walk is that file
        data = files[root.rstrip('/')]
        return [(root.rstrip('/'), len(data), hashlib.sha256(data).digest())]
    prefix = root.rstrip('/') + '/'
    below = {path: data for path, data in files.items() if path.startswith(prefix)}
    if not below:
        return []
    entries: list[tuple[str, int, bytes]] = []

    def directory(path: str) -> tuple[int, bytes]:
        children: dict[str, tuple[int, bytes]] = {}  # sort key -> (size, hash)
        for file_path, data in below.items():
            if not file_path.startswith(path):
                continue
            rest = file_path[len(path):]
            if '/' in rest:
                child = path + rest.split('/', 1)[0] + '/'
                if child not in children:
                    children[child] = directory(child)
            else:
                children[file_path] = (len(data), hashlib.sha256(data).digest())
                entries.append((file_path, *children[file_path]))
        size = sum(size for size, _ in children.values())
        digest = hashlib.sha256(b''.join(children[key][1] for key in sorted(children))).digest()
        entries.append((path, size, digest))
        return size, digest

    directory(prefix)
    return sorted(entries)


def _expected_diff(old: dict[str, bytes], new: dict[str, bytes], root: str) -> list[tuple]:
    before = {path: (size, digest) for path, size, digest in _walk(old, root)}
    after = {path: (size, digest) for path, size, digest in _walk(new, root)}
    changes = []
    for path in sorted(before.keys() | after.keys()):
        if before.get(path, (0, None))[1] != after.get(path, (0, None))[1]:
            changes.append((path if path in before else None, before.get(path, (None,))[0],
                            path if path in after else None, after.get(path, (None,))[0]))
    return changes


# ----------------------------------------------------------------------------- the server
@pytest.fixture(scope='module')
def client(tmp_path_factory):
    with start_server('127.0.0.1', 0, str(tmp_path_factory.mktemp('pfs'))) as server:
        yield Client(host='127.0.0.1', port=server.port)


_repos = itertools.count()


def _commit(client, repo: str, put: dict[str, bytes], delete=()) -> str:
    with client.pfs.commit(branch=pfs.Branch.from_uri(f'{repo}@master')) as commit:
        for path in delete:
            commit.delete_file(path=path)
        for path, data in put.items():
            commit.put_file_from_bytes(path, data)
    return commit.id


def _served_diff(client, repo: str, old: str, new: str, root: str) -> list[tuple]:
    answer = client.pfs.diff_file(new_file=pfs.File.from_uri(f'{repo}@{new}:{root}'),
                                  old_file=pfs.File.from_uri(f'{repo}@{old}:{root}'))
    return [(d.old_file.file.path if d.old_file else None, d.old_file.size_bytes if d.old_file else None,
             d.new_file.file.path if d.new_file else None, d.new_file.size_bytes if d.new_file else None)
            for d in answer]


# ----------------------------------------------------------------------------- the cases
@st.composite
def _file_sets(draw):
    """{path: bytes} with no path that is both a file and a directory (pachd refuses those)."""
    paths = draw(st.lists(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3).map(lambda p: '/' + '/'.join(p)),
                          max_size=14, unique=True))
    files = {}
    for path in sorted(paths, key=len):
        if any(path.startswith(other + '/') for other in files):
            continue
        if not any(other.startswith(path + '/') for other in paths):
            files[path] = draw(st.sampled_from(_CONTENTS))
    return files


@st.composite
def _commit_pairs(draw):
    old = draw(_file_sets())
    deleted = draw(st.lists(st.sampled_from(sorted(old)), unique=True)) if old else []
    changed = {path: draw(st.sampled_from(_CONTENTS)) for path in draw(
        st.lists(st.sampled_from(sorted(old)), unique=True))} if old else {}
    added = {path: data for path, data in draw(_file_sets()).items()
             if not any(path.startswith(p + '/') or p.startswith(path + '/') for p in old)}
    put = {path: data for path, data in changed.items() if path not in deleted}
    put.update(added)
    new = {path: data for path, data in old.items() if path not in deleted}
    new.update(put)
    return old, new, deleted, put


@pytest.mark.slow
@pytest.mark.parametrize('held', [tree.DIFF_HELD_CHANGES, 0], ids=['one-pass', 'two-walks'])
@hsettings(max_examples=25, deadline=None,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=_commit_pairs(), root=st.sampled_from(['/', '/a', '/a-b', '/b/']))
def test_diff_file_matches_pachds_diff_of_the_two_walks(client, monkeypatch, held, case, root):
    monkeypatch.setattr(tree, 'DIFF_HELD_CHANGES', held)
    old, new, deleted, put = case
    repo = f'diff{next(_repos)}'
    client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    first = _commit(client, repo, old or {'/keep': b'k'})
    if not old:
        old = {'/keep': b'k'}
        new = {**new, '/keep': b'k'}
    second = _commit(client, repo, put, delete=deleted)
    assert _served_diff(client, repo, first, second, root) == _expected_diff(old, new, root)


def test_a_diff_of_a_file_path_and_a_large_diff_fall_back_to_the_walks(client, monkeypatch):
    """A path naming a file, and more changed files than are held, take the two-walk diff."""
    client.pfs.create_repo(repo=pfs.Repo.from_uri('fallback'))
    old = {'/d/a': b'1', '/d/b': b'2', '/f': b'3'}
    first = _commit(client, 'fallback', old)
    second = _commit(client, 'fallback', {'/d/c': b'4', '/f': b'33', '/e/x': b'5'}, delete=['/d/a'])
    new = {'/d/b': b'2', '/d/c': b'4', '/f': b'33', '/e/x': b'5'}
    assert _served_diff(client, 'fallback', first, second, '/f') == [('/f', 1, '/f', 2)]
    whole = _expected_diff(old, new, '/')
    assert [change[0] or change[2] for change in whole] == ['/', '/d/', '/d/a', '/d/c', '/e/', '/e/x', '/f']
    assert _served_diff(client, 'fallback', first, second, '/') == whole
    monkeypatch.setattr(tree, 'DIFF_HELD_CHANGES', 2)
    assert _served_diff(client, 'fallback', first, second, '/') == whole
