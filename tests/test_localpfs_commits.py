"""SquashCommit(Set), ListCommitSet, FindCommits, Fsck and ModifyFile from a URL on the local
PFS server, driven by the official pachyderm_sdk client over real gRPC."""
from __future__ import annotations

import http.server
import pathlib
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import StatusOf, sdk_put

OK = grpc.StatusCode


def read(client, uri) -> bytes:
    return b''.join(c.value for c in client.pfs.get_file(file=pfs.File.from_uri(uri)))


def files(client, uri):
    return [fi.file.path for fi in client.pfs.walk_file(file=pfs.File.from_uri(uri)) if fi.file_type == pfs.FileType.FILE]


def commit_ids(client):
    return [c.commit.id for c in client.pfs.list_commit(repo=pfs.Repo.from_uri('images'))]


# ----------------------------------------------------------------------------- squash
def test_squash_commit_folds_its_changes_into_its_child(sdk_client, sdk_repo):
    first = sdk_put(sdk_client, 'images@master', {'/a.txt': b'a1', '/b.txt': b'b1'})
    middle = sdk_put(sdk_client, 'images@master', {'/a.txt': b'a2', '/c.txt': b'c2'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as last:
        last.put_file_from_bytes('/c.txt', b'c3')
        last.delete_file(path='/b.txt')
    before = {path: read(sdk_client, f'images@{last.id}:{path}') for path in files(sdk_client, f'images@{last.id}:/')}

    sdk_client.pfs.squash_commit(commit=pfs.Commit.from_uri(f'images@{middle}'))
    assert commit_ids(sdk_client) == [last.id, first]
    info = sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{last.id}'))
    assert info.parent_commit.id == first
    assert {p: read(sdk_client, f'images@master:{p}') for p in files(sdk_client, 'images@master:/')} == before
    assert before == {'/a.txt': b'a2', '/c.txt': b'c3'}
    with StatusOf(OK.NOT_FOUND, f'commit default/images@{middle} not found'):
        sdk_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f'images@{middle}'))
    # the diff of the child now covers what the squashed commit changed
    diff = {d.new_file.file.path for d in sdk_client.pfs.diff_file(new_file=pfs.File.from_uri(f'images@{last.id}:/'))
            if d.new_file.file.path}
    assert {'/a.txt', '/c.txt'} <= diff


def test_squash_without_children_is_refused(sdk_client, sdk_repo):
    only = sdk_put(sdk_client, 'images@master', {'/a.txt': b'a'})
    message = ('cannot squash a commit that has no children as that would cause data loss, '
               f'use the drop operation instead: default/images@{only}')
    with StatusOf(OK.UNKNOWN, message):
        sdk_client.pfs.squash_commit(commit=pfs.Commit.from_uri(f'images@{only}'))
    with StatusOf(OK.UNKNOWN, message):
        sdk_client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=only))
    with StatusOf(OK.NOT_FOUND, 'no commits found for commitset'):
        sdk_client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id='0' * 12 + '4' + '0' * 19))
    assert commit_ids(sdk_client) == [only]


def test_squash_commit_set_and_a_branch_at_the_squashed_commit(sdk_client, sdk_repo):
    first = sdk_put(sdk_client, 'images@master', {'/a.txt': b'a'})
    second = sdk_put(sdk_client, 'images@master', {'/b.txt': b'b'})
    third = sdk_put(sdk_client, 'images@master', {'/c.txt': b'c'})
    sdk_client.pfs.create_branch(branch=pfs.Branch.from_uri('images@pinned'), head=pfs.Commit.from_uri(f'images@{second}'))
    sdk_client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=second))
    assert commit_ids(sdk_client) == [third, first]
    # the branch at the squashed commit moves to its parent
    assert sdk_client.pfs.inspect_branch(branch=pfs.Branch.from_uri('images@pinned')).head.id == first
    assert files(sdk_client, 'images@master:/') == ['/a.txt', '/b.txt', '/c.txt']


# ----------------------------------------------------------------------------- commit sets
def test_list_commit_set(sdk_client, sdk_repo):
    first = sdk_put(sdk_client, 'images@master', {'/a.txt': b'a'})
    sdk_client.pfs.create_project(project=pfs.Project(name='lab'))
    sdk_client.pfs.create_repo(repo=pfs.Repo.from_uri('lab/scans'))
    other = sdk_put(sdk_client, 'lab/scans@master', {'/s.txt': b's'})
    second = sdk_put(sdk_client, 'images@master', {'/b.txt': b'b'})

    everything = list(sdk_client.pfs.list_commit_set())
    assert [cs.commit_set.id for cs in everything] == [second, other, first]
    in_default = list(sdk_client.pfs.list_commit_set(project=pfs.Project(name='default')))
    assert [cs.commit_set.id for cs in in_default] == [second, first]
    assert [(c.commit.id, c.commit.repo.name) for c in in_default[0].commits] == [(second, 'images')]


