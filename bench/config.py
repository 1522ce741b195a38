"""Sizes and switches of a run: defaults, ``--quick`` (10x smaller), flags and BENCH_* variables.

The default run measures every size, 100,000 files included, in about 25 minutes on
2 CPUs, so there is no separate "full" mode; ``--no-s3-large`` trims it by ~3 minutes. The
concurrent-annotators scenario (three Label Studio servers, two phases of 60 s) adds ~10 minutes.

Precedence: command-line flag > BENCH_<NAME> environment variable > mode default.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields

SCENARIOS = ('import_media', 'import_tasks', 'resync', 'export', 'proxy', 'annotators', 'predictions')
# Asked for by name only (--only scale): seeding a million files alone takes a long time.
OPTIONAL_SCENARIOS = ('scale',)


@dataclass
class Sizes:
    media_files: int = 10_000  # scenario 1
    task_files: int = 10_000  # scenario 2
    resync_small: int = 20_000  # scenario 3, both providers
    resync_large: int = 100_000  # scenario 3, both providers (and the RSS of a full sync)
    resync_added: int = 100  # files added before each re-sync
    export_annotations: int = 10_000  # scenario 4
    per_commit_annotations: int = 0  # one-commit-per-annotation peer; 0 = all of export_annotations
    proxy_mib: int = 256  # scenario 5
    range_mib: int = 8  # bytes per Range request, as a browser's media element asks
    proxy_passes: int = 3  # streaming is short: best of N passes, for the proxy and the raw read alike
    seed_chunk: int = 5_000  # files per seeding commit into the local PFS server
    annotators: int = 8  # scenario 6: concurrent annotators (threads, one HTTP session each)
    annotators_seconds: int = 60  # scenario 6: seconds they submit, per configuration and phase
    annotators_pace_ms: int = 4000  # scenario 6: paced phase, one submit per annotator this often; 0 = no phase
    annotators_slices: int = 6  # scenario 6: the configurations take turns in this many slices per phase
    predictions: int = 10_000  # scenario 7: predictions attached to existing tasks
    scale_files: int = 1_000_000  # scale scenario: files in the large repo (and a tenth of it, for per-file time)
    scale_annotations: int = 100_000  # scale scenario: annotations exported in one commit
    scale_s3_annotations: int = 10_000  # scale scenario: annotations the S3 peer exports (one request each)

    def scaled(self, factor: int) -> 'Sizes':
        """Every count divided by ``factor`` (the proxy file too, but not below two ranges)."""
        out = Sizes(**{f.name: getattr(self, f.name) for f in fields(self)})
        for name in ('media_files', 'task_files', 'resync_small', 'resync_large', 'export_annotations',
                     'per_commit_annotations', 'predictions', 'seed_chunk', 'scale_files', 'scale_annotations',
                     'scale_s3_annotations'):
            setattr(out, name, max(1, getattr(self, name) // factor) if getattr(self, name) else 0)
        out.resync_added = max(10, self.resync_added // factor)
        out.proxy_mib = max(2 * self.range_mib, self.proxy_mib // factor)
        out.proxy_passes = 1
        out.annotators_seconds = max(10, self.annotators_seconds // factor)
        out.annotators_slices = 2
        return out


_HELP = {
    'media_files': 'scenario 1: media files imported',
    'task_files': 'scenario 2: JSON task files imported',
    'resync_small': 'scenario 3: files in the smaller re-sync repo',
    'resync_large': 'scenario 3: files in the larger re-sync repo (also the full-sync RSS check)',
    'resync_added': 'scenario 3: files added before each re-sync',
    'export_annotations': 'scenario 4: annotations exported',
    'per_commit_annotations': 'scenario 4: annotations the one-commit-each peer writes (0 = all; fewer = '
                              'extrapolated linearly, marked ~)',
    'proxy_mib': 'scenario 5: size of the streamed file in MiB',
    'range_mib': 'scenario 5: MiB per Range request',
    'proxy_passes': 'scenario 5: passes per contender (the fastest counts)',
    'seed_chunk': 'files per commit when seeding the local PFS server',
    'annotators': 'scenario 6: concurrent annotators submitting through a Label Studio server',
    'annotators_seconds': 'scenario 6: seconds of submitting per configuration (baseline, inline, RQ) and phase',
    'annotators_pace_ms': 'scenario 6: paced phase, ms between one annotator\'s submits (0: back-to-back only)',
    'annotators_slices': 'scenario 6: slices per phase in which the three configurations take turns',
    'predictions': 'scenario 7: predictions attached to existing tasks (the plugin against LS\'s import API)',
    'scale_files': 'scale scenario (--only scale): files in the large repo; a tenth of it is synced too, '
                   'for the time per file',
    'scale_annotations': 'scale scenario: annotations exported to Pachyderm in one commit',
    'scale_s3_annotations': 'scale scenario: annotations the S3 peer exports (compared per annotation)',
}


@dataclass
class Config:
    sizes: Sizes
    mode: str  # 'default' or 'quick'
    only: tuple
    s3_large: bool  # measure the S3 peer at resync_large too
    keep: bool  # keep the run's temporary directory
    profile: bool  # profile the Pachyderm import and export instead of the comparison
    results_dir: str
    annotators_db: str = 'sqlite'  # scenario 6: Label Studio's database for the servers (sqlite | postgres)


def parse(argv=None) -> Config:
    parser = argparse.ArgumentParser(
        prog='bash bench/run.sh',
        description='Pachyderm storage vs Label Studio\'s S3 and Local Files providers, side by side, one run.',
    )
    parser.add_argument('--quick', action='store_true', help='every size 10x smaller (a smoke run, ~8 min)')
    parser.add_argument('--only', default=os.environ.get('BENCH_ONLY', ''),
                        help=f'comma-separated subset of: {", ".join(SCENARIOS)}; or the long '
                             f'{", ".join(OPTIONAL_SCENARIOS)} (not in the default run)')
    parser.add_argument('--no-s3-large', action='store_true',
                        help='skip the S3 peer at the large re-sync size (it lists every object through moto)')
    parser.add_argument('--keep', action='store_true', help='keep the temporary run directory (databases, logs)')
    parser.add_argument('--profile', action='store_true',
                        help='profile the Pachyderm import and export (cProfile + SQL counts) instead')
    parser.add_argument('--results-dir', default=os.environ.get('BENCH_RESULTS_DIR', ''))
    parser.add_argument('--annotators-db', choices=('sqlite', 'postgres'),
                        default=os.environ.get('BENCH_ANNOTATORS_DB', 'sqlite'),
                        help='scenario 6: Label Studio\'s database (postgres: POSTGRE_HOST/PORT/USER/PASSWORD, '
                             'default 127.0.0.1:5432 postgres/postgres; a database per server, dropped after)')
    defaults = Sizes()
    for f in fields(Sizes):
        parser.add_argument('--' + f.name.replace('_', '-'), type=int, default=None,
                            help=f'{_HELP[f.name]}; default {getattr(defaults, f.name)} (env BENCH_{f.name.upper()})')
    args = parser.parse_args(argv)

    sizes = defaults.scaled(10) if args.quick else defaults
    if args.profile and not args.quick:
        # Big enough for per-item costs to dominate, small enough that cProfile's overhead stays bearable.
        sizes.media_files = sizes.task_files = sizes.export_annotations = 5_000
        sizes.proxy_mib = 64
    for f in fields(Sizes):
        value = getattr(args, f.name)
        if value is None and os.environ.get(f'BENCH_{f.name.upper()}'):
            value = int(os.environ[f'BENCH_{f.name.upper()}'])
        if value is not None:
            setattr(sizes, f.name, value)

    only = tuple(s.strip() for s in args.only.split(',') if s.strip()) or SCENARIOS
    unknown = [s for s in only if s not in SCENARIOS + OPTIONAL_SCENARIOS]
    if unknown:
        parser.error(f'unknown scenario(s) {", ".join(unknown)}; choose from {", ".join(SCENARIOS + OPTIONAL_SCENARIOS)}')
    from .services import BENCH_DIR

    return Config(
        sizes=sizes,
        mode='quick' if args.quick else 'default',
        only=only,
        s3_large=not args.no_s3_large,
        keep=args.keep,
        profile=args.profile,
        results_dir=args.results_dir or str(BENCH_DIR / 'results'),
        annotators_db=args.annotators_db,
    )
