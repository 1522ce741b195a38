"""Where the local PFS server answers as pachd 2.12 does, as the official pachyderm_sdk client
sees it over real gRPC: Commit.branch left empty, commit validation (file / directory
collisions, datum clashes), DeleteProject with force, GetFileTAR."""
from __future__ import annotations

import io
import tarfile

import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import StatusOf, sdk_put

OK = grpc.StatusCode


# ----------------------------------------------------------------------------- Commit.branch
def test_responses_leave_commit_branch_empty(sdk_client, sdk_repo):
    """pachd 2.11+ clears Commit.branch in every response; the commit's repo and id remain."""
    first = sdk_put(sdk_client, 'images@master', {'/a.txt': b'a'})
    started = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    commits = [started]
    info = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master'))
    commits += [info.commit, info.parent_commit]
    parent = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{first}'))
    commits += parent.child_commits
    commits.append(sdk_client.pfs.inspect_branch(branch=pfs.Branch.from_uri('images@master')).head)
    commits += [c.commit for c in sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images'))]
    file_info = sdk_client.pfs.inspect_file(file=pfs.File.from_uri(f'images@{first}:/a.txt'))
    commits.append(file_info.file.commit)
    commits += [fi.file.commit for fi in sdk_client.pfs.list_file(file=pfs.File.from_uri(f'images@{first}:/'))]

    assert {c.id for c in commits} == {first, started.id}
    for commit in commits:
        assert not betterproto_set(commit.branch) and commit.branch.name == '', commit
        assert commit.repo.name == 'images' and commit.repo.project.name == 'default'


def betterproto_set(message) -> bool:
    import betterproto

    return betterproto.serialized_on_wire(message)


# ----------------------------------------------------------------------------- validation
def finished_error(client, commit_id: str) -> str:
    return client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{commit_id}'),
                                     wait=pfs.CommitState.FINISHED).error


def test_file_and_directory_in_one_modify_file_fails_the_commit(sdk_client, sdk_repo):
    good = sdk_put(sdk_client, 'images@master', {'/keep.txt': b'k'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.put_file_from_bytes('/foo/bar', b'below')
        commit.put_file_from_bytes('/foo', b'a file where a directory is')
    assert finished_error(sdk_client, commit.id) == 'file / directory path collision (/foo/bar)'
    # reads through the branch skip the failed commit, as for any commit that finished with an error
    listed = [fi.file.path for fi in sdk_client.pfs.list_file(file=pfs.File.from_uri('images@master:/'))]
    assert listed == ['/keep.txt']
    assert sdk_client.pfs.inspect_branch(branch=pfs.Branch.from_uri('images@master')).head.id == commit.id
    # and the next commit builds on the last good one
    after = sdk_put(sdk_client, 'images@master', {'/next.txt': b'n'})
    assert finished_error(sdk_client, after) == ''
    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{after}')).parent_commit.id == commit.id
    listed = [fi.file.path for fi in sdk_client.pfs.list_file(file=pfs.File.from_uri('images@master:/'))]
    assert listed == ['/keep.txt', '/next.txt'] and good


def test_one_off_modify_file_on_a_branch_fails_the_same_way(sdk_client, sdk_repo):
    sdk_client.pfs.modify_file(iter([
        pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri('images@master')),
        pfs.ModifyFileRequest(add_file=pfs.AddFile(path='/a/b/c', raw=b'1')),
        pfs.ModifyFileRequest(add_file=pfs.AddFile(path='/a/b', raw=b'2')),
    ]))
    head = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master'), wait=pfs.CommitState.FINISHED)
    assert head.error == 'file / directory path collision (/a/b/c)'


def test_collision_across_two_commits(sdk_client, sdk_repo):
    sdk_put(sdk_client, 'images@master', {'/foo/bar': b'1'})
    second = sdk_put(sdk_client, 'images@master', {'/foo': b'2'})
    assert finished_error(sdk_client, second) == 'file / directory path collision (/foo/bar)'
    # the other way round: a directory written under an existing file
    sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@other'))
    sdk_put(sdk_client, 'images@other', {'/x': b'1'})
    below = sdk_put(sdk_client, 'images@other', {'/x/y/z': b'2'})
    assert finished_error(sdk_client, below) == 'file / directory path collision (/x/y/z)'


def test_collision_is_checked_between_neighbours_in_path_order_as_pachd_does(sdk_client, sdk_repo):
    """pachd compares each path with the one just before it: '/a-x' sorts between '/a' and
    '/a/b' ('-' < '/'), so that commit passes; deleting '/a-x' makes them neighbours."""
    passes = sdk_put(sdk_client, 'images@master', {'/a': b'1', '/a-x': b'2', '/a/b': b'3'})
    assert finished_error(sdk_client, passes) == ''
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.delete_file(path="/a-x")
    assert finished_error(sdk_client, commit.id) == 'file / directory path collision (/a/b)'


def test_deleting_the_file_first_is_fine(sdk_client, sdk_repo):
    sdk_put(sdk_client, 'images@master', {'/foo': b'1'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.delete_file(path="/foo")
        commit.put_file_from_bytes('/foo/bar', b'2')
    assert finished_error(sdk_client, commit.id) == ''
    assert [fi.file.path for fi in sdk_client.pfs.walk_file(file=pfs.File.from_uri('images@master:/'))] == [
        '/', '/foo/', '/foo/bar']


def test_large_commit_with_a_collision(sdk_client, sdk_repo):
    """More changes than the incremental check handles: the whole tree is scanned."""
    files = {f'/many/{i:05d}.txt': b'x' for i in range(2100)}
    files['/many/00007.txt/inner'] = b'y'
    commit = sdk_put(sdk_client, 'images@master', files)
    assert finished_error(sdk_client, commit) == 'file / directory path collision (/many/00007.txt/inner)'


def add(path, data, datum=''):
    return pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, datum=datum, raw=data))


def test_same_path_under_two_datums_fails_the_commit(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/out.txt', b'1', 'datum-b')]))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/other.txt', b'1', 'datum-a'),
                                     add('/out.txt', b'2', 'datum-a')]))
    sdk_client.pfs.finish_commit(commit=commit)
    assert finished_error(sdk_client, commit.id) == (
        'duplicate path output by different datums (/out.txt from datum-a and /out.txt from datum-b)')


