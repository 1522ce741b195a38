"""The local PFS server, driven by the official pachyderm_sdk client over real gRPC."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import grpc
import psutil
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs
from pachyderm_sdk.errors import AuthServiceNotActivated

from label_studio_pachyderm.localpfs import LocalPFSError, start_server

from conftest import sdk_put as put

pfs_api = pfs  # the sdk's module, in the tests whose `pfs` argument is the server fixture

OK = grpc.StatusCode


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def quiet_grpc_client_log():
    """The sdk raises a failed stream's error inside a gRPC callback, which gRPC then logs at
    ERROR (and Label Studio's error reporting picks up). These tests fail streams on purpose."""
    logger = logging.getLogger('grpc._channel')
    was_disabled, logger.disabled = logger.disabled, True
    yield
    logger.disabled = was_disabled


@contextmanager
def rpc_error(code, fragment=None):
    with pytest.raises(grpc.RpcError) as info:
        yield info
    assert info.value.code() == code, info.value.details()
    if fragment is not None:
        assert fragment in info.value.details(), info.value.details()


def read(client, file_uri, offset=0):
    return b''.join(chunk.value for chunk in client.pfs.get_file(file=pfs.File.from_uri(file_uri), offset=offset))


def listing(client, file_uri):
    return [(fi.file.path, fi.file_type, fi.size_bytes) for fi in client.pfs.list_file(file=pfs.File.from_uri(file_uri))]


def walk(client, file_uri):
    return [fi.file.path for fi in client.pfs.walk_file(file=pfs.File.from_uri(file_uri))]


def glob(client, commit_uri, pattern):
    return [fi.file.path for fi in client.pfs.glob_file(commit=pfs.Commit.from_uri(commit_uri), pattern=pattern)]


def varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def is_finished(commit_info):
    # betterproto decodes an unset timestamp as the epoch
    return commit_info.finished.timestamp() > 0


def raw_add_file(path, data):
    """ModifyFileRequest{add_file: AddFile{path, raw: BytesValue{data}}}, encoded by hand
    because building 100k messages with betterproto takes minutes."""
    return field(2, field(1, path.encode()) + field(3, field(1, data)))


# ----------------------------------------------------------------------------- projects, repos
def test_version_and_default_project(sdk_client):
    version = sdk_client.get_version()
    assert (version.major, version.minor, version.additional) == (2, 12, '-localpfs')
    assert 'default' in [p.project.name for p in sdk_client.pfs.list_project()]
    assert sdk_client.pfs.inspect_project(project=pfs.Project(name='')).project.name == 'default'


def test_project_lifecycle(sdk_client):
    sdk_client.pfs.create_project(project=pfs.Project(name='lab'), description='first')
    with rpc_error(OK.ALREADY_EXISTS, 'project lab already exists'):
        sdk_client.pfs.create_project(project=pfs.Project(name='lab'))
    sdk_client.pfs.create_project(project=pfs.Project(name='lab'), description='second', update=True)
    assert sdk_client.pfs.inspect_project(project=pfs.Project(name='lab')).description == 'second'
    with rpc_error(OK.INVALID_ARGUMENT, 'bad.name'):
        sdk_client.pfs.create_project(project=pfs.Project(name='bad.name'))

    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('lab/scans'))
    with rpc_error(OK.FAILED_PRECONDITION, 'repo lab/scans still exists'):
        sdk_client.pfs.delete_project(project=pfs.Project(name='lab'))
    # pachd refuses with force too: the repos must be deleted first
    with rpc_error(OK.FAILED_PRECONDITION, 'cannot delete project lab: repo lab/scans still exists'):
        sdk_client.pfs.delete_project(project=pfs.Project(name='lab'), force=True)
    assert sdk_client.pfs.inspect_repo(repo=pfs.Repo.from_uri('lab/scans')).repo.name == 'scans'
    sdk_client.pfs.delete_repos(projects=[pfs.Project(name='lab')])
    sdk_client.pfs.delete_project(project=pfs.Project(name='lab'))
    assert not sdk_client.pfs.project_exists(pfs.Project(name='lab'))
    assert [r.repo.name for r in sdk_client.pfs.list_repo()] == []
    with rpc_error(OK.NOT_FOUND, 'project "lab" not found'):
        sdk_client.pfs.inspect_project(project=pfs.Project(name='lab'))


def test_repo_lifecycle(sdk_client):
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('images'), description='cats')
    sdk_client.pfs.create_project(project=pfs.Project(name='other'))
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('other/images'))
    with rpc_error(OK.ALREADY_EXISTS, 'repo default/images already exists'):
        sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('images'))
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('images'), description='dogs', update=True)

    info = sdk_client.pfs.inspect_repo(repo=pfs.Repo.from_uri('images'))
    assert (info.repo.project.name, info.repo.name, info.description) == ('default', 'images', 'dogs')
    assert info.branches == []  # creating a repo creates no branch
    assert list(sdk_client.pfs.list_branch(repo=pfs.Repo.from_uri('images'))) == []

    everywhere = sorted(str(r.repo) for r in sdk_client.pfs.list_repo())
    assert everywhere == ['default/images', 'other/images']
    only_other = [str(r.repo) for r in sdk_client.pfs.list_repo(projects=[pfs.Project(name='other')])]
    assert only_other == ['other/images']

    with rpc_error(OK.INVALID_ARGUMENT, 'name (my.repo) invalid'):
        sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('my.repo'))
    with rpc_error(OK.NOT_FOUND, 'project "nowhere" not found'):
        sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('nowhere/images'))

    assert sdk_client.pfs.delete_repo(repo=pfs.Repo.from_uri('images')).deleted
    assert not sdk_client.pfs.delete_repo(repo=pfs.Repo.from_uri('images')).deleted  # pachd: no error
    with rpc_error(OK.NOT_FOUND, 'repo default/images not found'):
        sdk_client.pfs.inspect_repo(repo=pfs.Repo.from_uri('images'))
    deleted = sdk_client.pfs.delete_repos(projects=[pfs.Project(name='other')])
    assert [str(r) for r in deleted.repos] == ['other/images']
    assert list(sdk_client.pfs.list_repo()) == []

    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('other/again'))
    sdk_client.pfs.delete_all()
    assert list(sdk_client.pfs.list_repo()) == []
    assert [p.project.name for p in sdk_client.pfs.list_project()] == ['default']


