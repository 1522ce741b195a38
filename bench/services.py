"""The storage servers a run talks to, each in a process of its own.

Both live outside the measured Label Studio processes, as pachd and S3 would: their
memory does not count towards a scenario's peak RSS, and they share the machine's
cores with Label Studio exactly like the real thing on one host.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MOTO_VENV = BENCH_DIR / '.venv-moto'
# moto pulls a newer python-dotenv than pachyderm-sdk pins, so it never enters the runtime env.
MOTO_REQUIREMENT = 'moto[server]>=5.1,<6'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    # Startup takes seconds on a busy machine; poll rather than guess a sleep.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'{what} exited with status {process.returncode} before listening on {port}')
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f'{what} did not listen on port {port} within {timeout:.0f} s')


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class LocalPfs:
    """The project's local PFS server (``python -m label_studio_pachyderm.localpfs``)."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f'grpc://127.0.0.1:{self.port}'

    def start(self) -> 'LocalPfs':
        self.port = free_port()
        log = open(self.log_path, 'ab')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'label_studio_pachyderm.localpfs', '--host', '127.0.0.1',
             '--port', str(self.port), '--data-dir', str(self.data_dir)],
            cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process, 'the local PFS server')
        return self

    def stop(self) -> None:
        _stop(self.process)


def ensure_moto_venv(log=print) -> Path:
    """bench/.venv-moto with moto[server]; created on first use (about a minute)."""
    python = MOTO_VENV / 'bin' / 'python'
    probe = [str(python), '-c', 'import moto.server, moto.s3.models']
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f'creating {MOTO_VENV.relative_to(REPO_DIR)} with {MOTO_REQUIREMENT} (first run only)')
    subprocess.run([sys.executable, '-m', 'venv', '--clear', str(MOTO_VENV)], check=True)
    subprocess.run([str(python), '-m', 'pip', 'install', '--quiet', MOTO_REQUIREMENT], check=True)
    subprocess.run(probe, check=True)
    return python


class Moto:
    """moto's S3 server, driven through bench/moto_launcher.py (see there for the seeding door)."""

    def __init__(self, python: Path, log_path: Path):
        self.python = python
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def start(self) -> 'Moto':
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(self.python), str(BENCH_DIR / 'moto_launcher.py'), '--port', str(self.port)],
            cwd=REPO_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.log_path, 'ab'), text=True, bufsize=1,
        )
        ready = self.process.stdout.readline()
        if not ready or not json.loads(ready).get('ready'):
            raise RuntimeError(f'moto did not start (see {self.log_path})')
        wait_for_port(self.port, self.process, 'moto')
        return self

    def command(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + '\n')
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if not answer.get('ok'):
            raise RuntimeError(f'moto command {command} failed: {answer.get("error")}')
        return answer

    def seed(self, bucket: str, kind: str, start: int, count: int, batch: str = '') -> None:
        self.command(op='bucket', bucket=bucket)
        # In slices, so a big bucket does not hold the pipe for minutes in one answer.
        for offset in range(start, start + count, 20000):
            self.command(op='seed', bucket=bucket, kind=kind, start=offset,
                         count=min(20000, start + count - offset), batch=batch)

    def count(self, bucket: str) -> int:
        return self.command(op='count', bucket=bucket)['count']

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        _stop(self.process)


def pfs_client(address: str):
    from label_studio_pachyderm import pachd

    return pachd.PachdClient(address, timeout=120)


def seed_pfs(client, repo: str, kind: str, start: int, count: int, batch: str = '', chunk: int = 5000,
             project: str = 'default') -> str:
    """Write objects to ``repo@master`` in commits of ``chunk`` files; returns the head commit.

    Chunked because one very large commit costs far more than its parts through the
    local server (5,000 files: ~5 s; 100,000 in one commit: ~10 min); the repo's
    head holds the same files either way.
    """
    from label_studio_pachyderm import pachd
    from .content import objects

    head = ''
    for offset in range(start, start + count, chunk):
        n = min(chunk, start + count - offset)
        ops = (pachd.FileOp.put(key, body) for key, body in objects(kind, offset, n, batch))
        head = client.write_commit(project, repo, 'master', ops, description=f'bench seed {kind} {offset}+{n}')
    return head