def test_datum_clash_within_one_stream_and_with_the_default_datum(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/p', b'1'), add('/p', b'2', 'd1')]))
    sdk_client.pfs.finish_commit(commit=commit)
    assert finished_error(sdk_client, commit.id) == 'duplicate path output by different datums (/p from d1 and /p from default)'


def test_same_datum_twice_or_a_delete_in_between_is_fine(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/p', b'1', 'd1')]))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/p', b'2', 'd1')]))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/q', b'1', 'd1'),
                                     pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path='/q')),
                                     add('/q', b'2', 'd2')]))
    sdk_client.pfs.finish_commit(commit=commit)
    assert finished_error(sdk_client, commit.id) == ''
    assert b''.join(c.value for c in sdk_client.pfs.get_file(file=pfs.File.from_uri(f'images@{commit.id}:/p'))) == b'12'


# ----------------------------------------------------------------------------- projects
def test_delete_project_with_repos_is_refused_even_with_force(sdk_client):
    sdk_client.pfs.create_project(project=pfs.Project(name='lab'))
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('lab/scans'))
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('lab/notes'))
    for force in (False, True):
        with StatusOf(OK.FAILED_PRECONDITION) as refused:
            sdk_client.pfs.delete_project(project=pfs.Project(name='lab'), force=force)
        assert refused.error.details() == (
            'cannot delete project lab: repo lab/notes still exists\nrepo lab/scans still exists')
    assert sorted(r.repo.name for r in sdk_client.pfs.list_repo()) == ['notes', 'scans']
    sdk_client.pfs.delete_repos(projects=[pfs.Project(name='lab')])
    sdk_client.pfs.delete_project(project=pfs.Project(name='lab'), force=True)
    assert not sdk_client.pfs.project_exists(pfs.Project(name='lab'))


# ----------------------------------------------------------------------------- GetFileTAR
def tar_of(client, uri, **request) -> bytes:
    return b''.join(m.value for m in client.pfs.get_file_tar(file=pfs.File.from_uri(uri), **request))


