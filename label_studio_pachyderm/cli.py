"""The ``label-studio-pachyderm`` console command.

    label-studio-pachyderm start [LABEL-STUDIO-START-ARGS...]   Label Studio with the plugin
    label-studio-pachyderm worker [--burst] [QUEUE...]          RQ worker for Pachyderm jobs
    label-studio-pachyderm watch [--refresh SECONDS]            sync watched storages on new commits
    label-studio-pachyderm pfs-server --data-dir DIR [...]      the local PFS server
    label-studio-pachyderm pfs VERB ...                         pachctl-like commands
    label-studio-pachyderm promote STORAGE_ID [...]              promote a labeling round (rounds_cli)
    label-studio-pachyderm rounds STORAGE_ID                     list a target's labeling rounds

The ``pfs`` verbs talk to any pachd (or the local server) through the plugin's
pachd client. Where: ``--pachd-address``, else ``$PACHD_ADDRESS``, else the
active context of the pachctl config (``$PACH_CONFIG`` or
``~/.pachyderm/config.json``), else ``grpc://localhost:30650``. Token:
``--auth-token``, else ``$PACHYDERM_AUTH_TOKEN``, else the config context's
session token, but only when talking to that context's own pachd.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from . import rounds_cli

SETTINGS_MODULE = 'label_studio_pachyderm.settings'
DEFAULT_ADDRESS = 'grpc://localhost:30650'
_PASS_THROUGH = ('start',)


class CommandError(Exception):
    """A failure to report as one ``error:`` line (exit status 1)."""


# ----------------------------------------------------------------------------- start / worker
def _run_label_studio(args: Sequence[str]) -> int:
    os.environ['DJANGO_SETTINGS_MODULE'] = SETTINGS_MODULE
    from label_studio.server import main as label_studio_main

    _watch_once_django_is_ready()
    sys.argv = ['label-studio', 'start', *args]
    return label_studio_main() or 0


def _watch_once_django_is_ready() -> None:
    """The watcher (PACHYDERM_WATCH, on by default) and the outbox sweep inside the Label Studio process.

    Started when Label Studio's launcher starts serving (after it set Django up and migrated,
    in this process), so ``start --help`` or ``start`` of another command never starts one.
    """
    import threading

    import label_studio.server as launcher

    serve = getattr(launcher, '_app_run', None)
    if serve is None or getattr(serve, 'pachyderm_watch', False):
        return

    def serve_and_watch(*args, **kwargs):
        from django.conf import settings

        from .exports.sweeper import Sweeper

        # Whatever PACHYDERM_WATCH says: annotation changes left by a process that died are
        # written by any process that sweeps the outbox, and every Label Studio server does.
        Sweeper().start()
        if getattr(settings, 'PACHYDERM_WATCH', True):
            from .imports.watcher import Watcher

            threading.Thread(target=Watcher().run, name='pachyderm-watch', daemon=True).start()
        return serve(*args, **kwargs)

    serve_and_watch.pachyderm_watch = True
    launcher._app_run = serve_and_watch


def _run_watch(args: argparse.Namespace) -> int:
    """The watcher alone, in the foreground, until SIGTERM or Ctrl-C."""
    import logging
    import signal

    os.environ['DJANGO_SETTINGS_MODULE'] = SETTINGS_MODULE
    _leave_out_parquet_support()
    import django

    django.setup()
    from .imports.watcher import Watcher

    log = logging.getLogger('label_studio_pachyderm')
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)  # one line per sync and per reconnect is what this command is for
    if not logging.getLogger().handlers and not log.handlers:
        logging.basicConfig(format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    from .exports.sweeper import Sweeper

    watcher = Watcher(refresh=args.refresh)
    sweeper = Sweeper().start()  # the outbox sweep too (see sweeper): a watch process is alive for long
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop()
    finally:
        sweeper.stop()
    return 0


def _leave_out_parquet_support() -> None:
    """Keep pyarrow out of the watch process: 33 MiB of its resident memory, for nothing it does.

    Label Studio's models import pandas, and pandas imports pyarrow when it is installed, only to
    offer Parquet and Arrow-backed columns. A watch process reads a repo's files through pachd and
    makes tasks of them; it never reads an uploaded Parquet file. Marking the module absent
    (``sys.modules[name] = None``, Python's own way to say "not importable") is what pandas
    expects when pyarrow is not installed. ``PACHYDERM_WATCH_PYARROW=1`` loads it anyway (read
    as Label Studio reads its booleans; that module loads neither pandas nor pyarrow).
    """
    from label_studio.core.utils.params import get_bool_env
    from rest_framework.exceptions import ValidationError

    try:
        keep = get_bool_env('PACHYDERM_WATCH_PYARROW', False)
    except ValidationError as error:  # a one-line message, not a traceback
        raise SystemExit(f"PACHYDERM_WATCH_PYARROW: {error.detail['PACHYDERM_WATCH_PYARROW']}") from None
    if keep:
        return
    sys.modules.setdefault('pyarrow', None)


def _run_worker(args: argparse.Namespace, extra: List[str]) -> int:
    os.environ['DJANGO_SETTINGS_MODULE'] = SETTINGS_MODULE
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    queues = list(args.queues) or [getattr(settings, 'PACHYDERM_RQ_QUEUE', 'pachyderm') or 'pachyderm']
    configured = getattr(settings, 'RQ_QUEUES', {}) or {}
    unknown = [name for name in queues if name not in configured]
    if unknown:
        raise CommandError(
            f"queue {', '.join(unknown)} is not configured; set PACHYDERM_REDIS_URL (the Redis the "
            'Pachyderm jobs go through) before starting Label Studio and the worker')
    options = ['--burst'] if args.burst else []
    # Coalesced auto-exports are scheduled jobs (enqueue_in): the worker must run RQ's scheduler.
    if '--with-scheduler' not in extra:
        options.append('--with-scheduler')
    call_command('rqworker', *queues, *options, *extra)
    return 0


# ----------------------------------------------------------------------------- pfs-server
def _run_pfs_server(args: argparse.Namespace) -> int:
    from . import localpfs

    token = args.auth_token if args.auth_token is not None else os.environ.get('LOCALPFS_AUTH_TOKEN') or None
    try:
        localpfs.serve_forever(args.host, args.port, args.data_dir, token)
    except localpfs.LocalPFSError as exc:
        _report_error(str(exc), hide=token)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


# ----------------------------------------------------------------------------- pfs verbs
def _connection(args: argparse.Namespace):
    """(client, token) for the pfs verbs, following the precedence in the module docstring."""
    from . import pachd

    address = getattr(args, 'pachd_address', None) or os.environ.get('PACHD_ADDRESS') or ''
    token = getattr(args, 'auth_token', None) or os.environ.get('PACHYDERM_AUTH_TOKEN') or None
    root_certs = None
    context = None
    if not address or not token:
        config_file = pachd.config_path()
        if os.path.exists(config_file):
            context = pachd.config_context(config_file)
    if not address:
        address = context.address if context else DEFAULT_ADDRESS
    if context and pachd.parse_address(address) == pachd.parse_address(context.address):
        # The context's secrets go to the context's pachd only, never to another address.
        token = token or context.token
        root_certs = context.root_certs
    timeout = getattr(args, 'timeout', None) or pachd.DEFAULT_TIMEOUT
    return pachd.PachdClient(address, token, root_certs, timeout), token


def _split_spec(spec: str, what: str, project: str) -> Tuple[str, str, str, Optional[str]]:
    """``[project/]repo@ref[:path]`` -> (project, repo, ref, path or None)."""
    location, colon, path = spec.partition(':')
    repo, at, ref = location.partition('@')
    if '/' in repo:
        named, _, repo = repo.partition('/')
        if project not in ('default', named) and named:
            raise CommandError(f'{spec!r} names project {named!r} but --project is {project!r}')
        project = named or project
    if not repo or not at or not ref:
        raise CommandError(f'expected {what}, got {spec!r}')
    return project, repo, ref, (path if colon else None)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return f'{int(value)}{unit}' if unit == 'B' else f'{value:.4g}{unit}'
        value /= 1024
    return f'{size}B'


def _when(moment: Optional[dt.datetime]) -> str:
    if not moment:
        return '-'
    return moment.astimezone(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')


def _table(header: Sequence[str], rows: List[Sequence[str]]) -> None:
    """Columns padded to their widest cell, like pachctl's tabwriter output."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths)]
        print('   '.join(cells).rstrip())


def _local_files(source: Path, target: str) -> Iterator[Tuple[str, Path]]:
    """(pfs path, local file) for a file, or for every file under a directory (sorted)."""
    if source.is_dir():
        base = target.strip('/')
        for local in sorted(p for p in source.rglob('*') if p.is_file()):
            relative = local.relative_to(source).as_posix()
            yield (f'{base}/{relative}' if base else relative), local
    elif source.is_file():
        if not target.strip('/') or target.endswith('/'):
            target = f'{target.rstrip("/")}/{source.name}'
        yield target.strip('/'), source
    else:
        raise CommandError(f'{source} does not exist (or is not a regular file or directory)')


def _pfs_create_repo(client, args):
    client.create_repo(args.project, args.repo, description=args.description or '')


def _pfs_list_repo(client, args):
    project = None if args.all_projects else args.project
    rows = [(r.project, r.name, _when(r.created), _human_size(r.size_bytes), _one_line(r.description))
            for r in client.list_repos(project)]
    _table(('PROJECT', 'NAME', 'CREATED', 'SIZE', 'DESCRIPTION'), rows)


def _pfs_put_file(client, args):
    from . import pachd

    project, repo, branch, path = _split_spec(args.target, 'REPO@BRANCH[:/path]', args.project)
    if pachd.is_commit_id(branch):
        raise CommandError('put-file writes to a branch, not to a commit: use REPO@BRANCH')
    if args.file == '-':
        if not (path or '').strip('/'):
            raise CommandError('reading from stdin (-f -) needs a destination path: REPO@BRANCH:/path')
        ops = [pachd.FileOp.put(path, iter(lambda: sys.stdin.buffer.read(pachd.WRITE_CHUNK), b''))]
        count = 1
    else:
        files = list(_local_files(Path(args.file), path or ''))
        if not files:
            raise CommandError(f'{args.file} holds no files')
        count = len(files)

        def opened() -> Iterator:
            # One local file open at a time; each is streamed in chunks, never read whole.
            for pfs_path, local in files:
                with open(local, 'rb') as handle:
                    yield pachd.FileOp.put(pfs_path, handle)
        ops = opened()
    description = args.message or f'put-file {args.file}'
    commit = client.write_commit(project, repo, branch, ops, description=description)
    print(f'{count} file(s) committed to {project}/{repo}@{branch}: {commit}')


def _pfs_list_file(client, args):
    project, repo, ref, path = _split_spec(args.source, 'REPO@BRANCH[:/path] or REPO@COMMIT[:/path]',
                                           args.project)
    rows = []
    for entry in client.list_files(project, repo, ref, path or '', recursive=args.recursive,
                                   include_dirs=not args.recursive):
        name = '/' + entry.path + ('/' if entry.is_dir else '')
        rows.append((name, 'dir' if entry.is_dir else 'file', _human_size(entry.size)))
    _table(('NAME', 'TYPE', 'SIZE'), rows)


def _pfs_get_file(client, args):
    project, repo, ref, path = _split_spec(args.source, 'REPO@BRANCH:/path', args.project)
    if not (path or '').strip('/'):
        raise CommandError('get-file needs a file path: REPO@BRANCH:/path')
    with client.read_file(project, repo, ref, path) as stream:
        if not args.output or args.output == '-':
            out = sys.stdout.buffer
            for chunk in stream.iter_chunks():
                out.write(chunk)
            out.flush()
            return
        target = Path(args.output)
        partial = target.with_name(f'.{target.name}.partial')
        try:
            with open(partial, 'wb') as handle:
                for chunk in stream.iter_chunks():
                    handle.write(chunk)
            os.replace(partial, target)
        finally:
            if partial.exists():
                partial.unlink()


def _pfs_list_commit(client, args):
    project, repo = args.project, args.repo
    branch = None
    if '@' in repo:
        project, repo, branch, _ = _split_spec(repo, 'REPO[@BRANCH]', project)
    elif '/' in repo:
        project, _, repo = repo.partition('/')
    # pachd 2.11+ leaves a commit's own branch empty: a listing of one branch shows that branch,
    # a listing of the whole repo the branches whose history holds the commit (which takes the
    # whole history, so it is listed once and cut to --number here).
    if branch:
        commits = list(client.list_commits(project, repo, branch, limit=args.number or 0))
        on = {c.id: [branch] for c in commits}
    else:
        history = list(client.list_commits(project, repo))
        on = _branches_holding(client, project, repo, history)
        commits = history[:args.number] if args.number else history
    rows = []
    for commit in commits:
        size = _human_size(commit.size_bytes) if commit.size_bytes is not None else '-'
        description = ' | '.join(commit.description.splitlines()) if args.full else _one_line(commit.description, 60)
        rows.append((commit.repo, ','.join(on.get(commit.id, ())) or '-', commit.id, _when(commit.started),
                     'yes' if commit.finished else 'no', size, description))
    _table(('REPO', 'BRANCH', 'COMMIT', 'STARTED', 'FINISHED', 'SIZE', 'DESCRIPTION'), rows)


def _branches_holding(client, project: str, repo: str, history: list) -> dict:
    """{commit id: [branch, ...]}: each branch of the repo on every commit of ``history`` (the repo's
    commits) from its head down to the first."""
    parents = {c.id: c.parent for c in history}
    on: dict = {}
    for name in sorted(client.inspect_repo(project, repo).branches):
        commit = client.branch_head(project, repo, name)
        while commit and commit in parents and name not in on.get(commit, ()):
            on.setdefault(commit, []).append(name)
            commit = parents[commit]
    return on


def _pfs_inspect_commit(client, args):
    """One commit in full: parent, size, finished, error, its metadata one key a line, and its
    description line by line."""
    project, repo, ref, _ = _split_spec(args.commit, 'REPO@COMMIT-OR-BRANCH', args.project)
    commit = client.inspect_commit(project, repo, ref)
    size = _human_size(commit.size_bytes) if commit.size_bytes is not None else '-'
    print(f'Commit: {commit.project}/{commit.repo}@{commit.id}')
    print(f'Parent: {commit.parent or "-"}')
    print(f'Started: {_when(commit.started)}')
    print(f'Finished: {"yes" if commit.finished else "no (still being written)"}')
    print(f'Size: {size}')
    print(f'Error: {commit.error or "-"}')
    print('Metadata:' if commit.metadata else 'Metadata: -')
    for key, value in commit.metadata:
        # one line per key, however long or multi-line the value: a reader greps for the key
        print(f'  {key}: {value}'.replace('\n', '\\n'))
    print('Description:')  # last, as it may run long
    for line in (commit.description or '-').splitlines():
        print(f'  {line}')


def _pfs_delete_file(client, args):
    from . import pachd

    project, repo, branch, path = _split_spec(args.target, 'REPO@BRANCH:/path', args.project)
    if not (path or '').strip('/'):
        raise CommandError('delete-file needs a path: REPO@BRANCH:/path')
    if pachd.is_commit_id(branch):
        raise CommandError('delete-file writes to a branch, not to a commit: use REPO@BRANCH:/path')
    # pachd deletes a missing path without complaint; say so instead of making an empty commit.
    entry = client.inspect_file(project, repo, branch, path)
    target = path.strip('/') + ('/' if entry.is_dir else '')
    commit = client.write_commit(project, repo, branch, [pachd.FileOp.remove(target)],
                                 description=args.message or f'delete-file /{target}', create_branch=False)
    print(f'deleted /{target} from {project}/{repo}@{branch}: {commit}')


_VERBS = {
    'create-repo': _pfs_create_repo,
    'list-repo': _pfs_list_repo,
    'put-file': _pfs_put_file,
    'list-file': _pfs_list_file,
    'get-file': _pfs_get_file,
    'list-commit': _pfs_list_commit,
    'inspect-commit': _pfs_inspect_commit,
    'delete-file': _pfs_delete_file,
}


def _run_pfs(args: argparse.Namespace) -> int:
    from . import pachd

    args.project = getattr(args, 'project', None) or 'default'
    token = getattr(args, 'auth_token', None)
    try:
        client, token = _connection(args)
        try:
            _VERBS[args.verb](client, args)
        finally:
            client.close()
    except (pachd.PachdError, CommandError, OSError) as exc:
        _report_error(str(exc), hide=token)
        return 1
    return 0


def _report_error(message: str, hide: Optional[str] = None) -> None:
    """One ``error:`` line on stderr; ``hide`` (a secret) is masked wherever it appears."""
    print(f'error: {_one_line(message, hide=hide)}', file=sys.stderr)


def _one_line(text: str, limit: int = 0, hide: Optional[str] = None) -> str:
    line = ' '.join((text or '').split())
    if hide:
        line = line.replace(hide, '***')
    if limit and len(line) > limit:
        line = line[:limit - 1] + '…'
    return line


# ----------------------------------------------------------------------------- argument parsing
def _connection_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # Accepted before and after the verb; SUPPRESS keeps a verb's unset option from
    # overwriting a value given before it.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument('--pachd-address', default=default, metavar='ADDRESS',
                        help='grpc://host:port, grpcs://host:port or host:port (default: $PACHD_ADDRESS, '
                             'then the pachctl config, then grpc://localhost:30650)')
    parser.add_argument('--auth-token', default=default, metavar='TOKEN',
                        help='pachd auth token (default: $PACHYDERM_AUTH_TOKEN, then the pachctl config)')
    parser.add_argument('--project', default=default, help="Pachyderm project (default: 'default')")
    parser.add_argument('--timeout', type=float, default=default, metavar='SECONDS',
                        help='how long to wait for pachd to answer (default: 10)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='label-studio-pachyderm',
        description='Label Studio with Pachyderm storage, and a local PFS server for trying it out.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)

    start = commands.add_parser('start', help='run `label-studio start` with the plugin settings',
                                description='All arguments go to `label-studio start` unchanged.')
    start.add_argument('args', nargs=argparse.REMAINDER, help='arguments for label-studio start')

    worker = commands.add_parser('worker', help='run an RQ worker for the Pachyderm job queue')
    worker.add_argument('queues', nargs='*', metavar='QUEUE',
                        help='queues to serve (default: the PACHYDERM_RQ_QUEUE setting)')
    worker.add_argument('--burst', action='store_true', help='exit when the queues are empty')

    watch = commands.add_parser(
        'watch', help='sync source storages that have "Sync automatically" on whenever a commit lands',
        description='Follows every source storage with watch_commits on (SubscribeCommit on its branch) and '
                    'starts its incremental sync when a new commit finishes. `label-studio-pachyderm start` '
                    'already runs this inside Label Studio unless PACHYDERM_WATCH=false.')
    watch.add_argument('--refresh', type=float, default=None, metavar='SECONDS',
                       help='how often to look for created, edited and deleted storages '
                            '(default: PACHYDERM_WATCH_REFRESH_SECONDS, 5)')

    server = commands.add_parser('pfs-server', help='run the local PFS server (a pachd stand-in)')
    server.add_argument('--host', default='127.0.0.1', help='address to listen on (default: 127.0.0.1)')
    server.add_argument('--port', type=int, default=30650, help='port (default: 30650; 0 picks one)')
    server.add_argument('--data-dir', required=True, help='directory that keeps the data between runs')
    server.add_argument('--auth-token', default=None,
                        help='require this token from clients (default: $LOCALPFS_AUTH_TOKEN; none: no auth)')

    pfs = commands.add_parser('pfs', help='pachctl-like commands against pachd or the local server')
    _connection_options(pfs, suppress=False)
    verbs = pfs.add_subparsers(dest='verb', metavar='VERB', required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        _connection_options(sub, suppress=True)
        return sub

    sub = verb('create-repo', 'create a repo')
    sub.add_argument('repo', metavar='REPO')
    sub.add_argument('--description', '-d', default='')

    sub = verb('list-repo', 'list the repos of the project')
    sub.add_argument('--all-projects', '-A', action='store_true', help='list the repos of every project')

    sub = verb('put-file', 'put a local file, or a directory recursively, in ONE commit')
    sub.add_argument('target', metavar='REPO@BRANCH[:/path]')
    sub.add_argument('-f', '--file', required=True, metavar='LOCAL', help="a file, a directory, or '-' for stdin")
    sub.add_argument('-m', '--message', default='', help='commit description')

    sub = verb('list-file', 'list the files of a directory (or with -r, everything under it)')
    sub.add_argument('source', metavar='REPO@BRANCH-OR-COMMIT[:/path]')
    sub.add_argument('-r', '--recursive', action='store_true', help='every file under the path')

    sub = verb('get-file', 'print a file (or write it with -o)')
    sub.add_argument('source', metavar='REPO@BRANCH-OR-COMMIT:/path')
    sub.add_argument('-o', '--output', default=None, metavar='OUT', help="local file to write ('-': stdout)")

    sub = verb('list-commit', 'list commits, newest first')
    sub.add_argument('repo', metavar='REPO[@BRANCH]')
    sub.add_argument('-n', '--number', type=int, default=0, help='at most this many commits')
    sub.add_argument('--full', action='store_true', help='whole descriptions (lines joined with " | ")')

    sub = verb('inspect-commit', 'one commit in full: description, parent, size, finished, error')
    sub.add_argument('commit', metavar='REPO@COMMIT-OR-BRANCH')

    sub = verb('delete-file', 'delete a file (or directory) in a new commit')
    sub.add_argument('target', metavar='REPO@BRANCH:/path')
    sub.add_argument('-m', '--message', default='', help='commit description')
    rounds_cli.add_commands(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `start` forwards everything, including options argparse would otherwise claim (--help too).
    if argv and argv[0] in _PASS_THROUGH:
        return _run_label_studio(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != 'worker':
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == 'worker':
            return _run_worker(args, extra)
        if args.command == 'pfs-server':
            return _run_pfs_server(args)
        if args.command == 'watch':
            return _run_watch(args)
        if args.command in ('promote', 'rounds'):
            return rounds_cli.run(args)
        return _run_pfs(args)
    except CommandError as exc:
        print(f'error: {_one_line(str(exc))}', file=sys.stderr)
        return 1
    except rounds_cli.RoundsError as exc:
        _report_error(str(exc), hide=getattr(args, 'token', None))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `get-file ... | head`: the reader went away; that is not an error. Point
        # stdout at /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == '__main__':
    sys.exit(main())