# ----------------------------------------------------------------------------- branches, commits
def test_branches(sdk_client, sdk_repo):
    first = put(sdk_client, 'images@master', {'/a.txt': b'a'})  # the first commit creates the branch
    branch = sdk_client.pfs.inspect_branch(branch=pfs.Branch.from_uri('images@master'))
    assert branch.head.id == first and not branch.head.branch.name  # pachd 2.11+ leaves it empty

    sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@review'), head=pfs.Commit.from_uri(f'images@{first}'))
    assert read(sdk_client, 'images@review:/a.txt') == b'a'
    sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@empty'))
    empty_head = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@empty'))
    assert empty_head.origin.kind == pfs.OriginKind.AUTO and is_finished(empty_head)
    assert listing(sdk_client, 'images@empty:/') == []

    names = sorted(b.branch.name for b in sdk_client.pfs.list_branch(repo=pfs.Repo.from_uri('images')))
    assert names == ['empty', 'master', 'review']
    sdk_client.pfs.delete_branch(branch=pfs.Branch.from_uri('images@review'))
    with rpc_error(OK.NOT_FOUND, 'branch "review" not found in repo default/images'):
        sdk_client.pfs.inspect_branch(branch=pfs.Branch.from_uri('images@review'))
    # the commit outlives the branch, as in pachd
    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{first}')).commit.id == first
    with rpc_error(OK.INVALID_ARGUMENT, 'name (bad.branch) invalid'):
        sdk_client.pfs.create_branch(branch=pfs.Branch(repo=pfs.Repo.from_uri('images'), name='bad.branch'))


def test_open_commit_is_invisible_through_the_branch(sdk_client, sdk_repo):
    first = put(sdk_client, 'images@master', {'/a.txt': b'one'})
    open_commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'), description='wip')
    assert re.fullmatch(r'[0-9a-f]{32}', open_commit.id)
    sdk_client.pfs.put_file_from_bytes(commit=open_commit, path='/b.txt', data=b'two')

    # the branch head moves at once ...
    assert sdk_client.pfs.inspect_branch(branch=pfs.Branch.from_uri('images@master')).head.id == open_commit.id
    info = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master'))
    assert info.commit.id == open_commit.id and not is_finished(info) and info.parent_commit.id == first
    # ... but reading the branch shows the last finished commit, and says which one it read
    assert [p for p, _, _ in listing(sdk_client, 'images@master:/')] == ['/a.txt']
    file_info = sdk_client.pfs.inspect_file(file=pfs.File.from_uri('images@master:/a.txt'))
    assert file_info.file.commit.id == first
    with rpc_error(OK.NOT_FOUND):
        read(sdk_client, 'images@master:/b.txt')
    # named by id, the open commit shows what was written to it
    assert read(sdk_client, f'images@{open_commit.id}:/b.txt') == b'two'

    with rpc_error(OK.FAILED_PRECONDITION, f'parent commit default/images@{open_commit.id} has not been finished'):
        sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))

    sdk_client.pfs.finish_commit(commit=open_commit, description='done')
    assert read(sdk_client, 'images@master:/b.txt') == b'two'
    finished = sdk_client.pfs.inspect_commit(commit=open_commit)
    assert finished.description == 'done' and is_finished(finished)
    assert finished.details.size_bytes == len(b'one') + len(b'two')
    with rpc_error(OK.FAILED_PRECONDITION, f'commit default/images@{open_commit.id} has already finished'):
        sdk_client.pfs.finish_commit(commit=open_commit)
    with rpc_error(OK.FAILED_PRECONDITION, 'has already finished'):
        sdk_client.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f'images@{open_commit.id}'), path='/c', data=b'')


