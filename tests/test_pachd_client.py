"""The pachd client layer against the local PFS server, over real gRPC on loopback."""
import io
import itertools
import threading
import time

import grpc
import pytest

from label_studio_pachyderm import pachd
from label_studio_pachyderm.pachd import FileOp

from conftest import PROJECT, TOKEN, commit_ids, restart_pfs
from tcp_proxy import CuttableProxy


@pytest.fixture
def pfs_client_timeout():
    return 5  # pfs_client's calls: what the listings below must finish well within


@pytest.fixture
def images_repo(pfs_client):
    """An empty repo 'images' in the default project."""
    pfs_client.create_repo(PROJECT, 'images')
    return 'images'


@pytest.fixture
def proxied_pfs(pfs):
    proxy = CuttableProxy(pfs.port)
    yield proxy
    proxy.close()


def put(client, repo, files, branch='master', **kwargs):
    return client.write_commit(PROJECT, repo, branch, [FileOp.put(p, d) for p, d in files.items()], **kwargs)


# ----------------------------------------------------------------------------- addresses
@pytest.mark.parametrize('text, host, port, tls', [
    ('grpc://pachd.example:30651', 'pachd.example', 30651, False),
    ('grpcs://pachd.example:443', 'pachd.example', 443, True),
    ('http://10.0.0.5:80', '10.0.0.5', 80, False),
    ('https://pachd.example', 'pachd.example', 30650, True),
    ('localhost:30650', 'localhost', 30650, False),
    ('localhost', 'localhost', 30650, False),
    ('  GRPC://Pachd.Example:1  ', 'pachd.example', 1, False),
    ('[::1]:30650', '::1', 30650, False),
    ('grpcs://[fe80::1]', 'fe80::1', 30650, True),
    ('grpc://pachd.example:30650/', 'pachd.example', 30650, False),
])
def test_parse_address_accepts(text, host, port, tls):
    address = pachd.parse_address(text)
    assert (address.host, address.port, address.tls) == (host, port, tls)


def test_address_url_and_target_bracket_ipv6():
    address = pachd.parse_address('[::1]:123')
    assert address.url == 'grpc://[::1]:123'
    assert address.target == '[::1]:123'
    assert pachd.parse_address('grpcs://h').url == 'grpcs://h:30650'


@pytest.mark.parametrize('text, problem', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('ftp://host:1', "unsupported scheme 'ftp'"),
    ('unix:///var/run/pachd.sock', "unsupported scheme 'unix'"),
    ('grpc://host:30650/api', 'path'),
    ('grpc://host:30650?x=1', 'query'),
    ('grpc://host:30650#frag', 'fragment'),
    ('grpc://:30650', 'host is empty'),
    ('grpc://host:port', 'port must be a number'),
    ('host:0', 'port must be a number from 1 to 65535'),
    ('host:65536', 'port must be a number from 1 to 65535'),
    ('host:', 'port is empty'),
    ('::1', 'IPv6'),
    ('[zz::1]:1', 'IPv6'),
    ('ho st:1', 'white space'),
    ('bad_host!:1', 'not a valid host name'),
])
def test_parse_address_rejects_with_the_problem_named(text, problem):
    with pytest.raises(pachd.PachdInvalidArgument) as info:
        pachd.parse_address(text)
    message = str(info.value)
    assert problem in message
    assert 'grpc://host:port' in message and 'grpcs://host:port' in message  # the accepted forms


def test_parse_address_rejects_user_info_without_echoing_it():
    with pytest.raises(pachd.PachdInvalidArgument) as info:
        pachd.parse_address(f'grpc://admin:{TOKEN}@host:30650')
    assert 'user name or password' in str(info.value)
    assert TOKEN not in str(info.value)