def members(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        out = []
        for member in archive:
            content = archive.extractfile(member).read() if member.isfile() else None
            out.append((member.name, 'dir' if member.isdir() else 'file', member.size, content))
        return out


@pytest.fixture
def tree(sdk_client, sdk_repo):
    return sdk_put(sdk_client, 'images@master', {
        '/tasks/1.json': b'{"a": 1}', '/tasks/2.json': b'{"b": 2}', '/tasks/deep/3.json': b'3' * 1500,
        '/tasks/deep/4.txt': b'', '/cats/1.jpg': b'\xff\xd8jpeg', '/readme.md': b'hi'})


def test_get_file_tar_of_a_directory(sdk_client, tree):
    data = tar_of(sdk_client, 'images@master:/tasks')
    assert members(data) == [
        ('/tasks', 'dir', 0, None),
        ('/tasks/1.json', 'file', 8, b'{"a": 1}'),
        ('/tasks/2.json', 'file', 8, b'{"b": 2}'),
        ('/tasks/deep', 'dir', 0, None),
        ('/tasks/deep/3.json', 'file', 1500, b'3' * 1500),
        ('/tasks/deep/4.txt', 'file', 0, b''),
    ]
    # Go's tar writer: 512-byte blocks, two zero blocks at the end, no padding to a record
    assert len(data) % 512 == 0 and data.endswith(b'\0' * 1024)
    entries = 6 + 1 + 1 + 3  # six headers, two small contents, 1500 bytes in three blocks
    assert len(data) == (entries + 2) * 512
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        first = archive.getmembers()[1]
        assert (first.mode, first.mtime, first.uid, first.gid, first.uname) == (0, 0, 0, 0, '')


def test_get_file_tar_of_a_file_a_glob_and_the_root(sdk_client, tree):
    assert members(tar_of(sdk_client, 'images@master:/readme.md')) == [('/readme.md', 'file', 2, b'hi')]
    assert [m[0] for m in members(tar_of(sdk_client, 'images@master:/tasks/*.json'))] == [
        '/tasks/1.json', '/tasks/2.json']
    # a glob matching a directory brings what is below it
    assert [m[0] for m in members(tar_of(sdk_client, 'images@master:/*'))] == [
        '/cats', '/cats/1.jpg', '/readme.md', '/tasks', '/tasks/1.json', '/tasks/2.json', '/tasks/deep',
        '/tasks/deep/3.json', '/tasks/deep/4.txt']
    root = tar_of(sdk_client, f'images@{tree}:/')
    assert root[:2] == b'/\0' and root[156:157] == tarfile.DIRTYPE  # the root directory comes first, named '/'
    assert [m[0] for m in members(root)][1:3] == ['/cats', '/cats/1.jpg']
    ranged = tar_of(sdk_client, 'images@master:/tasks',
                    path_range=pfs.PathRange(lower='/tasks/2.json', upper='/tasks/deep/4.txt'))
    assert [m[0] for m in members(ranged)] == ['/tasks/2.json', '/tasks/deep', '/tasks/deep/3.json']
    # a range that starts inside a directory the glob matched still brings the rest of it
    ranged_glob = tar_of(sdk_client, 'images@master:/t*', path_range=pfs.PathRange(lower='/tasks/deep/'))
    assert [m[0] for m in members(ranged_glob)] == ['/tasks/deep', '/tasks/deep/3.json', '/tasks/deep/4.txt']
    only_json = tar_of(sdk_client, 'images@master:/tasks/**.json', path_range=pfs.PathRange(lower='/tasks/2.json'))
    assert [m[0] for m in members(only_json)] == ['/tasks/2.json', '/tasks/deep/3.json']


def test_get_file_tar_of_many_small_files_comes_in_few_messages(sdk_client, sdk_repo):
    files = {f'/tasks/{i:04d}.json': b'{"n": %d}' % i for i in range(600)}
    sdk_put(sdk_client, 'images@master', files)
    messages = list(sdk_client.pfs.get_file_tar(file=pfs.File.from_uri('images@master:/tasks')))
    got = members(b''.join(m.value for m in messages))
    assert [(name, content) for name, kind, _, content in got if kind == 'file'] == sorted(files.items())
    assert len(messages) < 5


def test_get_file_tar_errors(sdk_client, tree):
    with StatusOf(OK.NOT_FOUND, f'file /nope not found in repo default/images at commit {tree}'):
        tar_of(sdk_client, 'images@master:/nope')
    with StatusOf(OK.NOT_FOUND, 'not found'):
        tar_of(sdk_client, 'images@master:/*.nothing')
    with StatusOf(OK.NOT_FOUND, 'branch "nope" not found in repo default/images'):
        tar_of(sdk_client, 'images@nope:/')


def test_copy_file_under_another_datum_clashes_too(sdk_client, sdk_repo):
    source = sdk_put(sdk_client, 'images@master', {'/src.txt': b's'})
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    copy = pfs.CopyFile(dst='/dst.txt', datum='d2', src=pfs.File.from_uri(f'images@{source}:/src.txt'))
    sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), add('/dst.txt', b'1', 'd1'),
                                     pfs.ModifyFileRequest(copy_file=copy)]))
    sdk_client.pfs.finish_commit(commit=commit)
    assert finished_error(sdk_client, commit.id) == (
        'duplicate path output by different datums (/dst.txt from d1 and /dst.txt from d2)')