def test_first_open_commit_of_a_branch_reads_as_empty(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    sdk_client.pfs.put_file_from_bytes(commit=commit, path='/x', data=b'x')
    assert listing(sdk_client, 'images@master:/') == []
    assert walk(sdk_client, 'images@master:/') == []
    sdk_client.pfs.finish_commit(commit=commit)
    assert walk(sdk_client, 'images@master:/') == ['/', '/x']


def test_commit_history(sdk_client, sdk_repo):
    ids = [put(sdk_client, 'images@master', {f'/{n}.txt': str(n).encode()}) for n in range(4)]
    listed = [c.commit.id for c in sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images'))]
    assert listed == ids[::-1]  # newest first
    assert [c.commit.id for c in sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images'), number=2)] == ids[:1:-1]
    oldest_first = sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images'), reverse=True)
    assert [c.commit.id for c in oldest_first] == ids
    to_from = sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images'), to=pfs.Commit.from_uri(f'images@{ids[3]}'),
                                     from_=pfs.Commit.from_uri(f'images@{ids[1]}'))
    assert [c.commit.id for c in to_from] == [ids[3], ids[2]]

    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master^')).commit.id == ids[2]
    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master~3')).commit.id == ids[0]
    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master.1')).commit.id == ids[0]
    assert [p for p, _, _ in listing(sdk_client, 'images@master^^:/')] == ['/0.txt', '/1.txt']
    middle = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{ids[1]}'))
    assert middle.parent_commit.id == ids[0] and [c.id for c in middle.child_commits] == [ids[2]]
    with rpc_error(OK.NOT_FOUND, 'commit default/images@master~9 not found'):
        sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master~9'))
    missing = 'ab' * 6 + '4' + 'c' * 19
    with rpc_error(OK.NOT_FOUND, f'commit default/images@{missing} not found'):
        sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{missing}'))
    # a commit named together with a branch is found by its id
    both = pfs.Commit(repo=pfs.Repo.from_uri('images'), id=ids[1], branch=pfs.Branch.from_uri('images@master'))
    assert sdk_client.pfs.inspect_commit(commit=both).commit.id == ids[1]


def test_inspect_commit_waits_for_finish(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    timer = threading.Timer(0.4, lambda: sdk_client.pfs.finish_commit(commit=commit))
    started = time.monotonic()
    timer.start()
    info = sdk_client.pfs.wait_commit(commit)
    assert is_finished(info) and time.monotonic() - started >= 0.35
    timer.join()


@pytest.mark.slow
def test_many_commits_chain_reads_stay_right(sdk_client, sdk_repo):
    # Enough commits to pass the point where the store keeps a full copy of the tree.
    expected, ids = {}, []
    for n in range(40):
        with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
            commit.put_file_from_bytes(f'/f{n:02d}', b'%d' % n)
            expected[f'/f{n:02d}'] = b'%d' % n
            if n % 3 == 0 and n:
                commit.delete_file(path=f'/f{n - 1:02d}')
                expected.pop(f'/f{n - 1:02d}')
        ids.append(commit.id)
        if n == 9:
            at_nine = dict(expected)
    assert walk(sdk_client, 'images@master:/')[1:] == sorted(expected)
    assert read(sdk_client, 'images@master:/f39') == b'39'
    assert [p for p, _, _ in listing(sdk_client, f'images@{ids[9]}:/')] == sorted(at_nine)
    assert sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master')).details.size_bytes == \
        sum(len(v) for v in expected.values())


def test_deletes_within_one_stream_reach_what_the_stream_staged(sdk_client, sdk_repo):
    """In ONE ModifyFile stream, a delete removes the staged files below a directory (named
    with a trailing slash, as pachd requires), or one staged file, and nothing else (the sdk's commit helpers open a stream per call)."""
    def stream(*requests):
        sdk_client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri('images@master')),
                                     *requests]))

    def add(path, data=None):
        return pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=data if data is not None else path.encode()))

    def delete(path):
        return pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))

    put(sdk_client, 'images@master', {'/old/kept.txt': b'k', '/d/old.txt': b'o'})
    stream(add('/d/a.txt'), add('/d/e/b.txt'), add('/dx.txt'), add('/top.txt'), add('/again.txt'),
           delete('/d/'),  # the directory (pachd: a trailing slash): staged and committed files below it
           delete('/old'),  # no trailing slash: the file /old (there is none), not the directory
           delete('/top.txt'),  # one staged file
           delete('/again.txt'), add('/again.txt', b'new'),
           delete('/missing.txt'))  # nothing there: no error, as pachd
    assert walk(sdk_client, 'images@master:/')[1:] == ['/again.txt', '/dx.txt', '/old/', '/old/kept.txt']
    assert read(sdk_client, 'images@master:/again.txt') == b'new'
    stream(add('/n/x.txt'), delete('/'), add('/only.txt', b'1'))  # everything, staged or committed
    assert walk(sdk_client, 'images@master:/')[1:] == ['/only.txt']


def test_finished_with_error_is_skipped_by_branch_reads(sdk_client, sdk_repo):
    good = put(sdk_client, 'images@master', {'/ok.txt': b'ok'})
    failed = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    sdk_client.pfs.put_file_from_bytes(commit=failed, path='/half.txt', data=b'partial')
    sdk_client.pfs.finish_commit(commit=failed, error='export failed')
    assert sdk_client.pfs.inspect_commit(commit=failed).error == 'export failed'
    assert [p for p, _, _ in listing(sdk_client, 'images@master:/')] == ['/ok.txt']
    assert sdk_client.pfs.inspect_file(file=pfs.File.from_uri('images@master:/ok.txt')).file.commit.id == good
    # the next commit builds on the last good one, as pachd does
    put(sdk_client, 'images@master', {'/next.txt': b'n'})
    assert [p for p, _, _ in listing(sdk_client, 'images@master:/')] == ['/next.txt', '/ok.txt']


def test_drop_commit_set(pfs, sdk_client, sdk_repo):
    first = put(sdk_client, 'images@master', {'/keep.txt': b'keep'})
    second = put(sdk_client, 'images@master', {'/drop.bin': os.urandom(200_000)})
    with rpc_error(OK.FAILED_PRECONDITION, f'cannot drop a commit that has children: default/images@{first}'):
        sdk_client.pfs.drop_commit_set(commit_set=pfs_api.CommitSet(id=first))
    sdk_client.pfs.drop_commit_set(commit_set=pfs_api.CommitSet(id=second))
    assert sdk_client.pfs.inspect_branch(branch=pfs_api.Branch.from_uri('images@master')).head.id == first
    assert [p for p, _, _ in listing(sdk_client, 'images@master:/')] == ['/keep.txt']
    assert not sdk_client.pfs.commit_exists(pfs_api.Commit.from_uri(f'images@{second}'))
    blob_files = [name for _, _, files in os.walk(os.path.join(pfs.data_dir, 'blobs')) for name in files]
    assert blob_files == []  # the dropped content is gone from disk

    sdk_client.pfs.drop_commit(commit=pfs_api.Commit.from_uri(f'images@{first}'))  # the branch's only commit
    assert not sdk_client.pfs.branch_exists(pfs_api.Branch.from_uri('images@master'))
    with rpc_error(OK.NOT_FOUND, 'no commits found for commitset'):
        sdk_client.pfs.drop_commit_set(commit_set=pfs_api.CommitSet(id=first))