# ----------------------------------------------------------------------------- reaching pachd
def test_closed_port_fails_fast_with_unavailable(closed_port):
    client = pachd.PachdClient(f'127.0.0.1:{closed_port}', timeout=5)
    calls = [
        client.check,
        lambda: client.inspect_repo(PROJECT, 'images'),
        lambda: list(client.list_files(PROJECT, 'images', 'master')),
        lambda: client.read_file(PROJECT, 'images', 'master', 'a.txt'),
        lambda: client.write_commit(PROJECT, 'images', 'master', [FileOp.put('a', b'1')]),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(pachd.PachdUnavailable) as info:
            call()
        assert time.monotonic() - started < 2.5
        assert str(info.value).startswith(f'cannot reach pachd at grpc://127.0.0.1:{closed_port}: ')


def test_an_unreachable_ipv6_address_reads_as_written(closed_port):
    """gRPC escapes the brackets of an IPv6 address in its messages (ipv6:%5B::1%5D); the error does not."""
    client = pachd.PachdClient(f'grpc://[::1]:{closed_port}', timeout=2)
    with pytest.raises(pachd.PachdUnavailable) as info:
        client.check()
    message = str(info.value)
    assert message.startswith(f'cannot reach pachd at grpc://[::1]:{closed_port}: ') and '%5B' not in message, message
    assert f'[::1]:{closed_port}' in message.partition(': ')[2], message


@pytest.mark.slow
def test_mute_server_fails_within_the_timeout(mute_port):
    client = pachd.PachdClient(f'grpc://127.0.0.1:{mute_port}', timeout=1)
    for call in (client.check, lambda: list(client.list_repos()), lambda: list(client.list_commits(PROJECT, 'r')),
                 lambda: client.write_commit(PROJECT, 'r', 'master', [FileOp.put('a', b'1')])):
        started = time.monotonic()
        with pytest.raises(pachd.PachdUnavailable) as info:
            call()
        elapsed = time.monotonic() - started
        assert 0.8 < elapsed < 3, elapsed
        assert f'cannot reach pachd at grpc://127.0.0.1:{mute_port}' in str(info.value)


@pytest.mark.slow
def test_pachd_restarted_on_the_same_port_is_reached_again_at_once(pfs, images_repo):
    # A short timeout keeps the test short: calls to the stopped server wait that long for it.
    client = pachd.PachdClient(pfs.address, timeout=1.5)
    commit = put(client, images_repo, {'a.txt': b'a'})
    unary = (lambda: client.inspect_commit(PROJECT, images_repo, commit).id, commit)
    stream = (lambda: [e.path for e in client.list_files(PROJECT, images_repo, commit)], ['a.txt'])
    server = pfs
    for call, expected in (unary, stream):
        server.stop(grace=0)
        for _ in range(2):  # more than one failure: gRPC backs off longer between connection attempts
            started = time.monotonic()
            with pytest.raises(pachd.PachdUnavailable):
                call()
            assert time.monotonic() - started < 3
        server = restart_pfs(server)
        try:
            # Straight away: no "cannot reach" while the channel waits out its backoff.
            assert call() == expected
        finally:
            server.stop()


def test_tls_to_a_plaintext_server_is_unavailable(pfs):
    client = pachd.PachdClient(f'grpcs://127.0.0.1:{pfs.port}', timeout=2)
    assert client.address.tls
    with pytest.raises(pachd.PachdUnavailable, match=f'cannot reach pachd at grpcs://127.0.0.1:{pfs.port}'):
        client.check()
    # Root certificates imply TLS, as in the sdk.
    with_certs = pachd.PachdClient(f'127.0.0.1:{pfs.port}', root_certs='-----BEGIN CERTIFICATE-----')
    assert with_certs.address.url.startswith('grpcs://')


def test_check_returns_the_version(pfs_client):
    version = pfs_client.check()
    assert version.startswith('2.')


def test_long_reads_are_not_cut_off_by_the_timeout(pfs, tmp_path):
    client = pachd.PachdClient(pfs.address, timeout=0.5)
    client.create_repo(PROJECT, 'big')
    data = bytes(range(256)) * (4 * 4096)  # 4 MiB
    put(client, 'big', {'blob.bin': data})
    received = []
    with client.read_file(PROJECT, 'big', 'master', 'blob.bin') as stream:
        for chunk in stream.iter_chunks(1024 * 1024):
            received.append(chunk)
            time.sleep(0.3)  # the whole read takes > 1 s, twice the timeout
    assert b''.join(received) == data


# ----------------------------------------------------------------------------- projects and repos
def test_projects_and_repos(pfs_client):
    pfs_client.create_project('vision')
    pfs_client.create_project('vision')  # exist_ok by default
    with pytest.raises(pachd.PachdAlreadyExists):
        pfs_client.create_project('vision', exist_ok=False)

    pfs_client.create_repo('vision', 'frames', description='video frames')
    pfs_client.create_repo(PROJECT, 'frames')
    with pytest.raises(pachd.PachdAlreadyExists) as info:
        pfs_client.create_repo('vision', 'frames')
    assert "repo 'frames' already exists in project 'vision'" in str(info.value)
    pfs_client.create_repo('vision', 'frames', exist_ok=True)

    info = pfs_client.inspect_repo('vision', 'frames')
    assert (info.project, info.name, info.description, info.branches) == ('vision', 'frames', 'video frames', ())
    assert [(r.project, r.name) for r in pfs_client.list_repos('vision')] == [('vision', 'frames')]
    assert {(r.project, r.name) for r in pfs_client.list_repos()} == {('vision', 'frames'), (PROJECT, 'frames')}

    put(pfs_client, 'frames', {'a': b'12345'})
    info = pfs_client.inspect_repo(PROJECT, 'frames')
    assert info.branches == ('master',)
    assert info.size_bytes == 5


def test_bad_names_are_invalid_arguments(pfs_client):
    with pytest.raises(pachd.PachdInvalidArgument) as info:
        pfs_client.create_repo(PROJECT, 'no.dots')
    assert 'no.dots' in str(info.value)


# ----------------------------------------------------------------------------- branches and commits
def test_branches_commits_and_resolution(pfs_client, images_repo):
    first = put(pfs_client, images_repo, {'a.txt': b'a'}, description='one')
    second = put(pfs_client, images_repo, {'b.txt': b'b'}, description='two')
    assert pfs_client.branch_head(PROJECT, images_repo, 'master') == second
    assert pfs_client.resolve_commit(PROJECT, images_repo, 'master') == second
    assert pfs_client.resolve_commit(PROJECT, images_repo, 'master', first) == first

    info = pfs_client.inspect_commit(PROJECT, images_repo, second)
    # pachd 2.11+ leaves Commit.branch empty in every answer (so does the local server).
    assert (info.id, info.repo, info.project, info.branch, info.parent, info.description, info.finished) == (
        second, images_repo, PROJECT, None, first, 'two', True)
    assert info.started is not None

    # Newest first; ``limit`` keeps the newest.
    assert commit_ids(pfs_client, images_repo, 'master') == [second, first]
    assert [c.id for c in pfs_client.list_commits(PROJECT, images_repo, limit=1)] == [second]

    pfs_client.create_branch(PROJECT, images_repo, 'pinned', head=first)
    assert pfs_client.branch_head(PROJECT, images_repo, 'pinned') == first
    assert [e.path for e in pfs_client.list_files(PROJECT, images_repo, 'pinned')] == ['a.txt']


def test_commit_subvenance_finds_a_pipelines_output_commits_with_their_provenance(pfs_client, sdk_client):
    """An output repo with provenance on the input (how a pipeline's output looks): the output commits of
    an input commit, the first one with its id and a rerun (through a second provenance branch) with a new one."""
    from pachyderm_sdk.api import pfs as sdk_pfs

    for repo in ('raw', 'preds', 'spec'):
        pfs_client.create_repo(PROJECT, repo)
    sdk_client.pfs.create_branch(branch=sdk_pfs.Branch.from_uri('preds@master'),
                                 provenance=[sdk_pfs.Branch.from_uri('raw@master'), sdk_pfs.Branch.from_uri('spec@master')])
    sdk_client.pfs.finish_commit(commit=sdk_pfs.Commit.from_uri('preds@master'))
    first = put(pfs_client, 'raw', {'a.jpg': b'a'})
    output = pfs_client.inspect_commit(PROJECT, 'preds', first)
    assert not output.finished and ('default', 'raw', first) in output.provenance
    sdk_client.pfs.finish_commit(commit=sdk_pfs.Commit.from_uri(f'preds@{first}'))
    rerun = sdk_client.pfs.start_commit(branch=sdk_pfs.Branch.from_uri('spec@master')).id
    sdk_client.pfs.finish_commit(commit=sdk_pfs.Commit.from_uri(f'spec@{rerun}'))

    found = [(c.repo, c.id, c.finished) for c in pfs_client.commit_subvenance(PROJECT, 'raw', [first])]
    assert found == [('preds', first, True), ('preds', rerun, False)]
    assert list(pfs_client.commit_subvenance(PROJECT, 'raw', [])) == []
    with pytest.raises(pachd.PachdNotFound):
        list(pfs_client.commit_subvenance(PROJECT, 'raw', ['f' * 32]))


def test_an_output_branch_and_its_open_commits_filled_and_finished_as_a_pipeline_does(pfs_client):
    """create_branch with provenance makes an output branch; every input commit opens an output commit of
    the same id, which finish_open_commit fills and finishes (once: a second finish is refused, the commit
    kept); the output branch's own first head is finished the same way."""
    for repo in ('raw', 'preds'):
        pfs_client.create_repo(PROJECT, repo)
    first = put(pfs_client, 'raw', {'a.jpg': b'a'})
    pfs_client.create_branch(PROJECT, 'preds', 'master', provenance=[(PROJECT, 'raw', 'master')])
    head = pfs_client.inspect_commit(PROJECT, 'preds', 'master')
    assert ('default', 'raw', first) in head.provenance
    if not head.finished:  # pachd leaves it open for the pipeline
        pfs_client.finish_open_commit(PROJECT, 'preds', head.id, [FileOp.put('a.json', b'[]')])
        assert pfs_client.get_file_bytes(PROJECT, 'preds', head.id, 'a.json') == b'[]'

    second = put(pfs_client, 'raw', {'b.jpg': b'b'})
    output = pfs_client.inspect_commit(PROJECT, 'preds', second)
    assert not output.finished and output.provenance == (('default', 'raw', second),)
    pfs_client.finish_open_commit(PROJECT, 'preds', second, [FileOp.put('b.json', b'{"result": []}')],
                                  description='1 prediction')
    done = pfs_client.inspect_commit(PROJECT, 'preds', second)
    assert done.good and done.description == '1 prediction'
    assert pfs_client.get_file_bytes(PROJECT, 'preds', second, 'b.json') == b'{"result": []}'
    assert pfs_client.inspect_commit(PROJECT, 'raw', second).good, 'the input commit is untouched'
    with pytest.raises(pachd.PachdError):
        pfs_client.finish_open_commit(PROJECT, 'preds', second, [FileOp.put('c.json', b'[]')])
    assert pfs_client.inspect_commit(PROJECT, 'preds', second).good

    third = put(pfs_client, 'raw', {'c.jpg': b'c'})
    pfs_client.finish_open_commit(PROJECT, 'preds', third, [], error='the model failed')
    assert pfs_client.inspect_commit(PROJECT, 'preds', third).error == 'the model failed'


def test_set_commit_metadata_sets_its_keys_together_keeps_others_and_reads_back(pfs_client, sdk_client, images_repo):
    """pachd 2.12's commit metadata through the client: set (twice: the same answer), read in
    inspect_commit and list_commits, keys someone else set kept; a missing commit is PachdNotFound."""
    from pachyderm_sdk.api import metadata as sdk_md
    from pachyderm_sdk.api import pfs as sdk_pfs

    first = put(pfs_client, images_repo, {'a.txt': b'a'})
    assert pfs_client.inspect_commit(PROJECT, images_repo, first).metadata == ()
    picker = sdk_pfs.CommitPicker(id=sdk_pfs.CommitPickerCommitByGlobalId(repo=sdk_pfs.RepoPicker(
        name=sdk_pfs.RepoPickerRepoName(project=sdk_pfs.ProjectPicker(name=PROJECT), name=images_repo)), id=first))
    sdk_client.metadata.edit_metadata(edits=[sdk_md.Edit(commit=picker, add_key=sdk_md.EditAddKey(key='theirs',
                                                                                                   value='x'))])
    for _ in range(2):
        pfs_client.set_commit_metadata(PROJECT, images_repo, first, {'round': 1, 'card': '{"a": 1}'})
        info = pfs_client.inspect_commit(PROJECT, images_repo, first)
        assert info.metadata == (('card', '{"a": 1}'), ('round', '1'), ('theirs', 'x'))
    assert dict(next(iter(pfs_client.list_commits(PROJECT, images_repo, 'master'))).metadata)['round'] == '1'
    pfs_client.set_commit_metadata(PROJECT, images_repo, first, {})  # nothing to set: no call
    with pytest.raises(pachd.PachdNotFound) as missing:
        pfs_client.set_commit_metadata(PROJECT, images_repo, 'f' * 32, {'k': 'v'})
    assert missing.value.kind == 'commit'


def test_resolve_commit_rejects_what_is_not_a_commit_id(pfs_client, images_repo):
    with pytest.raises(pachd.PachdInvalidArgument):
        pfs_client.resolve_commit(PROJECT, images_repo, 'master', 'master')


def test_not_found_names_what_is_missing(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'cats/1.jpg': b'meow'})
    ghost = '0123456789abcdef0123456789abcdef'
    cases = [
        (lambda: pfs_client.inspect_repo('nowhere', 'images'), 'project', 'nowhere'),
        (lambda: pfs_client.create_repo('nowhere', 'images'), 'project', 'nowhere'),
        (lambda: pfs_client.inspect_repo(PROJECT, 'ghost'), 'repo', 'default/ghost'),
        (lambda: pfs_client.branch_head(PROJECT, 'ghost', 'master'), 'repo', 'default/ghost'),
        (lambda: pfs_client.branch_head(PROJECT, images_repo, 'dev'), 'branch', 'default/images@dev'),
        (lambda: pfs_client.resolve_commit(PROJECT, images_repo, 'master', ghost), 'commit',
         f'default/images@{ghost}'),
        (lambda: pfs_client.resolve_commit(PROJECT, 'ghost', 'master', ghost), 'repo', 'default/ghost'),
        (lambda: pfs_client.inspect_commit(PROJECT, images_repo, ghost), 'commit', f'default/images@{ghost}'),
        (lambda: list(pfs_client.list_commits(PROJECT, 'ghost')), 'repo', 'default/ghost'),
        (lambda: list(pfs_client.list_commits(PROJECT, images_repo, 'dev')), 'branch', 'default/images@dev'),
        (lambda: list(pfs_client.list_files(PROJECT, images_repo, ghost)), 'commit', f'default/images@{ghost}'),
        (lambda: list(pfs_client.list_files(PROJECT, images_repo, 'dev')), 'branch', 'default/images@dev'),
        (lambda: list(pfs_client.list_files(PROJECT, images_repo, commit, 'dogs')), 'file',
         f'default/images@{commit}:/dogs'),
        (lambda: pfs_client.inspect_file(PROJECT, images_repo, commit, 'cats/2.jpg'), 'file',
         f'default/images@{commit}:/cats/2.jpg'),
        (lambda: pfs_client.read_file(PROJECT, images_repo, commit, '/cats/2.jpg'), 'file',
         f'default/images@{commit}:/cats/2.jpg'),
        (lambda: pfs_client.get_file_bytes(PROJECT, 'ghost', commit, 'a'), 'repo', 'default/ghost'),
        (lambda: list(pfs_client.diff(PROJECT, images_repo, ghost, commit)), 'commit', f'default/images@{ghost}'),
        (lambda: pfs_client.write_commit(PROJECT, 'ghost', 'master', [FileOp.put('a', b'1')]), 'repo',
         'default/ghost'),
        (lambda: pfs_client.write_commit(PROJECT, images_repo, 'dev', [FileOp.put('a', b'1')],
                                           create_branch=False), 'branch', 'default/images@dev'),
    ]
    for call, kind, name in cases:
        with pytest.raises(pachd.PachdNotFound) as info:
            call()
        assert (info.value.kind, info.value.name) == (kind, name), str(info.value)
        message = str(info.value)
        assert kind in message and name.split('/')[-1].split('@')[0] in message
        if kind != 'project':
            assert "project 'default'" in message
    # Nothing above wrote a commit.
    assert commit_ids(pfs_client, images_repo) == [commit]


