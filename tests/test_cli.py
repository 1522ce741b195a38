"""The label-studio-pachyderm console command: pfs verbs end to end, pfs-server, start, worker."""
import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from label_studio_pachyderm import cli, pachd

from conftest import PROJECT, TOKEN, commit_ids
from waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_ambient_pachyderm_settings(monkeypatch, tmp_path):
    """Each test decides where pachd is; nothing comes from the machine running the tests."""
    for name in ('PACHD_ADDRESS', 'PACHYDERM_AUTH_TOKEN', 'LOCALPFS_AUTH_TOKEN'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('PACH_CONFIG', str(tmp_path / 'no-such-config.json'))


def run(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr)."""
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def run_pfs(capsys, server, *argv):
    return run(capsys, 'pfs', '--pachd-address', server.address, *argv)


def rows(out):
    return [line.split() for line in out.strip().splitlines()[1:]]


# ----------------------------------------------------------------------------- pfs verbs
def test_repo_file_and_commit_verbs_end_to_end(capsys, pfs, pfs_client, tmp_path):
    assert run_pfs(capsys, pfs, 'create-repo', 'images', '--description', 'cat pictures') == (0, '', '')
    status, out, _ = run_pfs(capsys, pfs, 'list-repo')
    assert status == 0
    header, *lines = out.strip().splitlines()
    assert header.split() == ['PROJECT', 'NAME', 'CREATED', 'SIZE', 'DESCRIPTION']
    assert lines[0].split()[:2] == ['default', 'images'] and lines[0].endswith('cat pictures')

    single = tmp_path / 'cat.jpg'
    single.write_bytes(b'\xff\xd8 meow')
    status, out, _ = run_pfs(capsys, pfs, 'put-file', 'images@master:/pets/cat.jpg', '-f', str(single))
    assert status == 0 and out.startswith('1 file(s) committed to default/images@master: ')
    first = out.split()[-1]

    tree = tmp_path / 'upload'
    for rel, body in {'a.txt': b'A', 'sub/b.txt': b'BB', 'sub/deeper/c.txt': b'CCC'}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(body)
    status, out, _ = run_pfs(capsys, pfs, 'put-file', 'images@master:/docs', '-f', str(tree), '-m', 'docs')
    assert status == 0 and out.startswith('3 file(s) committed')
    second = out.split()[-1]
    assert commit_ids(pfs_client, 'images') == [second, first]  # the directory went in ONE commit
    assert pfs_client.inspect_commit(PROJECT, 'images', second).description == 'docs'

    status, out, _ = run_pfs(capsys, pfs, 'list-file', 'images@master')
    assert status == 0
    assert out.splitlines()[0].split() == ['NAME', 'TYPE', 'SIZE']
    assert rows(out) == [['/docs/', 'dir', '6B'], ['/pets/', 'dir', '7B']]
    status, out, _ = run_pfs(capsys, pfs, 'list-file', 'images@master:/docs', '-r')
    assert [r[0] for r in rows(out)] == ['/docs/a.txt', '/docs/sub/b.txt', '/docs/sub/deeper/c.txt']
    status, out, _ = run_pfs(capsys, pfs, 'list-file', f'images@{first}')  # a commit, not a branch
    assert rows(out) == [['/pets/', 'dir', '7B']]

    status, out, _ = run_pfs(capsys, pfs, 'list-commit', 'images@master')
    assert status == 0
    assert out.splitlines()[0].split() == ['REPO', 'BRANCH', 'COMMIT', 'STARTED', 'FINISHED', 'SIZE', 'DESCRIPTION']
    assert [r[2] for r in rows(out)] == [second, first]
    assert rows(out)[0][0:2] == ['images', 'master']

    status, out, _ = run_pfs(capsys, pfs, 'inspect-commit', f'images@{second}')
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f'Commit: default/images@{second}' and lines[1] == f'Parent: {first}'
    assert 'Finished: yes' in lines and 'Error: -' in lines and lines[-2] == 'Description:'
    pfs_client.write_commit(PROJECT, 'images', 'master', [pachd.FileOp.put('x.txt', b'x')],
                        description='first line\n' + ('a long second line ' * 8).rstrip())
    status, out, _ = run_pfs(capsys, pfs, 'inspect-commit', 'images@master')
    assert out.splitlines()[-2:] == ['  first line', '  ' + ('a long second line ' * 8).rstrip()]
    status, out, _ = run_pfs(capsys, pfs, 'list-commit', 'images@master', '-n', '1', '--full')
    assert out.rstrip().endswith('first line | ' + ('a long second line ' * 8).rstrip())
    status, out, _ = run_pfs(capsys, pfs, 'list-commit', 'images@master', '-n', '1')
    assert ('a long second line ' * 8).rstrip() not in out  # without --full: one shortened line
    assert_one_line_error(run_pfs(capsys, pfs, 'inspect-commit', 'images@' + 'f' * 32), 'not found')

    status, out, _ = run_pfs(capsys, pfs, 'delete-file', 'images@master:/docs/sub/b.txt')
    assert status == 0 and out.startswith('deleted /docs/sub/b.txt from default/images@master: ')
    status, out, _ = run_pfs(capsys, pfs, 'list-file', 'images@master:/docs', '-r')
    assert [r[0] for r in rows(out)] == ['/docs/a.txt', '/docs/sub/deeper/c.txt']
    status, out, _ = run_pfs(capsys, pfs, 'delete-file', 'images@master:/docs')  # a directory
    assert status == 0
    assert [e.path for e in pfs_client.list_files(PROJECT, 'images', 'master')] == ['pets/cat.jpg', 'x.txt']


def test_put_file_destinations(capsys, pfs, pfs_client, tmp_path):
    run_pfs(capsys, pfs, 'create-repo', 'r')
    local = tmp_path / 'note.txt'
    local.write_text('hi')
    assert run_pfs(capsys, pfs, 'put-file', 'r@master', '-f', str(local))[0] == 0
    assert run_pfs(capsys, pfs, 'put-file', 'r@master:/into/', '-f', str(local))[0] == 0
    folder = tmp_path / 'folder'
    (folder / 'x').mkdir(parents=True)
    (folder / 'x' / 'y.txt').write_text('y')
    assert run_pfs(capsys, pfs, 'put-file', 'r@master', '-f', str(folder))[0] == 0
    assert sorted(e.path for e in pfs_client.list_files(PROJECT, 'r', 'master')) == [
        'into/note.txt', 'note.txt', 'x/y.txt']


def test_get_file_to_stdout_and_to_a_file(capsysbinary, pfs, pfs_client, tmp_path):
    pfs_client.create_repo(PROJECT, 'r')
    data = os.urandom(3 * 1024 * 1024 + 17)
    pfs_client.write_commit(PROJECT, 'r', 'master', [pachd.FileOp.put('blob.bin', data)])

    assert cli.main(['pfs', '--pachd-address', pfs.address, 'get-file', 'r@master:/blob.bin']) == 0
    assert capsysbinary.readouterr().out == data
    target = tmp_path / 'copy.bin'
    assert cli.main(['pfs', '--pachd-address', pfs.address, 'get-file', 'r@master:/blob.bin',
                     '-o', str(target)]) == 0
    assert target.read_bytes() == data
    assert capsysbinary.readouterr().out == b''
    assert not list(tmp_path.glob('.*.partial'))


def test_get_file_streams_binary_to_stdout(pfs, pfs_client, tmp_path):
    pfs_client.create_repo(PROJECT, 'r')
    data = bytes(range(256)) * 9000
    pfs_client.write_commit(PROJECT, 'r', 'master', [pachd.FileOp.put('bin', data)])
    result = subprocess.run(
        [sys.executable, '-m', 'label_studio_pachyderm.cli', 'pfs', '--pachd-address', pfs.address,
         'get-file', 'r@master:/bin'],
        capture_output=True, timeout=60, cwd=REPO_ROOT, env=_child_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


def test_project_option_and_project_prefix(capsys, pfs, pfs_client, tmp_path):
    pfs_client.create_project('vision')
    assert run_pfs(capsys, pfs, 'create-repo', 'frames', '--project', 'vision')[0] == 0
    local = tmp_path / 'f.txt'
    local.write_text('f')
    assert run_pfs(capsys, pfs, 'put-file', 'vision/frames@master:/f.txt', '-f', str(local))[0] == 0
    status, out, _ = run(capsys, 'pfs', '--pachd-address', pfs.address, '--project', 'vision',
                         'list-file', 'frames@master')
    assert status == 0 and rows(out) == [['/f.txt', 'file', '1B']]
    status, out, _ = run_pfs(capsys, pfs, 'list-repo')
    assert rows(out) == []  # the default project has none
    status, out, _ = run_pfs(capsys, pfs, 'list-repo', '--all-projects')
    assert [r[:2] for r in rows(out)] == [['vision', 'frames']]
    status, out, _ = run_pfs(capsys, pfs, 'list-commit', 'vision/frames')
    assert len(rows(out)) == 1 and rows(out)[0][1] == 'master'


def test_list_commit_of_a_repo_names_the_branches_holding_each_commit(capsys, pfs, pfs_client):
    pfs_client.create_repo(PROJECT, 'images')
    first = pfs_client.write_commit(PROJECT, 'images', 'master', [pachd.FileOp.put('a.txt', b'a')])
    pfs_client.create_branch(PROJECT, 'images', 'dev', head=first)
    on_dev = pfs_client.write_commit(PROJECT, 'images', 'dev', [pachd.FileOp.put('b.txt', b'b')])
    on_master = pfs_client.write_commit(PROJECT, 'images', 'master', [pachd.FileOp.put('c.txt', b'c')])
    status, out, _ = run_pfs(capsys, pfs, 'list-commit', 'images')
    assert status == 0
    assert {r[2]: r[1] for r in rows(out)} == {on_master: 'master', on_dev: 'dev', first: 'dev,master'}
    status, out, _ = run_pfs(capsys, pfs, 'list-commit', 'images@dev')
    assert {r[2]: r[1] for r in rows(out)} == {on_dev: 'dev', first: 'dev'}


# ----------------------------------------------------------------------------- errors
def assert_one_line_error(result, *fragments):
    status, out, err = result
    assert status == 1
    assert out == ''
    assert err.startswith('error: ') and err.endswith('\n') and err.count('\n') == 1, err
    assert 'Traceback' not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_errors_are_one_line(capsys, pfs, closed_port, tmp_path):
    run_pfs(capsys, pfs, 'create-repo', 'images')
    assert_one_line_error(run_pfs(capsys, pfs, 'list-file', 'ghost@master'), "repo 'ghost' not found")
    assert_one_line_error(run_pfs(capsys, pfs, 'list-commit', 'images@dev'), "branch 'dev' not found")
    assert_one_line_error(run_pfs(capsys, pfs, 'get-file', 'images@master:/nope'), "branch 'master' not found")
    assert_one_line_error(run_pfs(capsys, pfs, 'create-repo', 'images'), 'already exists')
    assert_one_line_error(run_pfs(capsys, pfs, 'create-repo', 'bad.name'), 'bad.name')
    assert_one_line_error(run_pfs(capsys, pfs, 'list-file', 'images'), 'expected')
    assert_one_line_error(run_pfs(capsys, pfs, 'put-file', 'images@master:/x', '-f', str(tmp_path / 'missing')),
                          'does not exist')
    local = tmp_path / 'a.txt'
    local.write_text('a')
    run_pfs(capsys, pfs, 'put-file', 'images@master:/a.txt', '-f', str(local))
    assert_one_line_error(run_pfs(capsys, pfs, 'delete-file', 'images@master:/zzz'), "file '/zzz' not found")
    assert_one_line_error(run_pfs(capsys, pfs, 'get-file', 'images@master:/'), 'needs a file path')
    assert_one_line_error(run(capsys, 'pfs', '--pachd-address', f'127.0.0.1:{closed_port}', 'list-repo'),
                          f'cannot reach pachd at grpc://127.0.0.1:{closed_port}')
    assert_one_line_error(run(capsys, 'pfs', '--pachd-address', 'ftp://x', 'list-repo'), "unsupported scheme 'ftp'")


@pytest.mark.pfs_auth
def test_auth_from_flag_and_env_and_never_printed(capsys, pfs, monkeypatch):
    err = assert_one_line_error(run_pfs(capsys, pfs, 'list-repo'), 'pachd rejected the auth token')
    err = assert_one_line_error(run_pfs(capsys, pfs, '--auth-token', 'wrong', 'list-repo'),
                                'pachd rejected the auth token')
    assert run_pfs(capsys, pfs, '--auth-token', TOKEN, 'create-repo', 'r')[0] == 0
    monkeypatch.setenv('PACHYDERM_AUTH_TOKEN', TOKEN)
    status, out, _ = run_pfs(capsys, pfs, 'list-repo')
    assert status == 0 and rows(out)[0][:2] == ['default', 'r']
    # An error whose text quotes the token (a repo named like it) shows it masked.
    err = assert_one_line_error(run_pfs(capsys, pfs, 'list-file', f'{TOKEN}@master'), '***')
    assert TOKEN not in err


def write_config(path, address, token=None, certs=None):
    context = {'pachd_address': address}
    if token:
        context['session_token'] = token
    if certs:
        context['server_cas'] = base64.b64encode(certs).decode()
    path.write_text(json.dumps({'v2': {'active_context': 'local', 'contexts': {'local': context}}}))


@pytest.mark.pfs_auth
def test_address_and_token_from_the_pachctl_config(capsys, pfs, monkeypatch, tmp_path, closed_port):
    config = tmp_path / 'config.json'
    write_config(config, pfs.address, TOKEN)
    monkeypatch.setenv('PACH_CONFIG', str(config))
    assert run(capsys, 'pfs', 'create-repo', 'from-config') == (0, '', '')
    status, out, _ = run(capsys, 'pfs', 'list-repo')
    assert status == 0 and rows(out)[0][1] == 'from-config'

    # $PACHD_ADDRESS wins over the config's address.
    monkeypatch.setenv('PACHD_ADDRESS', f'127.0.0.1:{closed_port}')
    assert_one_line_error(run(capsys, 'pfs', 'list-repo'), f'127.0.0.1:{closed_port}')
    monkeypatch.delenv('PACHD_ADDRESS')


@pytest.mark.pfs_auth
def test_config_token_is_not_sent_to_another_address(capsys, pfs, monkeypatch, tmp_path):
    config = tmp_path / 'config.json'
    write_config(config, 'grpc://pachd.elsewhere.example:30650', TOKEN)
    monkeypatch.setenv('PACH_CONFIG', str(config))
    # Same server, but reached through an address that is not the context's: no token goes out.
    assert_one_line_error(run(capsys, 'pfs', '--pachd-address', pfs.address, 'list-repo'),
                          'pachd rejected the auth token')


def test_broken_config_is_a_one_line_error(capsys, monkeypatch, tmp_path):
    config = tmp_path / 'config.json'
    config.write_text('{"v2": {"active_context": "x", "contexts": {"x": {"session_token": "' + TOKEN + '"')
    monkeypatch.setenv('PACH_CONFIG', str(config))
    err = assert_one_line_error(run(capsys, 'pfs', 'list-repo'), 'not valid JSON', str(config))
    assert TOKEN not in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(['pfs', 'no-such-verb'])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(['pfs', 'put-file', 'r@master'])  # -f is required
    assert info.value.code == 2
    capsys.readouterr()


# ----------------------------------------------------------------------------- pfs-server
def _child_env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get('PYTHONPATH')]))
    env.update(extra)
    return env


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_pfs_server_command_serves_until_terminated(tmp_path):
    port = _free_port()
    data_dir = tmp_path / 'data'
    process = subprocess.Popen(
        [sys.executable, '-m', 'label_studio_pachyderm.cli', 'pfs-server', '--port', str(port),
         '--data-dir', str(data_dir)],
        env=_child_env(LOCALPFS_AUTH_TOKEN=TOKEN), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = pachd.PachdClient(f'127.0.0.1:{port}', auth_token=TOKEN, timeout=2)
        wait_for(client.check, 30, 'the pfs-server process to answer', interval=0.1, ignore=pachd.PachdUnavailable,
                 process=process, log=lambda: process.stderr.read().decode() if process.poll() is not None else '')
        # The token came from $LOCALPFS_AUTH_TOKEN: without it the server refuses.
        with pytest.raises(pachd.PachdAuthError):
            pachd.PachdClient(f'127.0.0.1:{port}', timeout=2).check()
        client.create_repo(PROJECT, 'served')
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0
    assert (data_dir / 'localpfs.sqlite3').exists()


def test_pfs_server_startup_failure_exits_2(capsys, tmp_path):
    blocker = socket.socket()
    blocker.bind(('127.0.0.1', 0))
    blocker.listen(1)
    try:
        status, out, err = run(capsys, 'pfs-server', '--port', str(blocker.getsockname()[1]),
                               '--data-dir', str(tmp_path / 'd'))
    finally:
        blocker.close()
    assert status == 2
    assert err.startswith('error: cannot listen on 127.0.0.1:') and err.count('\n') == 1


def test_pfs_server_passes_its_options(monkeypatch):
    from label_studio_pachyderm import localpfs

    calls = []
    monkeypatch.setattr(localpfs, 'serve_forever', lambda *args: calls.append(args))
    monkeypatch.setenv('LOCALPFS_AUTH_TOKEN', 'from-env')
    assert cli.main(['pfs-server', '--host', '0.0.0.0', '--port', '1234', '--data-dir', '/d']) == 0
    assert cli.main(['pfs-server', '--data-dir', '/d', '--auth-token', 'flag']) == 0
    assert calls == [('0.0.0.0', 1234, '/d', 'from-env'), ('127.0.0.1', 30650, '/d', 'flag')]


# ----------------------------------------------------------------------------- start and worker
def test_start_runs_label_studio_with_the_plugin_settings(monkeypatch):
    import label_studio.server

    seen = {}

    def fake_main():
        seen['argv'] = list(sys.argv)
        seen['settings'] = os.environ['DJANGO_SETTINGS_MODULE']

    monkeypatch.setattr(label_studio.server, 'main', fake_main)
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    monkeypatch.setenv('DJANGO_SETTINGS_MODULE', 'somebody.else')
    args = ['--port', '8181', '--no-browser', '--username', 'a@b.c', '--password', 'pw', '--help']
    assert cli.main(['start', *args]) == 0
    assert seen == {'argv': ['label-studio', 'start', *args], 'settings': 'label_studio_pachyderm.settings'}


def test_worker_serves_the_configured_queue(monkeypatch, settings):
    from django.core import management

    calls = []
    monkeypatch.setattr(management, 'call_command', lambda *args: calls.append(args))
    settings.PACHYDERM_RQ_QUEUE = 'pachyderm'
    settings.RQ_QUEUES = {'default': {}, 'pachyderm': {'URL': 'redis://localhost:6379/0'}}
    assert cli.main(['worker']) == 0
    assert cli.main(['worker', '--burst', 'default', 'pachyderm']) == 0
    # The scheduler always runs: coalesced auto-exports are scheduled jobs.
    assert calls == [('rqworker', 'pachyderm', '--with-scheduler'),
                     ('rqworker', 'default', 'pachyderm', '--burst', '--with-scheduler')]


def test_worker_without_redis_says_what_to_set(capsys, settings):
    settings.RQ_QUEUES = {'default': {}}
    settings.PACHYDERM_RQ_QUEUE = 'pachyderm'
    status, _, err = run(capsys, 'worker')
    assert status == 1 and err.startswith('error: queue pachyderm is not configured; set PACHYDERM_REDIS_URL')


@pytest.mark.parametrize('opt_in, loaded', [(None, False), ('0', False), ('1', True), ('true', True)])
def test_the_watch_process_leaves_pyarrow_out_and_pandas_still_reads(opt_in, loaded):
    """Without pyarrow pandas works as when it is not installed; PACHYDERM_WATCH_PYARROW=1 keeps it."""
    script = ('import io, sys\n'
              'from label_studio_pachyderm.cli import _leave_out_parquet_support\n'
              '_leave_out_parquet_support()\n'
              'import pandas\n'
              "frame = pandas.read_csv(io.StringIO('a,b\\n1,2\\n'))\n"
              "print(frame['b'].sum(), sys.modules.get('pyarrow') is not None)\n")
    env = {k: v for k, v in os.environ.items() if k != 'PACHYDERM_WATCH_PYARROW'}
    if opt_in is not None:
        env['PACHYDERM_WATCH_PYARROW'] = opt_in
    run = subprocess.run([sys.executable, '-W', 'error::DeprecationWarning:pandas', '-c', script], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ['2', str(loaded)]


def test_a_bad_pachyderm_watch_pyarrow_value_stops_the_watch_command_with_one_line():
    env = {**os.environ, 'PACHYDERM_WATCH_PYARROW': 'maybe'}
    run = subprocess.run([sys.executable, '-m', 'label_studio_pachyderm.cli', 'watch'], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip() == ('PACHYDERM_WATCH_PYARROW: Incorrect bool value "maybe". '
                                  'It should be one of [1, 0, true, false, yes, no]')