# ----------------------------------------------------------------------------- writing files
def test_put_overwrite_append_and_chunks(sdk_client, sdk_repo):
    put(sdk_client, 'images@master', {'/notes.txt': b'hello'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.put_file_from_bytes('/notes.txt', b' world', append=True)
        commit.put_file_from_bytes('/other.txt', b'first')
        commit.put_file_from_bytes('/other.txt', b'second')  # a put replaces
    assert read(sdk_client, 'images@master:/notes.txt') == b'hello world'
    assert read(sdk_client, 'images@master:/other.txt') == b'second'

    # Chunks of one file in one stream concatenate, as the sdk sends big files.
    chunks = [os.urandom(300_000) for _ in range(4)]
    ops = [pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri('images@master')),
           pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path='/big.bin')),
           pfs.ModifyFileRequest(add_file=pfs.AddFile(path='/big.bin', raw=b''))]
    ops += [pfs.ModifyFileRequest(add_file=pfs.AddFile(path='/big.bin', raw=c)) for c in chunks]
    sdk_client.pfs.modify_file(iter(ops))  # a finished head: a new commit is made for the stream
    assert read(sdk_client, 'images@master:/big.bin') == b''.join(chunks)
    assert len(list(sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images')))) == 3

    put(sdk_client, 'images@master', {'/empty': b''})
    assert read(sdk_client, 'images@master:/empty') == b''
    assert sdk_client.pfs.inspect_file(file=pfs.File.from_uri('images@master:/empty')).size_bytes == 0


def test_write_to_a_new_branch_creates_it(sdk_client, sdk_repo):
    sdk_client.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri('images@fresh'), path='/a', data=b'a')
    head = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@fresh'))
    assert is_finished(head) and not head.parent_commit
    assert read(sdk_client, 'images@fresh:/a') == b'a'


def test_delete_files_and_directories(sdk_client, sdk_repo):
    put(sdk_client, 'images@master', {'/cats/1.jpg': b'1', '/cats/2.jpg': b'2', '/cats/sub/3.jpg': b'3',
                                  '/cats.txt': b'c', '/dogs/4.jpg': b'4'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.delete_file(path='/cats/')
        commit.delete_file(path='/dogs/4.jpg')
        commit.delete_file(path='/not-there')
    assert walk(sdk_client, 'images@master:/') == ['/', '/cats.txt']
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.delete_file(path='/')
        commit.put_file_from_bytes('/new.txt', b'n')  # applies after the delete, in order
    assert walk(sdk_client, 'images@master:/') == ['/', '/new.txt']


def test_copy_files_and_directories(sdk_client, sdk_repo):
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('other'))
    put(sdk_client, 'other@master', {'/src/a.txt': b'A', '/src/deep/b.txt': b'B', '/one.txt': b'1'})
    put(sdk_client, 'images@master', {'/log.txt': b'start-'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.copy_file(src=pfs.File.from_uri('other@master:/src'), dst='/copied')
        commit.copy_file(src=pfs.File.from_uri('other@master:/one.txt'), dst='/renamed.txt')
        commit.copy_file(src=pfs.File.from_uri('other@master:/one.txt'), dst='/log.txt', append=True)
    assert walk(sdk_client, 'images@master:/') == ['/', '/copied/', '/copied/a.txt', '/copied/deep/',
                                               '/copied/deep/b.txt', '/log.txt', '/renamed.txt']
    assert read(sdk_client, 'images@master:/copied/deep/b.txt') == b'B'
    assert read(sdk_client, 'images@master:/log.txt') == b'start-1'
    with rpc_error(OK.NOT_FOUND, 'file /nope not found in repo default/other'):
        with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
            commit.copy_file(src=pfs.File.from_uri('other@master:/nope'), dst='/x')


def test_invalid_paths_are_refused(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    with rpc_error(OK.INVALID_ARGUMENT, 'path (/a/../b) invalid: relative file paths are not allowed'):
        sdk_client.pfs.put_file_from_bytes(commit=commit, path='/a/../b', data=b'x')
    with rpc_error(OK.INVALID_ARGUMENT, 'globbing character (*) not allowed'):
        sdk_client.pfs.put_file_from_bytes(commit=commit, path='/a*.jpg', data=b'x')
    with rpc_error(OK.INVALID_ARGUMENT, 'only printable ASCII'):
        sdk_client.pfs.put_file_from_bytes(commit=commit, path='/caf\u00e9.jpg', data=b'x')
    with rpc_error(OK.INVALID_ARGUMENT, 'relative file paths are not allowed'):
        sdk_client.pfs.inspect_file(file=pfs.File.from_uri(f'images@{commit.id}:/../etc/passwd'))
    sdk_client.pfs.finish_commit(commit=commit)
    assert listing(sdk_client, 'images@master:/') == []  # nothing of the refused writes landed


def test_broken_stream_changes_nothing(sdk_client, sdk_repo):
    put(sdk_client, 'images@master', {'/before.txt': b'b'})
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))

    def failing_ops():
        yield pfs.ModifyFileRequest(set_commit=commit)
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path='/partial.bin', raw=os.urandom(100_000)))
        yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path='/before.txt'))
        raise RuntimeError('the client crashed mid-upload')

    with pytest.raises(grpc.RpcError):
        sdk_client.pfs.modify_file(failing_ops())
    sdk_client.pfs.put_file_from_bytes(commit=commit, path='/complete.txt', data=b'c')
    sdk_client.pfs.finish_commit(commit=commit)
    assert walk(sdk_client, 'images@master:/') == ['/', '/before.txt', '/complete.txt']