def test_missing_directory_in_a_flat_listing_is_empty(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'a': b'1'})
    assert list(pfs_client.list_files(PROJECT, images_repo, commit, 'nothing/here', recursive=False)) == []


# ----------------------------------------------------------------------------- writing
def test_many_files_in_exactly_one_commit(pfs_client, images_repo):
    base = put(pfs_client, images_repo, {'keep.txt': b'keep'})
    files = {f'batch/{i:04d}.json': f'{{"i": {i}}}'.encode() for i in range(300)}
    commit = pfs_client.write_commit(PROJECT, images_repo, 'master',
                                       (FileOp.put(p, d) for p, d in files.items()), description='batch')
    assert commit_ids(pfs_client, images_repo) == [commit, base]
    assert pfs_client.inspect_commit(PROJECT, images_repo, commit).parent == base
    listed = {e.path: e for e in pfs_client.list_files(PROJECT, images_repo, commit, 'batch')}
    assert set(listed) == set(files)
    assert all(e.commit == commit and e.size == len(files[p]) for p, e in listed.items())
    assert pfs_client.get_file_bytes(PROJECT, images_repo, commit, 'batch/0042.json') == b'{"i": 42}'
    assert pfs_client.get_file_bytes(PROJECT, images_repo, commit, 'keep.txt') == b'keep'


