"""What the numbers were measured on, and the Markdown report around the table."""
from __future__ import annotations

import os
import platform
import subprocess

from .services import MOTO_VENV, REPO_DIR


def describe(code_at_start: str = '', plugin_at_start: str = '') -> dict:
    """Facts for the report; the ``*_at_start`` values are taken when the run began."""
    code = code_at_start or code_state()
    if plugin_at_start and plugin_digest() != plugin_at_start:
        code += f' (the plugin\'s code changed during the run; at the end: {code_state()})'
    facts = {
        'cpus (nproc)': str(os.cpu_count()),
        'cpu': _cpu_model(),
        'ram': _ram(),
        'os': f'{platform.system()} {platform.release()}',
        'python': platform.python_version(),
        'label-studio': _version('label_studio'),
        'label-studio-pachyderm': _dist_version('label-studio-pachyderm'),
        'pachyderm-sdk': _dist_version('pachyderm-sdk'),
        'moto (S3 peer)': _moto_version(),
        'database': 'SQLite (a fresh copy per scenario)',
        'code measured': code,
        'load average at the end (1/5/15 min)': ' / '.join(f'{x:.1f}' for x in os.getloadavg()),
    }
    return facts


def one_line(facts: dict) -> str:
    return (f'{facts["cpus (nproc)"]} CPUs ({facts["cpu"]}), {facts["ram"]} RAM, Python {facts["python"]}, '
            f'Label Studio {facts["label-studio"]}, load avg {facts["load average at the end (1/5/15 min)"]}')


def markdown_report(header: str, facts: dict, table, config, elapsed: float) -> str:
    sizes = config.sizes
    lines = [
        f'# {header}', '',
        '## Machine', '',
        *[f'- {k}: {v}' for k, v in facts.items()], '',
        '## Results', '',
        table.markdown(), '',
        '"Load" is the 1-minute load average around the measured block (this machine is shared; '
        f'there are {facts["cpus (nproc)"]} CPUs). "x of peer" = the Pachyderm time divided by the peer\'s time.',
        '',
        '## Notes', '',
        '- Every contender ran in a fresh process on its own copy of a migrated SQLite database; peak RSS is '
        'that process\'s `ru_maxrss` (Django and Label Studio alone account for ~260-280 MB). '
        '"RSS at start" is the resident size when the measured block began.',
        '- S3 peer: moto\'s server (bench/.venv-moto), reached through Label Studio\'s operator-level '
        '`S3_ENDPOINT`; SSRF protection stayed on for every provider. Pachyderm: the local PFS server over gRPC, '
        'admitted with `PACHYDERM_ALLOWED_HOSTS=127.0.0.1`.',
        '- Re-sync: the Pachyderm storage did a real first sync (its own row); the S3 storage starts from the '
        'same rows written in bulk (tasks + links), then both re-sync after the same new objects.',
        '',
        '## Sizes', '',
        *[f'- {k}: {v}' for k, v in vars(sizes).items()], '',
        'Reproduce: `bash bench/run.sh' + ('' if config.mode == 'default' else f' --{config.mode}') + '`', '',
    ]
    return '\n'.join(lines)


def plugin_digest() -> str:
    """A fingerprint of the measured code (the plugin package), to notice edits during a run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO_DIR / 'label_studio_pachyderm').glob('**/*.py')):
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_state() -> str:
    """The commit measured, and which plugin files differed from it (read-only git queries)."""
    def git(*args) -> str:
        done = subprocess.run(['git', '-C', str(REPO_DIR), *args], capture_output=True, text=True)
        return done.stdout.rstrip('\n') if done.returncode == 0 else ''  # porcelain lines start with a space

    head = git('rev-parse', '--short', 'HEAD') or 'unknown'
    changed = [line[3:] for line in git('status', '--porcelain', '--', 'label_studio_pachyderm').splitlines()]
    return f'{head}' + (f' + uncommitted changes in {", ".join(changed)}' if changed else '')


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _ram() -> str:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemTotal'):
                    return f'{int(line.split()[1]) / 1024 / 1024:.1f} GiB'
    except OSError:
        pass
    return 'unknown'


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:
        return 'unknown'


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return 'unknown'


def _moto_version() -> str:
    python = MOTO_VENV / 'bin' / 'python'
    if not python.exists():
        return 'not installed'
    done = subprocess.run([str(python), '-c', 'import moto; print(moto.__version__)'], capture_output=True, text=True)
    return done.stdout.strip() or 'unknown'