def test_a_client_crashing_right_after_its_last_message_changes_nothing(sdk_client, sdk_repo):
    """The crash lands between the last message and the close: grpcio may report it to the
    server as a normal end of stream first; the server must still see the cancel."""
    put(sdk_client, 'images@master', {'/before.txt': b'b'})
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))

    def crashing_ops(n):
        yield pfs.ModifyFileRequest(set_commit=commit)
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f'/crash-{n}.bin', raw=os.urandom(100_000)))
        yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path='/before.txt'))
        raise RuntimeError('the client crashed')

    for n in range(40):
        with pytest.raises(grpc.RpcError):
            sdk_client.pfs.modify_file(crashing_ops(n))
    sdk_client.pfs.finish_commit(commit=commit)
    assert walk(sdk_client, 'images@master:/') == ['/', '/before.txt']


def test_cancelled_listing_leaves_the_server_healthy(pfs, sdk_client, sdk_repo):
    put(sdk_client, 'images@master', {f'/f{n:04d}': b'x' * n for n in range(300)})
    channel = grpc.insecure_channel(f'127.0.0.1:{pfs.port}')
    raw_walk = channel.unary_stream('/pfs_v2.API/WalkFile', request_serializer=bytes,
                                    response_deserializer=lambda b: b)
    for _ in range(3):
        call = raw_walk(pfs_api.WalkFileRequest(file=pfs_api.File.from_uri('images@master:/')))
        assert len([next(call) for _ in range(10)]) == 10
        call.cancel()
    channel.close()
    put(sdk_client, 'images@master', {'/after.txt': b'after'})
    assert len(walk(sdk_client, 'images@master:/')) == 1 + 300 + 1
    assert read(sdk_client, 'images@master:/after.txt') == b'after'