def test_put_overwrites_delete_removes_and_data_forms(pfs_client, images_repo):
    put(pfs_client, images_repo, {'a.txt': b'old content', 'gone.txt': b'x', 'dir/x': b'1', 'dir/y': b'2'})
    odd_chunks = [b'a' * 700_000, b'b' * 1_500_000, b'', b'c' * 3, b'd' * 1_048_576]
    commit = pfs_client.write_commit(PROJECT, images_repo, 'master', [
        FileOp.put('a.txt', b'new'),
        FileOp.remove('gone.txt'),
        FileOp.remove('dir/'),
        FileOp.put('chunks.bin', iter(odd_chunks)),
        FileOp.put('file-object.bin', io.BytesIO(b'z' * 2_500_000)),
        FileOp.put('empty', b''),
        FileOp.put('/leading/slash.txt', bytearray(b'ok')),
    ])
    paths = {e.path: e.size for e in pfs_client.list_files(PROJECT, images_repo, commit)}
    assert paths == {'a.txt': 3, 'chunks.bin': sum(map(len, odd_chunks)), 'file-object.bin': 2_500_000,
                     'empty': 0, 'leading/slash.txt': 2}
    assert pfs_client.get_file_bytes(PROJECT, images_repo, commit, 'a.txt') == b'new'  # replaced, not appended
    assert pfs_client.get_file_bytes(PROJECT, images_repo, commit, 'chunks.bin') == b''.join(odd_chunks)


def test_first_write_creates_the_branch(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'a': b'1'}, branch='labels')
    assert pfs_client.branch_head(PROJECT, images_repo, 'labels') == commit


def test_ops_are_consumed_on_the_calling_thread(pfs_client, images_repo):
    seen = set()

    def ops():
        for i in range(20):
            seen.add(threading.get_ident())
            yield FileOp.put(f'{i}.txt', b'x' * 300_000)

    pfs_client.write_commit(PROJECT, images_repo, 'master', ops())
    assert seen == {threading.get_ident()}


def test_description_callable_is_evaluated_after_the_ops(pfs_client, images_repo):
    written = []

    def ops():
        for name in ('a', 'b', 'c'):
            written.append(name)
            yield FileOp.put(name, name.encode())

    commit = pfs_client.write_commit(PROJECT, images_repo, 'master', ops(),
                                       description=lambda: f'wrote {",".join(written)}')
    assert pfs_client.inspect_commit(PROJECT, images_repo, commit).description == 'wrote a,b,c'


class Boom(Exception):
    pass


def test_failing_ops_leave_the_branch_as_it_was(pfs_client, images_repo):
    base = put(pfs_client, images_repo, {'a.txt': b'a'})

    def ops():
        for i in range(50):
            yield FileOp.put(f'new/{i}.bin', b'x' * 100_000)
        raise Boom('the database went away')

    with pytest.raises(Boom, match='the database went away'):
        pfs_client.write_commit(PROJECT, images_repo, 'master', ops())
    assert pfs_client.branch_head(PROJECT, images_repo, 'master') == base
    assert commit_ids(pfs_client, images_repo) == [base]
    assert [e.path for e in pfs_client.list_files(PROJECT, images_repo, 'master')] == ['a.txt']
    # And the branch takes the next write normally (nothing was left open on it).
    after = put(pfs_client, images_repo, {'b.txt': b'b'})
    assert pfs_client.inspect_commit(PROJECT, images_repo, after).parent == base


def test_failing_ops_on_a_new_branch_leave_no_branch(pfs_client, images_repo):
    def ops():
        yield FileOp.put('a', b'1')
        raise Boom('no')

    with pytest.raises(Boom):
        pfs_client.write_commit(PROJECT, images_repo, 'fresh', ops())
    with pytest.raises(pachd.PachdNotFound) as info:
        pfs_client.branch_head(PROJECT, images_repo, 'fresh')
    assert info.value.kind == 'branch'
    assert commit_ids(pfs_client, images_repo) == []


