"""One run: start the servers, seed the same objects into each store, run every scenario in a
fresh process, print the table and write it to bench/results/latest.md.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import content, machine, scale, scenarios
from .config import Config
from .report import Table
from .services import REPO_DIR, LocalPfs, Moto, ensure_moto_venv, pfs_client
from .work.common import RESULT_MARK

# Inherited variables that would change what the measured processes do; the run sets its own.
_SCRUBBED_PREFIXES = ('LABEL_STUDIO_', 'HEARTEX_', 'PACHYDERM_', 'DJANGO_', 'AWS_', 'S3_')
_SCRUBBED = ('DATABASE_NAME', 'DJANGO_DB', 'SSRF_PROTECTION_ENABLED', 'DEBUG', 'LOG_LEVEL', 'REDIS_LOCATION')


class Run:
    logs_name = 'logs'  # under the results directory; emptied at the start of a run

    def __init__(self, config: Config):
        self.config = config
        self.sizes = config.sizes
        self.started = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix='lsp-bench-'))
        self.results_dir = Path(config.results_dir)
        self.logs = self.results_dir / self.logs_name
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in self.logs.glob('*.log'):
            old.unlink()
        self.local_root = self.root / 'localfiles'
        self.local_root.mkdir()
        self.table = Table()
        self.pfs: LocalPfs | None = None
        self.moto: Moto | None = None
        self.client = None
        self.template: Path | None = None
        self.code_at_start = machine.code_state()
        self.plugin_at_start = machine.plugin_digest()

    # ------------------------------------------------------------------ output
    def log(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f'[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}', flush=True)

    # ------------------------------------------------------------------ services
    def start(self) -> None:
        self.log(f'run directory {self.root}')
        self.pfs = LocalPfs(self.root / 'pfs', self.logs / 'localpfs.log').start()
        self.client = pfs_client(self.pfs.address)
        self.log(f'local PFS server at {self.pfs.address}')
        if self.needs_s3():
            self.moto = Moto(ensure_moto_venv(self.log), self.logs / 'moto.log').start()
            self.log(f'moto S3 server at {self.moto.endpoint}')
        self.template = self.root / 'template'
        self.template.mkdir()
        cached = self.results_dir / 'cache' / f'template-{_migrations_fingerprint()}.sqlite3'
        if cached.exists():
            shutil.copyfile(cached, self.template / 'label_studio.sqlite3')
            self.log(f'template database: reused {cached.name} (same migrations)')
            return
        started = time.monotonic()
        result = self.worker('migrate', {}, 'template', fresh_db=False)
        if result.get('error'):
            raise RuntimeError(f'migrations failed: {result["error"]} (see {self.logs / "template.log"})')
        self.log(f'template database migrated in {time.monotonic() - started:.0f} s')
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob('template-*.sqlite3'):
            old.unlink()
        shutil.copyfile(self.template / 'label_studio.sqlite3', cached)

    def needs_s3(self) -> bool:
        return any(s in self.config.only for s in ('import_media', 'import_tasks', 'resync', 'export', 'scale'))

    def stop(self) -> None:
        for service in (self.moto, self.pfs):
            if service is not None:
                service.stop()
        if self.client is not None:
            self.client.close()
        if not self.config.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ seeding
    def seed_pfs(self, repo: str, kind: str, count: int, batch: str = '') -> str:
        self.client.create_repo('default', repo, exist_ok=True)
        started = time.monotonic()
        chunk = max(1, self.sizes.seed_chunk)
        head = _seed_pfs(self.client, repo, kind, count, batch, chunk)
        self.log(f'  seeded pfs {repo}: {count:,} {kind} in {time.monotonic() - started:.0f} s')
        return head

    def seed_s3(self, bucket: str, kind: str, count: int, batch: str = '') -> None:
        started = time.monotonic()
        self.moto.seed(bucket, kind, 0, count, batch)
        self.log(f'  seeded s3 {bucket}: {count:,} {kind} in {time.monotonic() - started:.0f} s')

    def seed_local(self, name: str, kind: str, count: int) -> Path:
        directory = self.local_root / name
        directory.mkdir()
        for key, body in content.objects(kind, 0, count):
            (directory / Path(key).name).write_bytes(body)
        return directory

    # ------------------------------------------------------------------ measured processes
    def env(self, data_dir: Path, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED}
        env.update(
            DJANGO_SETTINGS_MODULE='label_studio_pachyderm.settings',
            LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
            DATABASE_NAME=str(data_dir / 'label_studio.sqlite3'),
            SENTRY_DSN='', FRONTEND_SENTRY_DSN='',
            DEBUG='false', LOG_LEVEL='WARNING',
            LATEST_VERSION_CHECK='false', COLLECT_ANALYTICS='false',
            # Label Studio's SSRF guard bans loopback; the plugin's allowlist admits our local server only.
            PACHYDERM_ALLOWED_HOSTS='127.0.0.1',
            PACHYDERM_GRPC_TIMEOUT='120',
            LOCAL_FILES_SERVING_ENABLED='true',
            LOCAL_FILES_DOCUMENT_ROOT=str(self.local_root),
        )
        if self.moto is not None:
            # The operator-level endpoint: Label Studio trusts S3_ENDPOINT (it checks only a
            # storage's own s3_endpoint field for SSRF), so SSRF protection stays on for the S3 peer.
            env['S3_ENDPOINT'] = self.moto.endpoint
        env.update(extra or {})
        return env

    def worker(self, job: str, params: dict, name: str, db_from: Path | None = None, fresh_db: bool = True,
               env: dict | None = None, timeout: float = 7200) -> dict:
        """Run one job in a new process on its own copy of a database; returns its result dict."""
        data_dir = self.root / 'ls' / name if name != 'template' else self.template
        data_dir.mkdir(parents=True, exist_ok=True)
        if fresh_db:
            _copy_db(db_from or self.template, data_dir)
        log_path = self.logs / f'{name}.log'
        with open(log_path, 'w') as log:
            log.write(f'$ python -m bench.work {job} {json.dumps(params)}\n')
            log.flush()
            try:
                done = subprocess.run([sys.executable, '-m', 'bench.work', job, json.dumps(params)],
                                      cwd=REPO_DIR, env=self.env(data_dir, env), stdout=subprocess.PIPE,
                                      stderr=log, text=True, timeout=timeout)
                stdout = done.stdout
            except subprocess.TimeoutExpired as exc:
                stdout = (exc.stdout or b'').decode() if isinstance(exc.stdout, bytes) else (exc.stdout or '')
                stdout += RESULT_MARK + json.dumps({'error': f'timed out after {timeout:.0f} s'}) + '\n'
            log.write(stdout)
        result = {'error': f'no result line (see {log_path})'}
        for line in stdout.splitlines():
            if line.startswith(RESULT_MARK):
                result = json.loads(line[len(RESULT_MARK):])
        result['data_dir'] = data_dir
        if result.get('error'):
            self.log(f'  {name}: ERROR {result["error"]} (log: {log_path})')
        return result

    def discard(self, result: dict) -> None:
        """Drop a scenario's database once nothing chains from it (the large ones are ~100 MB)."""
        shutil.rmtree(result.get('data_dir', ''), ignore_errors=True)

    # ------------------------------------------------------------------ the run
    def execute(self) -> int:
        try:
            self.start()
            for name in self.config.only:
                self.log(f'scenario {name}')
                (getattr(scenarios, name, None) or getattr(scale, name))(self)
        finally:
            self.stop()
        return self.finish()

    def finish(self) -> int:
        elapsed = time.monotonic() - self.started
        facts = machine.describe(self.code_at_start, self.plugin_at_start)
        header = (f'label-studio-pachyderm benchmark, mode {self.config.mode}, '
                  f'{time.strftime("%Y-%m-%d %H:%M")}, whole run {elapsed / 60:.1f} min')
        print()
        print(header)
        print(machine.one_line(facts))
        print()
        print(self.table.text())
        markdown = machine.markdown_report(header, facts, self.table, self.config, elapsed)
        path = self.results_dir / 'latest.md'
        path.write_text(markdown)
        print(f'\nwritten: {path}')
        errors = [row for row in self.table.rows if row.error]
        return 1 if errors else 0


def _seed_pfs(client, repo, kind, count, batch, chunk) -> str:
    from .services import seed_pfs

    return seed_pfs(client, repo, kind, 0, count, batch, chunk)


def _migrations_fingerprint() -> str:
    """Changes whenever a migration of Label Studio or of the plugin is added or edited."""
    import hashlib

    import label_studio
    import label_studio_pachyderm

    digest = hashlib.sha256()
    for package in (label_studio, label_studio_pachyderm):
        root = Path(package.__file__).parent
        for path in sorted(root.glob('**/migrations/*.py')):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _copy_db(source_dir: Path, target_dir: Path) -> None:
    for suffix in ('', '-wal', '-shm'):
        source = source_dir / f'label_studio.sqlite3{suffix}'
        if source.exists():
            shutil.copyfile(source, target_dir / source.name)


def main(config: Config) -> int:
    if config.profile:
        from .hotspots import run_profile

        return run_profile(config)
    return Run(config).execute()