def test_concurrent_writers(sdk_client, sdk_repo):
    commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    errors = []

    def shared_commit(worker):
        try:
            for n in range(15):
                sdk_client.pfs.put_file_from_bytes(commit=commit, path=f'/shared/{worker}-{n}', data=b'%d' % n)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    def own_branch(worker):
        try:
            for n in range(5):
                put(sdk_client, f'images@w{worker}', {f'/f{n}': b'%d-%d' % (worker, n)})
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shared_commit, args=(w,)) for w in range(6)]
    threads += [threading.Thread(target=own_branch, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sdk_client.pfs.finish_commit(commit=commit)
    assert len(walk(sdk_client, 'images@master:/shared')) == 1 + 6 * 15
    assert len(list(sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images')))) == 1 + 4 * 5
    for worker in range(4):
        assert read(sdk_client, f'images@w{worker}:/f4') == b'%d-4' % worker
        assert len(walk(sdk_client, f'images@w{worker}:/')) == 6


# ----------------------------------------------------------------------------- reading files
@pytest.fixture
def tree(sdk_client, sdk_repo):
    files = {'/a.txt': b'aa', '/b/1.jpg': b'1111', '/b/2.png': b'22', '/b/c/3.jpg': b'333',
             '/b.md': b'm', '/d-e/x.json': b'{}'}
    commit_id = put(sdk_client, 'images@master', files)
    return commit_id, files


def test_list_file(sdk_client, tree):
    assert listing(sdk_client, 'images@master:/') == [
        ('/a.txt', pfs.FileType.FILE, 2), ('/b.md', pfs.FileType.FILE, 1), ('/b/', pfs.FileType.DIR, 9),
        ('/d-e/', pfs.FileType.DIR, 2)]
    assert listing(sdk_client, 'images@master:/b') == [
        ('/b/1.jpg', pfs.FileType.FILE, 4), ('/b/2.png', pfs.FileType.FILE, 2), ('/b/c/', pfs.FileType.DIR, 3)]
    assert listing(sdk_client, 'images@master:/b/1.jpg') == [('/b/1.jpg', pfs.FileType.FILE, 4)]
    assert listing(sdk_client, 'images@master:/missing') == []
    paged = sdk_client.pfs.list_file(file=pfs.File.from_uri('images@master:/'), number=2,
                                 pagination_marker=pfs.File.from_uri('images@master:/a.txt'))
    assert [fi.file.path for fi in paged] == ['/b.md', '/b/']


def test_walk_glob_inspect(sdk_client, tree):
    commit_id, files = tree
    assert walk(sdk_client, 'images@master:/') == ['/', '/a.txt', '/b.md', '/b/', '/b/1.jpg', '/b/2.png', '/b/c/',
                                               '/b/c/3.jpg', '/d-e/', '/d-e/x.json']
    assert walk(sdk_client, 'images@master:/b/c') == ['/b/c/', '/b/c/3.jpg']
    assert walk(sdk_client, 'images@master:/a.txt') == ['/a.txt']
    with rpc_error(OK.NOT_FOUND, f'file /zzz not found in repo default/images at commit {commit_id}'):
        walk(sdk_client, 'images@master:/zzz')

    assert glob(sdk_client, 'images@master', '/*.jpg') == []
    assert glob(sdk_client, 'images@master', '/b/*.jpg') == ['/b/1.jpg']
    assert glob(sdk_client, 'images@master', '/**.jpg') == ['/b/1.jpg', '/b/c/3.jpg']
    assert glob(sdk_client, 'images@master', '/b/?.{jpg,png}') == ['/b/1.jpg', '/b/2.png']
    assert glob(sdk_client, 'images@master', '/[ab]*') == ['/a.txt', '/b.md', '/b/']
    assert glob(sdk_client, 'images@master', '/*') == ['/a.txt', '/b.md', '/b/', '/d-e/']

    info = sdk_client.pfs.inspect_file(file=pfs.File.from_uri('images@master:/b/1.jpg'))
    assert (info.file_type, info.size_bytes, info.hash) == (pfs.FileType.FILE, 4, hashlib.sha256(b'1111').digest())
    assert info.file.commit.id == commit_id and info.committed.timestamp() > 0
    directory = sdk_client.pfs.inspect_file(file=pfs.File.from_uri('images@master:/b'))
    assert (directory.file.path, directory.file_type, directory.size_bytes) == ('/b/', pfs.FileType.DIR, 9)
    assert sdk_client.pfs.path_exists(pfs.File.from_uri('images@master:/d-e/x.json'))
    assert not sdk_client.pfs.path_exists(pfs.File.from_uri('images@master:/d-e/y.json'))


def test_get_file(sdk_client, tree):
    assert read(sdk_client, 'images@master:/b/c/3.jpg') == b'333'
    assert read(sdk_client, 'images@master:/b/1.jpg', offset=1) == b'111'
    assert read(sdk_client, 'images@master:/b/1.jpg', offset=10) == b''
    with sdk_client.pfs.pfs_file(file=pfs.File.from_uri('images@master:/a.txt')) as handle:
        assert handle.read() == b'aa'
    assert read(sdk_client, 'images@master:/b/c/*.jpg') == b'333'  # GetFile takes a glob, as in pachd
    with rpc_error(OK.INVALID_ARGUMENT, 'cannot get directory'):
        read(sdk_client, 'images@master:/b')
    with rpc_error(OK.INVALID_ARGUMENT, 'matched multiple files'):
        read(sdk_client, 'images@master:/b/*')
    with rpc_error(OK.NOT_FOUND, 'file /nope.jpg not found in repo default/images at commit'):
        read(sdk_client, 'images@master:/nope.jpg')


def test_diff_file(sdk_client, tree):
    first, _ = tree
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.put_file_from_bytes('/a.txt', b'changed')
        commit.delete_file(path='/b/2.png')
        commit.put_file_from_bytes('/new/n.txt', b'n')
    changes = {}
    for d in sdk_client.pfs.diff_file(new_file=pfs.File.from_uri('images@master:/')):
        old = d.old_file.file.path if d.old_file else None
        new = d.new_file.file.path if d.new_file else None
        changes[new or old] = (old is not None, new is not None)
    assert changes == {'/': (True, True), '/a.txt': (True, True), '/b/': (True, True), '/b/2.png': (True, False),
                       '/new/': (False, True), '/new/n.txt': (False, True)}
    against_first = sdk_client.pfs.diff_file(new_file=pfs.File.from_uri(f'images@{commit.id}:/b'),
                                         old_file=pfs.File.from_uri(f'images@{first}:/b'))
    assert [(d.old_file.file.path, d.new_file.file.path if d.new_file else None) for d in against_first] == [
        ('/b/', '/b/'), ('/b/2.png', None)]
    unchanged = sdk_client.pfs.diff_file(new_file=pfs.File.from_uri('images@master:/b/c'),
                                     old_file=pfs.File.from_uri(f'images@{first}:/b/c'))
    assert list(unchanged) == []


def test_not_found_errors_name_the_object(sdk_client, sdk_repo):
    with rpc_error(OK.NOT_FOUND, 'repo default/nope not found'):
        sdk_client.pfs.inspect_repo(repo=pfs.Repo.from_uri('nope'))
    with rpc_error(OK.NOT_FOUND, 'branch "master" not found in repo default/images'):
        sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri('images@master'))
    with rpc_error(OK.NOT_FOUND, 'branch "master" not found in repo default/images'):
        listing(sdk_client, 'images@master:/')
    with rpc_error(OK.NOT_FOUND, 'repo default/nope not found'):
        listing(sdk_client, 'nope@master:/')
    assert not sdk_client.pfs.repo_exists(pfs.Repo.from_uri('nope'))
    assert not sdk_client.pfs.branch_exists(pfs.Branch.from_uri('images@master'))
    with rpc_error(OK.UNIMPLEMENTED, '/pfs_v2.API/Egress is not implemented by localpfs'):
        sdk_client.pfs.egress(commit=pfs.Commit.from_uri('images@master'))
    with rpc_error(OK.NOT_FOUND, 'repo default/other not found'):
        sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@out'), provenance=[pfs.Branch.from_uri('other@master')])
    with rpc_error(OK.UNIMPLEMENTED, 'localpfs does not implement branch triggers'):
        sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@out'), trigger=pfs.Trigger(branch='master', commits=2))
    with rpc_error(OK.NOT_FOUND, 'no commits found for commitset x'):
        sdk_client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id='x'))


# ----------------------------------------------------------------------------- auth, restart, startup
@pytest.mark.pfs_auth
def test_auth_token_required(pfs, sdk_client):
    anonymous = Client(host='127.0.0.1', port=pfs.port)
    assert anonymous.get_version().additional == '-localpfs'  # open, as on pachd
    with rpc_error(OK.UNAUTHENTICATED, 'no authentication token (try logging in)'):
        list(anonymous.pfs.list_repo())
    wrong = Client(host='127.0.0.1', port=pfs.port, auth_token='guess')
    with rpc_error(OK.UNAUTHENTICATED, 'provided auth token is corrupted or has expired'):
        wrong.pfs.create_repo(repo=pfs_api.Repo.from_uri('images'))
    with rpc_error(OK.UNAUTHENTICATED):
        wrong.pfs.put_file_from_bytes(commit=pfs_api.Commit.from_uri('images@master'), path='/a', data=b'a')
    good = sdk_client  # the fixture's client sends TOKEN
    good.pfs.create_repo(repo=pfs_api.Repo.from_uri('images'))
    put(good, 'images@master', {'/a': b'a'})
    assert read(good, 'images@master:/a') == b'a'
    assert good.auth.who_am_i().username
    with rpc_error(OK.UNAUTHENTICATED):
        read(wrong, 'images@master:/a')


def test_auth_off_ignores_tokens(sdk_client, pfs):
    with_token = Client(host='127.0.0.1', port=pfs.port, auth_token='anything')
    with_token.pfs.create_repo(repo=pfs_api.Repo.from_uri('images'))
    assert [r.repo.name for r in sdk_client.pfs.list_repo()] == ['images']
    with pytest.raises(AuthServiceNotActivated):
        sdk_client.auth.who_am_i()


def test_restart_keeps_everything(tmp_path):
    data_dir = str(tmp_path / 'pfs')
    with start_server('127.0.0.1', 0, data_dir) as srv:
        client = Client(host='127.0.0.1', port=srv.port)
        client.pfs.create_project(project=pfs.Project(name='lab'))
        client.pfs.create_repo(repo=pfs.Repo.from_uri('lab/images'))
        big = os.urandom(150_000)
        first = put(client, 'lab/images@master', {'/small.txt': b'small', '/big.bin': big}, description='one')
        pending = client.pfs.start_commit(branch=pfs.Branch.from_uri('lab/images@master'))
        client.pfs.put_file_from_bytes(commit=pending, path='/later.txt', data=b'later')
    with start_server('127.0.0.1', 0, data_dir) as srv:
        client = Client(host='127.0.0.1', port=srv.port)
        assert read(client, 'lab/images@master:/big.bin') == big
        assert read(client, f'lab/images@{first}:/small.txt') == b'small'
        assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'lab/images@{first}')).description == 'one'
        reopened = client.pfs.inspect_commit(commit=pfs.Commit.from_uri('lab/images@master'))
        assert reopened.commit.id == pending.id and not is_finished(reopened)  # still open
        client.pfs.finish_commit(commit=pending)
        assert read(client, 'lab/images@master:/later.txt') == b'later'