def test_pachd_rejecting_a_file_mid_stream_leaves_the_branch_as_it_was(pfs_client, images_repo):
    base = put(pfs_client, images_repo, {'a.txt': b'a'})
    ops = [FileOp.put(f'ok/{i}', b'1' * 1000) for i in range(10)] + [FileOp.put('bad*name', b'2')]
    with pytest.raises(pachd.PachdInvalidArgument) as info:
        pfs_client.write_commit(PROJECT, images_repo, 'master', ops)
    assert 'bad*name' in str(info.value)
    assert pfs_client.branch_head(PROJECT, images_repo, 'master') == base
    assert commit_ids(pfs_client, images_repo) == [base]


def test_losing_pachd_mid_write_raises_unavailable_and_names_the_commit_left_open(proxied_pfs, pfs_client,
                                                                                  images_repo):
    # A short timeout: the failed write waits that long for pachd to come back before giving up.
    client = pachd.PachdClient(proxied_pfs.address, timeout=1)
    base = put(client, images_repo, {'a.txt': b'a'})

    def ops():
        for i in range(5):
            yield FileOp.put(f'{i}', b'x' * 10_000)
        proxied_pfs.cut()
        for i in range(5, 50):
            yield FileOp.put(f'{i}', b'x' * 200_000)

    with pytest.raises(pachd.PachdUnavailable) as info:
        client.write_commit(PROJECT, images_repo, 'master', ops())
    message = str(info.value)
    assert message.startswith(f'cannot reach pachd at {proxied_pfs.address}')
    # With pachd out of reach the open commit cannot be dropped; the message says which one it is.
    assert 'could not be dropped' in message

    head = pfs_client.branch_head(PROJECT, images_repo, 'master')  # directly, not through the proxy
    assert head != base and f'commit {head} could not be dropped' in message
    assert pfs_client.inspect_commit(PROJECT, images_repo, head).finished is False
    # The next write says what blocks it instead of failing obscurely.
    proxied_pfs.restore()
    with pytest.raises(pachd.PachdError) as blocked:
        put(client, images_repo, {'b.txt': b'b'})
    assert blocked.value.code == 'FAILED_PRECONDITION'
    assert 'an earlier one was interrupted' in str(blocked.value) and head in str(blocked.value)


def test_losing_pachd_mid_write_and_getting_it_back_drops_the_commit(proxied_pfs, pfs_client, images_repo):
    client = pachd.PachdClient(proxied_pfs.address, timeout=3)
    base = put(client, images_repo, {'a.txt': b'a'})

    def ops():
        yield FileOp.put('0', b'x' * 10_000)
        proxied_pfs.cut()
        # The network comes back while the client, having lost the upload, waits for pachd.
        threading.Timer(1.0, proxied_pfs.restore).start()
        yield FileOp.put('1', b'x' * 5_000_000)

    with pytest.raises(pachd.PachdUnavailable) as info:
        client.write_commit(PROJECT, images_repo, 'master', ops())
    assert 'could not be dropped' not in str(info.value)
    assert pfs_client.branch_head(PROJECT, images_repo, 'master') == base
    assert commit_ids(pfs_client, images_repo) == [base]


def test_wrong_item_types_in_ops_fail_cleanly(pfs_client, images_repo):
    base = put(pfs_client, images_repo, {'a': b'1'})
    with pytest.raises(TypeError):
        pfs_client.write_commit(PROJECT, images_repo, 'master', [FileOp.put('b', 'text, not bytes')])
    with pytest.raises(TypeError):
        pfs_client.write_commit(PROJECT, images_repo, 'master', [('b', b'1')])
    with pytest.raises(pachd.PachdInvalidArgument):
        pfs_client.write_commit(PROJECT, images_repo, 'master', [FileOp.put('/', b'1')])
    assert commit_ids(pfs_client, images_repo) == [base]


# ----------------------------------------------------------------------------- reading
def test_listing_is_streamed_and_skips_directories(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'a/1.jpg': b'1', 'a/b/2.jpg': b'22', 'c.jpg': b'333'})
    listing = pfs_client.list_files(PROJECT, images_repo, commit)
    assert iter(listing) is listing  # a generator, not a list
    assert [(e.path, e.size, e.is_dir) for e in listing] == [('a/1.jpg', 1, False), ('a/b/2.jpg', 2, False),
                                                             ('c.jpg', 3, False)]
    flat = pfs_client.list_files(PROJECT, images_repo, commit, 'a', recursive=False)
    assert [e.path for e in flat] == ['a/1.jpg']
    with_dirs = pfs_client.list_files(PROJECT, images_repo, commit, '/a/', recursive=False, include_dirs=True)
    assert [(e.path, e.is_dir) for e in with_dirs] == [('a/1.jpg', False), ('a/b', True)]
    entry = pfs_client.inspect_file(PROJECT, images_repo, commit, 'a/b/2.jpg')
    assert (entry.path, entry.size, entry.commit, entry.is_dir) == ('a/b/2.jpg', 2, commit, False)
    assert len(entry.hash) == 64 and entry.committed is not None
    # A branch name reads its head; entries name the commit they were listed from.
    assert {e.commit for e in pfs_client.list_files(PROJECT, images_repo, 'master')} == {commit}


def test_a_long_listing_holds_no_deadline_per_message(pfs_client, images_repo, monkeypatch):
    """Every message re-arms the stream's idle deadline. The cancelled deadlines must not stay
    queued until they expire: at 1,000,000 files they held ~160 MB for the whole listing."""
    from label_studio_pachyderm.pachd import streams

    monkeypatch.setattr(streams._Watchdog, 'SWEEP_AT', 64)
    count = 2000  # listed well within the client's 5 s timeout: no deadline expires on its own
    commit = pfs_client.write_commit(PROJECT, images_repo, 'master',
                                       (FileOp.put(f'many/{i:05d}.txt', b'x') for i in range(count)))
    listed = peak = 0
    for _ in pfs_client.list_files(PROJECT, images_repo, commit, 'many'):
        listed += 1
        peak = max(peak, len(streams._watchdog._heap))
    assert listed == count
    assert peak <= 2 * 64 + 8


def test_swept_deadlines_leave_the_live_ones_firing_in_order(monkeypatch):
    from label_studio_pachyderm.pachd.streams import _Watchdog

    monkeypatch.setattr(_Watchdog, 'SWEEP_AT', 8)
    watchdog = _Watchdog()
    fired, done = [], threading.Event()
    live = [watchdog.schedule(0.2 + i * 0.05, lambda i=i: fired.append(i)) for i in range(3)]
    watchdog.schedule(0.5, done.set)
    for _ in range(100):
        watchdog.cancel(watchdog.schedule(0.3, lambda: fired.append('cancelled')))
        assert len(watchdog._heap) <= 2 * 8 + 4
    assert done.wait(10)
    assert fired == [0, 1, 2]
    watchdog.cancel(live[0])  # a deadline that already ran: nothing to cancel, nothing counted
    assert watchdog._heap == [] and watchdog._cancelled == 0


