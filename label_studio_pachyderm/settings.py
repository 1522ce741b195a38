"""Label Studio settings with the Pachyderm storage plugin enabled.

Use it everywhere Label Studio runs: ``label-studio-pachyderm start`` sets it for
you; RQ workers and WSGI servers need ``DJANGO_SETTINGS_MODULE=label_studio_pachyderm.settings``.
Nothing of Label Studio's own behaviour changes: every built-in provider keeps working.
"""
import os
import sys

import label_studio

# Label Studio imports its own modules as top-level packages (``core``, ``io_storages``...);
# its launcher puts the package directory on sys.path, and so must we for workers, WSGI and tests.
_LS_DIR = os.path.dirname(label_studio.__file__)
if _LS_DIR not in sys.path:
    sys.path.insert(0, _LS_DIR)

# Label Studio's settings module reads django.conf.settings while it is being imported
# (Sentry set-up). Django then loads the module named by DJANGO_SETTINGS_MODULE: let that
# be Label Studio's own half-loaded module, exactly as when Label Studio runs by itself.
_OUR_SETTINGS = os.environ.get('DJANGO_SETTINGS_MODULE')
os.environ['DJANGO_SETTINGS_MODULE'] = 'label_studio.core.settings.label_studio'
try:
    from label_studio.core.settings.label_studio import *  # noqa: E402,F401,F403
finally:
    if _OUR_SETTINGS is None:
        os.environ.pop('DJANGO_SETTINGS_MODULE', None)
    else:
        os.environ['DJANGO_SETTINGS_MODULE'] = _OUR_SETTINGS
from label_studio.core.utils.params import get_bool_env, get_env, get_env_list  # noqa: E402

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))

INSTALLED_APPS = [*INSTALLED_APPS, 'label_studio_pachyderm.apps.PachydermStorageConfig']  # noqa: F405

# The one hook every storage lookup in Label Studio goes through (proxy, /types, lists).
GET_STORAGE_LIST = 'label_studio_pachyderm.functions.get_storage_list'

# Data Manager's "storage filename" column and Task.get_storage_filename().
IO_STORAGES_IMPORT_LINK_NAMES = [  # noqa: F405
    *IO_STORAGES_IMPORT_LINK_NAMES,  # noqa: F405
    'io_storages_pachyderm_pachydermimportstoragelink',
]

# The Data Manager's "Pachyderm version" filter (imports/datamanager.py); it calls Label Studio's own function.
DATA_MANAGER_GET_ALL_COLUMNS = 'label_studio_pachyderm.imports.datamanager.get_all_columns'

# Plugin routes first, then all of Label Studio's.
ROOT_URLCONF = 'label_studio_pachyderm.urls'

# pfs:// media on Label Studio's proxy URLs take a lean path (media/middleware.py) after CORS and
# security headers; everything else, refusals included, goes down the whole stack.
MIDDLEWARE.insert(MIDDLEWARE.index('django.middleware.security.SecurityMiddleware') + 1,  # noqa: F405
                  'label_studio_pachyderm.media.middleware.PfsMediaMiddleware')

# Our base.html extends Label Studio's and adds the script that registers the
# Pachyderm provider in the Cloud Storage wizard.
TEMPLATES[0]['DIRS'] = [os.path.join(_PLUGIN_DIR, 'templates'), *TEMPLATES[0]['DIRS']]  # noqa: F405

# SQLite (Label Studio's default database) refuses a write after 5 s of waiting for another
# one: with a team submitting at once that turns into lost work. Wait longer, unless the
# operator chose a value. PostgreSQL is unaffected.
if DATABASES['default']['ENGINE'].endswith('sqlite3'):  # noqa: F405
    DATABASES['default'].setdefault('OPTIONS', {}).setdefault('timeout', 30)  # noqa: F405

# Label Studio gives the `django` logger the console handler AND lets it propagate to the
# root logger, which has the same handler: every request line printed twice. Let it
# propagate only (the root's handler prints it once; log capture on the root still sees it).
if 'django' in LOGGING.get('loggers', {}):  # noqa: F405
    LOGGING['loggers']['django'] = {**LOGGING['loggers']['django'], 'handlers': []}  # noqa: F405

# ---------------------------------------------------------------- plugin settings
# Deadline in seconds for each pachd call (and for reaching pachd before a stream).
PACHYDERM_GRPC_TIMEOUT = float(get_env('PACHYDERM_GRPC_TIMEOUT', 10))