def test_startup_errors(tmp_path, pfs):
    with pytest.raises(LocalPFSError, match='cannot listen on 127.0.0.1:%d' % pfs.port):
        start_server('127.0.0.1', pfs.port, str(tmp_path / 'second'))
    blocker = tmp_path / 'not-a-dir'
    blocker.write_text('x')
    with pytest.raises(LocalPFSError, match='is not writable'):
        start_server('127.0.0.1', 0, str(blocker / 'pfs'))
    with pytest.raises(LocalPFSError, match='in use by another localpfs server'):
        start_server('127.0.0.1', 0, pfs.data_dir)
    busy = subprocess.run([sys.executable, '-m', 'label_studio_pachyderm.localpfs', '--port', str(pfs.port),
                           '--data-dir', str(tmp_path / 'third')], capture_output=True, text=True, timeout=30)
    assert busy.returncode == 2 and 'cannot listen on' in busy.stderr


# ----------------------------------------------------------------------------- scale
class _RandomSource:
    """A file-like source of ``size`` pseudo-random bytes that hashes what it hands out."""

    def __init__(self, size):
        self._left = size
        self._block = os.urandom(1 << 20)
        self._offset = 0
        self.sha256 = hashlib.sha256()

    def read(self, n=-1):
        n = self._left if n < 0 else min(n, self._left)
        out = bytearray()
        while len(out) < n:
            start = self._offset % len(self._block)
            piece = self._block[start:start + n - len(out)]
            out += piece
            self._offset += len(piece) + 7  # shift, so the blocks do not repeat exactly
        self._left -= n
        self.sha256.update(out)
        return bytes(out)