def test_listing_by_directory_gives_the_walk_and_reads_only_as_far_as_asked(pfs_client, images_repo, monkeypatch):
    names = ['a.png', 'b/c.png', 'b/d/e.png', 'b/d/f.txt', 'b/g.png', 'b0.png', 'z/y/x/w.png']
    commit = put(pfs_client, images_repo, {name: name.encode() for name in names})
    for path in ('', 'b', '/b/d/', 'a.png'):
        for recursive in (True, False):
            walked = [(e.path, e.size, e.hash) for e in
                      pfs_client.list_files(PROJECT, images_repo, commit, path, recursive=recursive)]
            by_directory = [(e.path, e.size, e.hash) for e in
                            pfs_client.list_files_by_directory(PROJECT, images_repo, commit, path, recursive)]
            assert by_directory == walked, (path, recursive)
    assert list(pfs_client.list_files_by_directory(PROJECT, images_repo, commit, 'missing')) == []

    # The first files come from the first directories alone: later ones are not listed yet.
    listed = []
    list_files = pfs_client.list_files
    monkeypatch.setattr(pfs_client, 'list_files', lambda *a, **kw: listed.append(a[3]) or list_files(*a, **kw))
    first_two = list(itertools.islice(pfs_client.list_files_by_directory(PROJECT, images_repo, commit), 2))
    assert [e.path for e in first_two] == ['a.png', 'b/c.png'] and listed == ['', 'b']


def test_read_ranges(pfs_client, images_repo):
    data = bytes(range(256)) * 40_000  # ~10 MiB, several server messages
    commit = put(pfs_client, images_repo, {'blob': data})

    def read(offset=0, length=None, chunk=1024 * 1024):
        stream = pfs_client.read_file(PROJECT, images_repo, commit, 'blob', offset=offset, length=length)
        chunks = list(stream.iter_chunks(chunk))
        assert all(len(c) == chunk for c in chunks[:-1]) and all(0 < len(c) <= chunk for c in chunks)
        return stream, b''.join(chunks)

    stream, body = read()
    assert body == data and (stream.size, stream.offset, stream.length) == (len(data), 0, len(data))
    assert read(offset=5, length=10)[1] == data[5:15]
    assert read(offset=3_000_000, length=4_500_000, chunk=65536)[1] == data[3_000_000:7_500_000]
    assert read(offset=len(data) - 7)[1] == data[-7:]
    stream, body = read(offset=len(data) + 10)
    assert body == b'' and stream.length == 0
    assert read(offset=0, length=0)[1] == b''
    assert read(offset=100, length=len(data) * 2)[1] == data[100:]
    with pytest.raises(pachd.PachdInvalidArgument):
        pfs_client.read_file(PROJECT, images_repo, commit, 'blob', offset=-1)


def test_files_of_finished_commits_are_inspected_once(pfs_client, images_repo, monkeypatch):
    from label_studio_pachyderm.pachd import client as client_module

    commit = put(pfs_client, images_repo, {'a': b'1', 'b': b'22', 'c': b'333', 'd/e': b'4'})
    calls = []
    real = pfs_client._rpc_inspect_file  # counts the InspectFile calls that reach the server
    monkeypatch.setattr(pfs_client, '_rpc_inspect_file',
                        lambda request, **kw: calls.append(request.file.path) or real(request, **kw))

    first = pfs_client.inspect_file(PROJECT, images_repo, commit, 'a')
    assert pfs_client.inspect_file(PROJECT, images_repo, commit, '/a') == first and calls == ['/a']
    with pfs_client.read_file(PROJECT, images_repo, commit, 'a') as stream:  # the proxy's pattern
        assert stream.read() == b'1'
    assert calls == ['/a']
    with pfs_client.read_file(PROJECT, images_repo, commit, 'b', entry=pfs_client.inspect_file(
            PROJECT, images_repo, commit, 'b')) as stream:
        assert stream.read() == b'22'
    assert calls == ['/a', '/b']
    # A branch moves and a directory's summary is not a file: asked each time.
    for _ in range(2):
        assert pfs_client.inspect_file(PROJECT, images_repo, 'master', 'a').size == 1
        assert pfs_client.inspect_file(PROJECT, images_repo, commit, 'd').is_dir
    assert calls == ['/a', '/b'] + ['/a', '/d'] * 2

    monkeypatch.setattr(client_module, 'INSPECT_CACHE_SIZE', 2)
    pfs_client.inspect_file(PROJECT, images_repo, commit, 'c')  # evicts the least recently used: a
    del calls[:]
    pfs_client.inspect_file(PROJECT, images_repo, commit, 'a')
    pfs_client.inspect_file(PROJECT, images_repo, commit, 'c')
    assert calls == ['/a']
    monkeypatch.setattr(client_module, 'INSPECT_CACHE_SECONDS', -1)  # expired at once
    pfs_client.inspect_file(PROJECT, images_repo, commit, 'b')
    pfs_client.inspect_file(PROJECT, images_repo, commit, 'b')
    assert calls == ['/a', '/b', '/b']


def test_reading_a_directory_is_refused(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'d/a': b'1'})
    with pytest.raises(pachd.PachdInvalidArgument, match='is a directory'):
        pfs_client.read_file(PROJECT, images_repo, commit, 'd')


def test_get_file_bytes_max_bytes(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'t.json': b'[1, 2, 3]'})
    assert pfs_client.get_file_bytes(PROJECT, images_repo, commit, 't.json', max_bytes=9) == b'[1, 2, 3]'
    with pytest.raises(pachd.PachdInvalidArgument, match='more than 8'):
        pfs_client.get_file_bytes(PROJECT, images_repo, commit, 't.json', max_bytes=8)


def test_read_files_streams_many_files_in_one_call(pfs_client, images_repo):
    files = {f'tasks/{i:03d}.json': b'{"n": %d}' % i for i in range(200)}
    files.update({'tasks/sub/deep.json': b'{}', 'tasks/big.json': b'x' * 5000, 'tasks/cat.jpg': b'jpeg',
                  'tasks/UPPER.JSON': b'{}', 'other/far.json': b'{}'})
    commit = put(pfs_client, images_repo, files)
    got = list(pfs_client.read_files(PROJECT, images_repo, commit, 'tasks/**.{json,jsonl}', max_file_bytes=4096))
    expected = sorted((path, data) for path, data in files.items()
                      if path.startswith('tasks/') and path.endswith('.json'))
    assert got == [(path, None if path == 'tasks/big.json' else data) for path, data in expected]
    flat = [path for path, _ in pfs_client.read_files(PROJECT, images_repo, commit, 'tasks/*.{json,jsonl}',
                                                         start='tasks/198.json')]
    assert flat == ['tasks/198.json', 'tasks/199.json', 'tasks/big.json']