# Hosts the plugin may dial even when Label Studio's SSRF protection bans them
# (loopback, private ranges). Comma-separated ``host`` or ``host:port`` entries,
# e.g. ``localhost:30650,pachd.pachyderm.svc``. See docs/architecture.md (Security).
PACHYDERM_ALLOWED_HOSTS = get_env_list('PACHYDERM_ALLOWED_HOSTS', default=[])

# When on, a storage with an empty pachd address / token uses the active context of
# the server's Pachyderm config (~/.pachyderm/config.json or $PACH_CONFIG). Off by
# default: it lends the server's Pachyderm identity to every project member.
PACHYDERM_USE_SERVER_CONFIG = get_bool_env('PACHYDERM_USE_SERVER_CONFIG', False)

# Opt-in background mode for Pachyderm work only (Label Studio OSS runs jobs inline).
# With a Redis URL set, syncs and auto-exports go to this RQ queue; start workers with
# ``label-studio-pachyderm worker``.
PACHYDERM_REDIS_URL = get_env('PACHYDERM_REDIS_URL', '')
PACHYDERM_RQ_QUEUE = get_env('PACHYDERM_RQ_QUEUE', 'pachyderm')

# Seconds an auto-export waits to gather other submits into the same commit (RQ mode
# only; inline mode writes at once, and submits that arrive meanwhile share the next commit).
# 0 disables coalescing.
PACHYDERM_EXPORT_COALESCE_SECONDS = float(get_env('PACHYDERM_EXPORT_COALESCE_SECONDS', 5))
# Annotation changes that could not be exported yet (pachd down, branch busy) stay in the
# outbox and are retried after this many seconds, doubling up to 10 minutes, for as long as
# any is pending.
PACHYDERM_EXPORT_RETRY_SECONDS = float(get_env('PACHYDERM_EXPORT_RETRY_SECONDS', 30))
# Seconds a lease lasts without renewal: the export writer of a target branch and a running
# sync renew theirs every third of it (a heartbeat); a holder that died is replaced after it.
PACHYDERM_LEASE_SECONDS = float(get_env('PACHYDERM_LEASE_SECONDS', 30))

# Tasks created per database batch during an import sync.
PACHYDERM_IMPORT_BATCH_SIZE = int(get_env('PACHYDERM_IMPORT_BATCH_SIZE', 500))

# Largest .json/.jsonl task file an import sync reads, in MiB; a larger one is reported and
# skipped before any of it is read.
PACHYDERM_MAX_TASK_FILE_MB = float(get_env('PACHYDERM_MAX_TASK_FILE_MB', 100))

if PACHYDERM_REDIS_URL:
    RQ_QUEUES = {  # noqa: F405
        **RQ_QUEUES,  # noqa: F405
        PACHYDERM_RQ_QUEUE: {'URL': PACHYDERM_REDIS_URL, 'DEFAULT_TIMEOUT': 3600},
    }

# Files an export writes: 'task' = <prefix>/<task_id>.json with the task and all its
# annotations (what Label Studio writes with FUTURE_SAVE_TASK_TO_STORAGE);
# 'annotation' = <prefix>/<annotation_id>.json with one annotation.
PACHYDERM_EXPORT_LAYOUT = get_env('PACHYDERM_EXPORT_LAYOUT', 'task')

# A target storage's export formats (COCO, YOLO, ...) are converted from every annotated task
# of the project: a manual sync always writes them, an auto-export commit at most once per this
# many seconds (the next commit after that refreshes them; no commit is made just for them).
PACHYDERM_FORMATS_REFRESH_SECONDS = float(get_env('PACHYDERM_FORMATS_REFRESH_SECONDS', 300))

# Watch (source storages with "Sync automatically when new commits land"): the watcher runs
# inside `label-studio-pachyderm start` unless PACHYDERM_WATCH is false (then run
# `label-studio-pachyderm watch` somewhere, or nothing watches). It reads which storages are
# watched every PACHYDERM_WATCH_REFRESH_SECONDS, so created, edited and deleted storages are
# followed without a restart.
PACHYDERM_WATCH = get_bool_env('PACHYDERM_WATCH', True)
PACHYDERM_WATCH_REFRESH_SECONDS = float(get_env('PACHYDERM_WATCH_REFRESH_SECONDS', 5))
# Syncs (and the meta and status updates of watched storages) a watcher runs at once, on
# a fixed set of threads; the catch-up of a thousand storages after a pachd restart waits
# its turn rather than starting a thousand syncs.
PACHYDERM_WATCH_SYNC_THREADS = int(get_env('PACHYDERM_WATCH_SYNC_THREADS', 4))