# ----------------------------------------------------------------------------- FindCommits
def test_find_commits_walks_back_from_start(sdk_client, sdk_repo):
    c1 = sdk_put(sdk_client, 'images@master', {'/a.txt': b'1', '/b.txt': b'1'})
    c2 = sdk_put(sdk_client, 'images@master', {'/b.txt': b'2'})
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as c3:
        c3.delete_file(path='/a.txt')
    c4 = sdk_put(sdk_client, 'images@master', {'/b.txt': b'4'})

    def find(path, limit=0, start='images@master'):
        out = []
        for resp in sdk_client.pfs.find_commits(start=pfs.Commit.from_uri(start), file_path=path, limit=limit):
            kind = 'found' if resp.is_set('found_commit') else 'last'
            commit = resp.found_commit if kind == 'found' else resp.last_searched_commit
            out.append((kind, commit.id, resp.commits_searched))
        return out

    assert find('/a.txt') == [('found', c3.id, 1), ('found', c1, 3), ('last', c1, 4)]
    assert find('/b.txt', limit=2) == [('found', c4, 0), ('found', c2, 2), ('last', c2, 3)]
    assert find('/nothing.txt', start=f'images@{c2}') == [('last', c1, 2)]

    open_commit = sdk_client.pfs.start_commit(branch=pfs.Branch.from_uri('images@master'))
    with StatusOf(OK.UNAVAILABLE, f'commit default/images@{open_commit.id} not finished'):
        find('/a.txt')


# ----------------------------------------------------------------------------- Fsck
def test_fsck_finds_nothing_wrong_and_then_a_lost_content(sdk_client, sdk_repo, pfs):
    sdk_put(sdk_client, 'images@master', {'/small.txt': b's', '/big.bin': b'x' * (1024 * 1024)})
    assert list(sdk_client.pfs.fsck()) == []
    blobs = [p for p in pathlib.Path(pfs.data_dir, 'blobs').rglob('*') if p.is_file()]
    assert len(blobs) == 1
    blobs[0].unlink()  # a content file lost behind the server's back
    problems = [r.error for r in sdk_client.pfs.fsck()]
    assert len(problems) == 1 and problems[0].startswith('file /big.bin in commit default/images@')


# ----------------------------------------------------------------------------- add_file from a URL
class _Handler(http.server.BaseHTTPRequestHandler):
    bodies = {'/hello.txt': b'hello from http', '/empty': b'', '/big.bin': bytes(range(256)) * 8192}

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = self.bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def add_url(client, commit_uri, path, url):
    client.pfs.modify_file(iter([
        pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri(commit_uri)),
        pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, url=pfs.AddFileUrlSource(url=url))),
    ]))


def test_add_file_from_http_url(sdk_client, sdk_repo, web):
    add_url(sdk_client, 'images@master', '/from/web.txt', f'{web}/hello.txt')
    assert read(sdk_client, 'images@master:/from/web.txt') == b'hello from http'
    with sdk_client.pfs.commit(branch=pfs.Branch.from_uri('images@master')) as commit:
        commit.put_file_from_url(path='/big.bin', url=f'{web}/big.bin')  # the sdk's own helper
        commit.put_file_from_url(path='/empty', url=f'{web}/empty')
    assert read(sdk_client, 'images@master:/big.bin') == _Handler.bodies['/big.bin']
    assert sdk_client.pfs.inspect_file(file=pfs.File.from_uri('images@master:/empty')).size_bytes == 0
    # like raw content, a URL source appends to what the file holds
    add_url(sdk_client, 'images@master', '/from/web.txt', f'{web}/hello.txt')
    assert read(sdk_client, 'images@master:/from/web.txt') == b'hello from http' * 2


def test_add_file_from_url_errors(sdk_client, sdk_repo, web, closed_port_url):
    with StatusOf(OK.UNKNOWN, f'error retrieving content from "{web}/missing": 404 Not Found'):
        add_url(sdk_client, 'images@master', '/x', f'{web}/missing')
    with StatusOf(OK.UNKNOWN, f'Get "{closed_port_url}/x"'):
        add_url(sdk_client, 'images@master', '/x', f'{closed_port_url}/x')
    with StatusOf(OK.UNIMPLEMENTED, 'http and https URLs only'):
        add_url(sdk_client, 'images@master', '/x', 's3://bucket/key')
    # nothing of a failed stream is applied: no commit was made
    assert list(sdk_client.pfs.list_commit(repo=pfs.Repo.from_uri('images'))) == []


@pytest.fixture
def closed_port_url():
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{sock.getsockname()[1]}'