def test_read_files_closed_early_cancels_and_errors_are_mapped(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {f'f/{i:04d}.json': b'y' * 4096 for i in range(2000)})
    files = pfs_client.read_files(PROJECT, images_repo, commit, 'f/*.json')
    assert next(files) == ('f/0000.json', b'y' * 4096)
    files.close()  # cancels the call: no error, pachd stops sending
    with pytest.raises(pachd.PachdNotFound):
        list(pfs_client.read_files(PROJECT, images_repo, commit, 'nothing/*.json'))
    with pytest.raises(pachd.PachdNotFound):
        list(pfs_client.read_files(PROJECT, images_repo, 'master0', 'f/*.json'))


def test_close_cancels_the_stream_mid_way(pfs_client, images_repo):
    data = b'q' * (16 * 1024 * 1024)
    commit = put(pfs_client, images_repo, {'big': data})
    stream = pfs_client.read_file(PROJECT, images_repo, commit, 'big')
    chunks = stream.iter_chunks(64 * 1024)
    assert len(next(chunks)) == 64 * 1024
    stream.close()
    assert list(chunks) == []  # the iteration ends, no error
    call = stream._stream._call
    assert call.code() == grpc.StatusCode.CANCELLED  # the RPC itself was cancelled, pachd stops sending
    with pytest.raises(pachd.PachdError, match='read already'):
        next(stream.iter_chunks())


def test_close_from_another_thread_stops_a_blocked_reader(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {'big': b'w' * (8 * 1024 * 1024)})
    stream = pfs_client.read_file(PROJECT, images_repo, commit, 'big')
    received = []
    started = threading.Event()

    def reader():
        for chunk in stream.iter_chunks(1024):
            received.append(len(chunk))
            started.set()
            time.sleep(0.001)  # a slow consumer: the close lands while the stream still has data to send

    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(5)
    stream.close()
    thread.join(5)
    assert not thread.is_alive()
    assert 0 < sum(received) < 8 * 1024 * 1024


def test_abandoned_listing_cancels_its_stream(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {f'{i:03d}': b'1' for i in range(200)})
    listing = pfs_client.list_files(PROJECT, images_repo, commit)
    assert next(listing).path == '000'
    listing.close()
    # The connection is still fine for the next call.
    assert len(list(pfs_client.list_files(PROJECT, images_repo, commit))) == 200


def test_diff(pfs_client, images_repo):
    old = put(pfs_client, images_repo, {'img/a.jpg': b'a', 'img/b.jpg': b'b', 'img/c.jpg': b'c',
                                          'other/x': b'x'})
    new = pfs_client.write_commit(PROJECT, images_repo, 'master', [
        FileOp.put('img/b.jpg', b'bbb'), FileOp.remove('img/c.jpg'), FileOp.put('img/new/d.jpg', b'dd'),
        FileOp.put('other/y', b'y'),
    ])
    changes = sorted((d.path, d.change, d.size) for d in pfs_client.diff(PROJECT, images_repo, old, new))
    assert changes == [('img/b.jpg', 'modified', 3), ('img/c.jpg', 'deleted', 0), ('img/new/d.jpg', 'added', 2),
                       ('other/y', 'added', 1)]
    under = sorted((d.path, d.change) for d in pfs_client.diff(PROJECT, images_repo, old, new, 'img'))
    assert under == [('img/b.jpg', 'modified'), ('img/c.jpg', 'deleted'), ('img/new/d.jpg', 'added')]
    modified = next(d for d in pfs_client.diff(PROJECT, images_repo, old, new) if d.change == 'modified')
    assert modified.hash == pfs_client.inspect_file(PROJECT, images_repo, new, 'img/b.jpg').hash
    everything = sorted((d.path, d.change) for d in pfs_client.diff(PROJECT, images_repo, '', new, 'img'))
    assert everything == [('img/a.jpg', 'added'), ('img/b.jpg', 'added'), ('img/new/d.jpg', 'added')]
    assert list(pfs_client.diff(PROJECT, images_repo, new, new)) == []


# ----------------------------------------------------------------------------- auth and secrets
@pytest.mark.pfs_auth
def test_auth_token_required_and_checked(pfs, monkeypatch):
    address = pfs.address
    # The server's environment must never stand in for a storage's missing token.
    monkeypatch.setenv('PACH_PYTHON_AUTH_TOKEN', TOKEN)
    monkeypatch.setenv('PACH_PYTHON_OIDC_TOKEN', 'an-oidc-id-token')
    anonymous = pachd.PachdClient(address, timeout=3)
    wrong = pachd.PachdClient(address, auth_token='not-the-token', timeout=3)
    for client in (anonymous, wrong):
        for call in (client.check, lambda: list(client.list_repos()),
                     lambda: client.create_repo(PROJECT, 'r'),
                     lambda: client.write_commit(PROJECT, 'r', 'master', [FileOp.put('a', b'1')])):
            with pytest.raises(pachd.PachdAuthError) as info:
                call()
            assert str(info.value).startswith('pachd rejected the auth token (missing, wrong or expired)')
            assert info.value.code == 'UNAUTHENTICATED'

    right = pachd.PachdClient(address, auth_token=TOKEN, timeout=3)
    assert right.check().startswith('2.')
    right.create_repo(PROJECT, 'r')
    commit = put(right, 'r', {'a': b'1'})
    assert right.get_file_bytes(PROJECT, 'r', commit, 'a') == b'1'