class _PeakRSS:
    """Samples the resident memory of some processes in the background; keeps the peaks."""

    def __init__(self, *pids):
        self._procs = [psutil.Process(pid) for pid in pids]
        self.base = [p.memory_info().rss for p in self._procs]
        self.peak = list(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            for i, proc in enumerate(self._procs):
                self.peak[i] = max(self.peak[i], proc.memory_info().rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def growth_mb(self):
        return [(peak - base) / 2**20 for peak, base in zip(self.peak, self.base)]


def _populate(data_dir, repo, count):
    """Write ``count`` small files in one commit through the store API (gRPC-free and fast)."""
    from label_studio_pachyderm.localpfs.store import CommitRef, Store
    from label_studio_pachyderm.localpfs.upload import Upload

    store = Store(data_dir)
    try:
        store.create_repo('default', repo)
        upload = Upload(store, CommitRef('default', repo, '', 'master'))
        for n in range(count):
            upload.add(f'/d{n % 10}/f{n:06d}.json', b'{"n": %d}' % n)
        upload.commit()
        started = time.monotonic()
        with store.reading(CommitRef('default', repo, '', 'master')) as view:
            walked = sum(1 for _ in view.walk('/'))
        return walked, time.monotonic() - started
    finally:
        store.close()


@pytest.fixture(scope='module')
def external_server(tmp_path_factory):
    """A server in its own process, over a data dir holding a 100,000-file commit."""
    data_dir = str(tmp_path_factory.mktemp('external') / 'pfs')
    os.makedirs(data_dir)
    walked, walk_seconds = _populate(data_dir, 'many', 100_000)
    proc = subprocess.Popen([sys.executable, '-m', 'label_studio_pachyderm.localpfs', '--port', '0',
                             '--data-dir', data_dir], stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:  # the server logs one line saying where it listens
            seen.append(line)
            match = re.search(r'listening on grpc://127\.0\.0\.1:(\d+)', line)
            if match or len(seen) > 20:
                break
        assert match, seen
        # keep reading its log, so a full pipe can never block the server
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield {'port': int(match.group(1)), 'pid': proc.pid, 'walked': walked, 'walk_seconds': walk_seconds}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0  # SIGTERM is a clean stop


@pytest.mark.slow
def test_100k_files_walk(external_server):
    assert external_server['walked'] == 100_000 + 10 + 1  # files, their 10 directories, the root
    assert external_server['walk_seconds'] < 5, external_server  # the server's own work
    channel = grpc.insecure_channel(f"127.0.0.1:{external_server['port']}")
    raw_walk = channel.unary_stream('/pfs_v2.API/WalkFile', request_serializer=bytes,
                                    response_deserializer=lambda b: b)
    request = pfs.WalkFileRequest(file=pfs.File.from_uri('many@master:/'))
    started = time.monotonic()
    messages = list(raw_walk(request))
    seconds = time.monotonic() - started
    assert len(messages) == 100_011
    # Per-message cost of gRPC in Python bounds this (~60-130 us/message on this class of machine).
    assert seconds < 45, seconds
    sample = [pfs.FileInfo.FromString(m) for m in messages[:3] + messages[-1:]]
    assert [fi.file.path for fi in sample] == ['/', '/d0/', '/d0/f000000.json', '/d9/f099999.json']
    assert sample[0].size_bytes == sum(len(b'{"n": %d}' % n) for n in range(100_000))
    client = Client(host='127.0.0.1', port=external_server['port'])
    assert [fi.file.path for fi in client.pfs.list_file(file=pfs.File.from_uri('many@master:/'))] == \
        [f'/d{n}/' for n in range(10)]
    assert read(client, 'many@master:/d7/f012347.json') == b'{"n": 12347}'
    channel.close()


def test_10k_files_in_one_modify_file_stream(external_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{external_server['port']}")
    modify = channel.stream_unary('/pfs_v2.API/ModifyFile', request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
    raw_walk = channel.unary_stream('/pfs_v2.API/WalkFile', request_serializer=bytes,
                                    response_deserializer=lambda b: b)
    client = Client(host='127.0.0.1', port=external_server['port'])
    client.pfs.create_repo(repo=pfs.Repo.from_uri('stream'))
    messages = [bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri('stream@master')))]
    messages += [raw_add_file(f'/labels/{n:05d}.json', b'{"id": %d}' % n) for n in range(10_000)]
    modify(iter(messages))
    commits = list(client.pfs.list_commit(repo=pfs.Repo.from_uri('stream')))
    assert len(commits) == 1 and is_finished(commits[0])  # one stream, one commit
    labels = client.pfs.inspect_file(file=pfs.File.from_uri('stream@master:/labels'))
    assert labels.size_bytes == sum(len(b'{"id": %d}' % n) for n in range(10_000))
    walked = list(raw_walk(pfs.WalkFileRequest(file=pfs.File.from_uri('stream@master:/labels'))))
    assert len(walked) == 1 + 10_000
    assert read(client, 'stream@master:/labels/09999.json') == b'{"id": 9999}'
    channel.close()


@pytest.mark.slow
def test_200mib_file_streams_with_bounded_memory(external_server):
    client = Client(host='127.0.0.1', port=external_server['port'])
    client.pfs.create_repo(repo=pfs.Repo.from_uri('large'))
    size = 200 * 2**20
    source = _RandomSource(size)
    with _PeakRSS(os.getpid(), external_server['pid']) as upload_memory:
        with client.pfs.commit(branch=pfs.Branch.from_uri('large@master')) as commit:
            commit.put_file_from_file(path='/video.bin', file=source)
    assert client.pfs.inspect_file(file=pfs.File.from_uri('large@master:/video.bin')).size_bytes == size

    received = hashlib.sha256()
    with _PeakRSS(os.getpid(), external_server['pid']) as download_memory:
        with client.pfs.pfs_file(file=pfs.File.from_uri('large@master:/video.bin')) as handle:
            while True:
                piece = handle.read(1 << 20)
                if not piece:
                    break
                received.update(piece)
    assert received.digest() == source.sha256.digest()
    tail = read(client, 'large@master:/video.bin', offset=size - 10)
    assert len(tail) == 10

    client_up, server_up = upload_memory.growth_mb()
    client_down, server_down = download_memory.growth_mb()
    # The sdk sends 19 MB messages and gRPC holds a few of them in flight, so some tens of
    # MB are expected on both sides; holding the 210 MB file would need more than these.
    assert server_up < 150 and server_down < 150, (server_up, server_down)
    assert client_up < 160 and client_down < 160, (client_up, client_down)