@pytest.mark.pfs_auth
def test_token_never_appears_in_messages_or_reprs(pfs, closed_port):
    client = pachd.PachdClient(pfs.address, auth_token=TOKEN, timeout=3)
    assert TOKEN not in repr(client) and 'auth=token' in repr(client)
    assert TOKEN not in repr(vars(client)['_sdk'].__dict__)
    # A repo named like the token: pachd's and our messages would quote it.
    errors = []
    for call in (lambda: client.inspect_repo(PROJECT, TOKEN),
                 lambda: client.branch_head(PROJECT, TOKEN, 'master'),
                 lambda: client.inspect_repo(TOKEN, 'x'),
                 lambda: client.write_commit(PROJECT, TOKEN, 'master', [FileOp.put('a', b'1')])):
        with pytest.raises(pachd.PachdError) as info:
            call()
        errors.append(info.value)
    unreachable = pachd.PachdClient(f'127.0.0.1:{closed_port}', auth_token=TOKEN, timeout=1)
    with pytest.raises(pachd.PachdUnavailable) as info:
        unreachable.check()
    errors.append(info.value)
    for err in errors:
        assert TOKEN not in str(err) and TOKEN not in repr(err)
        assert TOKEN not in getattr(err, 'name', '')
    assert '***' in str(errors[0])


def test_config_context_reads_the_active_context_and_hides_its_token(tmp_path, monkeypatch):
    import base64
    import json

    config = tmp_path / 'config.json'
    config.write_text(json.dumps({'v2': {'active_context': 'prod', 'contexts': {
        'dev': {'pachd_address': 'grpc://dev:1'},
        'prod': {'pachd_address': 'grpcs://pachd.example:443', 'session_token': TOKEN, 'project': 'vision',
                 'server_cas': base64.b64encode(b'PEM').decode()},
    }}}))
    monkeypatch.setenv('PACH_CONFIG', str(config))
    context = pachd.config_context()
    assert (context.name, context.address, context.token, context.root_certs, context.project) == (
        'prod', 'grpcs://pachd.example:443', TOKEN, b'PEM', 'vision')
    assert TOKEN not in repr(context)
    with pytest.raises(pachd.PachdInvalidArgument, match='no Pachyderm config file'):
        pachd.config_context(str(tmp_path / 'missing.json'))


def test_token_with_bad_characters_is_refused_without_echo():
    with pytest.raises(pachd.PachdInvalidArgument) as info:
        pachd.PachdClient('127.0.0.1:1', auth_token='abc\ndef')
    assert 'abc' not in str(info.value)


# ----------------------------------------------------------------------------- the shared clients
def test_get_client_caches_per_settings(pfs):
    pachd.clear_client_cache()
    try:
        first = pachd.get_client(pfs.address, None, None, 5)
        assert pachd.get_client(pfs.address, None, None, 5) is first
        assert pachd.get_client(pfs.address, TOKEN, None, 5) is not first
        assert pachd.get_client(pfs.address, None, None, 6) is not first
        assert pachd.get_client(pfs.address, None, None, None).timeout == pachd.DEFAULT_TIMEOUT

        got = []
        barrier = threading.Barrier(8)

        def fetch():
            barrier.wait()
            got.append(pachd.get_client(pfs.address, 'thread-token', None, 5))

        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(c) for c in got}) == 1
        first.check()
    finally:
        pachd.clear_client_cache()
    assert first._closed


def test_one_client_serves_many_threads(pfs_client, images_repo):
    commit = put(pfs_client, images_repo, {f'{i}.txt': str(i).encode() * 1000 for i in range(16)})
    results = {}

    def worker(i):
        results[i] = pfs_client.get_file_bytes(PROJECT, images_repo, commit, f'{i}.txt')

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: str(i).encode() * 1000 for i in range(16)}


def test_closed_client_refuses_calls(pfs):
    client = pachd.PachdClient(pfs.address)
    client.close()
    with pytest.raises(pachd.PachdError, match='closed'):
        list(client.list_repos())
    with pytest.raises(pachd.PachdError, match='closed'):
        client.write_commit(PROJECT, 'r', 'master', [])


@pytest.mark.parametrize('path, raw', [
    ('/a.json', b'{"x": 1}'), ('/dir/empty.json', b''), ('/big.bin', bytes(range(256)) * 700),
    ('/' + 'n' * 300 + '.txt', b'\x00\xff'),
])
def test_hand_encoded_modify_requests_equal_the_sdk_encoding(path, raw):
    from label_studio_pachyderm.pachd import wire
    from pachyderm_sdk.api import pfs

    assert wire.add_file(path, raw) == bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=raw)))
    assert wire.delete_file(path) == bytes(pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path)))
    parsed = pfs.ModifyFileRequest().parse(wire.add_file(path, raw))
    assert parsed.add_file.path == path and parsed.add_file.raw == raw


def _sdk_file_info(path, file_type, committed=None, size=0, hash_=b'', commit_id=''):
    import datetime

    from pachyderm_sdk.api import pfs

    info = pfs.FileInfo(file=pfs.File(path=path), file_type=file_type, size_bytes=size, hash=hash_)
    if commit_id:
        info.file.commit = pfs.Commit(id=commit_id, repo=pfs.Repo(name='images', type='user',
                                                                  project=pfs.Project(name='default')))
    if committed is not None:
        info.committed = datetime.datetime.fromtimestamp(committed, datetime.timezone.utc)
    return info


@pytest.mark.parametrize('fields', [
    dict(path='/a.png', file_type=1, committed=1_763_700_000.123456, size=1234, hash_=bytes(range(32)),
         commit_id='0123456789abcdef0123456789abcdef'),
    dict(path='/dir/', file_type=2, committed=1_763_700_000, size=5 * 2**40),
    dict(path='/open.txt', file_type=1),  # an open commit: no commit time, no commit named
    dict(path='/' + 'ü' * 200 + '.json', file_type=1, size=0, hash_=b'\x00'),
])
def test_hand_decoded_file_infos_equal_the_sdk_decoding(fields):
    from label_studio_pachyderm.pachd import wire
    from pachyderm_sdk.api import pfs

    message = _sdk_file_info(**fields)
    parsed = pfs.FileInfo.FromString(bytes(message))
    decoded = wire.file_info(bytes(message))
    assert decoded.path == parsed.file.path
    assert decoded.file_type == parsed.file_type and decoded.is_dir == (parsed.file_type == pfs.FileType.DIR)
    assert decoded.size == parsed.size_bytes and decoded.hash == parsed.hash
    assert decoded.commit_id == parsed.file.commit.id
    assert decoded.committed == (parsed.committed if parsed.is_set('committed') else None)

    both = bytes(pfs.DiffFileResponse(new_file=message, old_file=_sdk_file_info('/old', 1, size=3)))
    new, old = wire.diff_file_response(both)
    assert new == decoded and (old.path, old.size) == ('/old', 3)
    assert wire.diff_file_response(bytes(pfs.DiffFileResponse(old_file=message))) == (None, decoded)
    with pytest.raises(ValueError):
        wire.file_info(bytes(message)[:-1])  # truncated
