"""Pachyderm source and target storages for Label Studio.

The models follow Label Studio's provider pattern (a shared mixin, an import and
an export storage, their link models). Pachyderm-specific work lives elsewhere:
``pachd`` talks to pachd, ``importer`` runs an import sync, ``exporter`` writes
annotations, ``jobs`` runs either inline or on the plugin's RQ queue.
"""
from __future__ import annotations

import logging
import mimetypes
import re

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _
from io_storages.base_models import (
    ExportStorage,
    ExportStorageLink,
    ImportStorage,
    ImportStorageLink,
    ProjectStorageMixin,
)
from io_storages.utils import StorageObject

from . import pachd, uri
from .access import is_project_member
from .connection import client_for
from .errors import validation_error
from .leases import lease_seconds

logger = logging.getLogger(__name__)


# What an import sync does with a file that changed since the last synced commit.
CHANGED_FILES_CHOICES = (('keep', 'keep'), ('new_version', 'new_version'))


class PachydermStorageMixin(models.Model):
    url_scheme = uri.SCHEME

    pachd_address = models.TextField(
        _('pachd address'), blank=True, default='',
        help_text='grpc://host:port, grpcs://host:port (TLS) or host:port; default port 30650',
    )
    auth_token = models.TextField(
        _('auth token'), null=True, blank=True, help_text='Pachyderm auth token (never returned by the API)'
    )
    tls_root_certs = models.TextField(
        _('TLS root certificates'), blank=True, default='',
        help_text='PEM root certificates for grpcs:// addresses signed by a private CA',
    )
    pach_project = models.TextField(_('Pachyderm project'), default='default', blank=True)
    repo = models.TextField(_('repo'), help_text='Pachyderm repo name')
    branch = models.TextField(_('branch'), default='master', blank=True)
    prefix = models.TextField(_('prefix'), blank=True, default='', help_text='Directory inside the repo')
    regex_filter = models.TextField(
        _('regex_filter'), blank=True, default='', help_text='Only paths matching this regex (Python re.search)'
    )
    use_blob_urls = models.BooleanField(
        _('use_blob_urls'), default=False,
        help_text='Every file is one task (media); off: .json/.jsonl files hold tasks',
    )
    recursive_scan = models.BooleanField(_('recursive scan'), default=True)
    # pachd has no presigned URLs: Label Studio's proxy always streams the bytes.
    presign = models.BooleanField(_('presign'), default=False, help_text='Always off for Pachyderm')
    presign_ttl = models.PositiveSmallIntegerField(_('presign_ttl'), default=1)

    class Meta:
        abstract = True

    # ------------------------------------------------------------------ helpers
    @property
    def project_name(self) -> str:
        return self.pach_project or 'default'

    @property
    def branch_name(self) -> str:
        return self.branch or 'master'

    @property
    def clean_prefix(self) -> str:
        return (self.prefix or '').strip('/')

    def get_client(self) -> pachd.PachdClient:
        return client_for(self)

    def path_matches(self, path: str) -> bool:
        """Whether a repo path belongs to this storage's selection (prefix, recursion, regex)."""
        prefix = self.clean_prefix
        if not uri.path_in_prefix(path, prefix):
            return False
        if not self.recursive_scan:
            rest = path[len(prefix):].lstrip('/') if prefix else path
            if '/' in rest:
                return False
        if self.regex_filter:
            return re.search(self.regex_filter, path) is not None
        return True

    def __str__(self):
        return f'{self.__class__.__name__} {self.project_name}/{self.repo}@{self.branch_name}'

    @property
    def type_full(self):
        return 'Pachyderm'

    def path_full(self):
        return f'{self.project_name}/{self.repo}@{self.branch_name}:/{self.clean_prefix}'


class PachydermImportStorageBase(PachydermStorageMixin, ImportStorage):
    commit = models.TextField(
        _('commit'), blank=True, default='', help_text='Pin syncs to this commit id; empty: the branch head'
    )
    watch_commits = models.BooleanField(
        _('watch commits'), default=False,
        help_text='Sync automatically when a new commit finishes on the branch (not with a pinned commit)',
    )
    changed_files = models.CharField(
        _('changed files'), max_length=16, choices=CHANGED_FILES_CHOICES, default='keep',
        help_text='A file changed since the last sync: keep its task (keep) or make a new task pinned to the '
                  'new commit (new_version)',
    )
    predictions_repo = models.TextField(
        _('predictions repo'), blank=True, default='',
        help_text="A pipeline's output repo whose files are predictions of the tasks' files; empty: no predictions",
    )
    predictions_branch = models.TextField(
        _('predictions branch'), blank=True, default='master',
        help_text='Branch of the predictions repo (read at its head with predictions_match=branch_head)',
    )
    predictions_path = models.TextField(
        _('predictions path'), blank=True, default='{dir}/{stem}.json',
        help_text='Path of the prediction file of a task file: {dir}, {stem}, {ext}, {path} (cats/1.jpg: dir cats, '
                  'stem 1, ext jpg)',
    )
    predictions_match = models.CharField(
        _('predictions match'), max_length=16, default='commit_set',
        choices=[('commit_set', 'The output commit of the task commit set'), ('branch_head', 'The branch head')],
        help_text="commit_set: a task pinned to commit C reads <predictions_repo>@C (a pipeline's output of those "
                  'bytes); branch_head: the head of predictions_branch',
    )
    # Label Studio resets `meta` each time a sync is queued, so what incremental
    # sync needs to remember lives in fields of its own.
    last_synced_commit = models.TextField(blank=True, default='', help_text='Commit the last complete sync read')
    last_synced_selection = models.TextField(
        blank=True, default='', help_text='Selection (prefix, regex, ...) of the last complete sync'
    )

    class Meta:
        abstract = True

    # ------------------------------------------------------------ connection
    def validate_connection(self, client=None, require_files=True):
        """Raise a DRF ValidationError naming what is wrong, per field where it maps to one."""
        from .validation import validate_import_storage

        validate_import_storage(self, require_files=require_files)

    # ------------------------------------------------------------ listing
    def _listing_commit(self, client) -> str:
        """The commit a sync would read (``importer.readable_commit``); '' when there is none yet."""
        from .imports.sync import readable_commit

        return readable_commit(self, client).id

    def iter_objects(self):
        client = self.get_client()
        try:
            commit = self._listing_commit(client)
            if not commit:
                return  # no commit finished without error yet: nothing to show
            # The preview reads only its first page: by directory, so it starts without a walk of the repo.
            for entry in client.list_files_by_directory(
                self.project_name, self.repo, commit, self.clean_prefix, recursive=self.recursive_scan
            ):
                if self.path_matches(entry.path):
                    yield entry
        except pachd.PachdError as exc:
            raise validation_error(exc) from None

    def iter_keys(self):
        for entry in self.iter_objects():
            yield entry.path

    def get_unified_metadata(self, obj):
        return {
            'key': obj.path,
            'last_modified': obj.committed.isoformat() if obj.committed else None,
            'size': obj.size,
            'commit': obj.commit,
        }

    def get_data(self, key, commit=None):
        """StorageObjects for one file of ``commit`` (default: the commit a sync would read).

        Label Studio's contract: a file that cannot be loaded raises ValueError. Rows are parsed
        as an import sync parses them (``taskfiles``), within PACHYDERM_MAX_TASK_FILE_MB.
        """
        from .imports import taskfiles
        from .imports.sync import max_task_file_bytes

        client = self.get_client()
        commit = commit or self._listing_commit(client)
        if not commit:
            raise ValueError(f'{self.project_name}/{self.repo}@{self.branch_name} has no commit finished without error yet')
        if self.use_blob_urls:
            data = {settings.DATA_UNDEFINED_NAME: uri.build(self.project_name, self.repo, commit, key)}
            return [StorageObject(task_data=data, key=key)]
        entry = client.inspect_file(self.project_name, self.repo, commit, key)
        if entry.size > max_task_file_bytes():
            raise ValueError(f'{key}: {entry.size} bytes, more than the {settings.PACHYDERM_MAX_TASK_FILE_MB:g} MiB '
                             'a task file may have (PACHYDERM_MAX_TASK_FILE_MB)')
        stream = client.read_file(self.project_name, self.repo, commit, key, entry=entry)
        objects = []
        try:
            for item in taskfiles.parse_task_file(stream.iter_chunks(1024 * 1024), key):
                if isinstance(item, taskfiles.RowError):
                    where = 'the file' if item.row_index is None else f'row {item.row_index}'
                    raise ValueError(f'{key} ({where}): {item.reason}')
                objects.append(item)
        except taskfiles.TaskFileError as exc:
            raise ValueError(f'{key}: cannot load tasks ({exc})') from None
        finally:
            stream.close()
        return objects

    def generate_http_url(self, url):
        # Never used: presign is always off, so Label Studio streams through its proxy.
        return url

    # ------------------------------------------------------------ proxy
    def can_resolve_url(self, url) -> bool:
        try:
            parsed = uri.parse(url)
            return bool(
                parsed
                and parsed.project == self.project_name
                and parsed.repo == self.repo
                and uri.path_in_prefix(parsed.path, self.clean_prefix)
            )
        except Exception:  # must never raise: called on arbitrary task data
            return False

    def get_bytes_stream(self, uri_str, range_header=None):
        """(stream, content_type, metadata) for Label Studio's storage proxy.

        ``range_header`` is the client's own ``Range`` (the plugin's proxy paths pass it unchanged;
        ``ranges`` reads it). Reads from the offset it asks for; never downloads the whole file. A
        pachd failure raises ``pachd.PachdError`` (the proxy answers it with 424 and the reason).
        """
        from django.conf import settings

        from .media import ranges

        parsed = uri.parse(uri_str)
        if not parsed or not self.can_resolve_url(uri_str):
            return None, None, {}
        client = self.get_client()
        info = client.inspect_file(parsed.project, parsed.repo, parsed.commit, parsed.path)
        size = info.size
        wanted = ranges.answer(range_header, size, getattr(settings, 'RESOLVER_PROXY_MAX_RANGE_SIZE', None))
        metadata = {'ETag': f'"{info.hash}"' if info.hash else None, 'LastModified': info.committed,
                    'StatusCode': wanted.status, 'ContentRange': wanted.content_range(size),
                    # A string: Label Studio copies ContentLength only when truthy, and an empty
                    # file's 200 (or a 416) must still say Content-Length: 0.
                    'ContentLength': str(wanted.length)}
        if wanted.status == 416:
            return _EmptyStream(), _content_type(parsed.path), metadata
        stream = client.read_file(parsed.project, parsed.repo, parsed.commit, parsed.path, wanted.offset,
                                  wanted.length, entry=info)
        return stream, _content_type(parsed.path), metadata

    # ------------------------------------------------------------ sync
    def sync(self, full_rescan: bool = False):
        from .imports.jobs import run_import_sync

        run_import_sync(self, full_rescan=full_rescan)

    def scan_and_create_links(self, full_rescan: bool = False):
        from .imports.sync import import_storage

        import_storage(self, PachydermImportStorageLink, full_rescan=full_rescan)


class PachydermImportStorage(ProjectStorageMixin, PachydermImportStorageBase):
    def has_permission(self, user):
        return is_project_member(user, self.project)

    class Meta:
        abstract = False


class PachydermExportStorage(PachydermStorageMixin, ExportStorage):
    def has_permission(self, user):
        return is_project_member(user, self.project)

    last_exported_commit = models.TextField(blank=True, default='', help_text='Commit the last export wrote')
    export_formats = models.JSONField(
        _('export formats'), default=list, blank=True,
        help_text='Label Studio export formats (e.g. COCO, YOLO) also written under <prefix>/formats/<FORMAT>/',
    )
    # When the formats were last converted for a commit that landed (auto-export refreshes them
    # at most once per PACHYDERM_FORMATS_REFRESH_SECONDS); ``meta`` is reset by every queued sync.
    formats_exported_at = models.DateTimeField(
        _('formats exported at'), null=True, blank=True,
        help_text='When the export formats were last written (the data as of that time)',
    )

    promote_to = models.TextField(
        _('promote to'), blank=True, default='',
        help_text='Branch that pipelines read (e.g. master); a promote moves it to a labeling round of the '
                  'working branch (branch). Empty: no rounds',
    )

    def validate_connection(self, client=None):
        from .validation import validate_export_storage

        validate_export_storage(self)

    # Label Studio's hooks; both go through the target's one writer (``outbox``).
    def save_annotation(self, annotation):
        from .exports import outbox

        outbox.record_change(annotation, [self.id])
        outbox.retry_later(self, outbox.flush(self, wait=lease_seconds()))

    def save_annotations(self, annotations):
        from .exports import outbox

        outbox.flush(self, wait=lease_seconds(), snapshot=annotations, track_status=True, reason='manual sync')

    def sync(self, save_only_new_annotations: bool = False, reason: str = 'manual sync'):
        from .exports.jobs import run_export_sync

        run_export_sync(self, only_new=save_only_new_annotations, reason=reason)


class PachydermImportStorageLink(ImportStorageLink):
    storage = models.ForeignKey(PachydermImportStorage, on_delete=models.CASCADE, related_name='links')
    commit = models.TextField(blank=True, default='', help_text='Pachyderm commit the task was created from')

    class Meta:
        indexes = [models.Index(fields=['storage', 'key'])]
        constraints = [
            # One task per file (media) or per row of a task file, whatever runs concurrently:
            # the sync claim keeps syncs apart, this keeps even a bug from duplicating tasks.
            # row_index is NULL for media files, and NULLs never collide in a plain UNIQUE.
            models.UniqueConstraint(
                'storage', 'key', Coalesce('row_index', Value(-1)), name='pachyderm_one_link_per_file_row'),
        ]


class PachydermExportStorageLink(ExportStorageLink):
    storage = models.ForeignKey(PachydermExportStorage, on_delete=models.CASCADE, related_name='links')
    path = models.TextField(blank=True, default='', help_text='Path of the file in the repo')
    commit = models.TextField(blank=True, default='', help_text='Pachyderm commit that last wrote the file')


class PachydermExportOutboxEntry(models.Model):
    """An annotation change not yet written to a target storage (the transactional outbox).

    Recorded in the same database transaction as the change itself, so a crash at
    any point after the save loses nothing; removed only after the commit holding
    the change is finished. See ``outbox``.
    """

    # No foreign key: deleting a project deletes its annotations (each recording a row here, in
    # the same transaction) and its storages; a key would make that delete fail. Rows of a
    # storage that is gone are removed by the writer and when the storage is deleted.
    storage_id = models.IntegerField(db_index=True)
    task_id = models.IntegerField(help_text='Task of the annotation (its file in the task layout)')
    annotation_id = models.IntegerField(help_text='The annotation (no foreign key: it may be deleted)')
    deleted = models.BooleanField(default=False, help_text='The annotation was deleted')
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=['storage_id', 'id'])]


class PachydermLease(models.Model):
    """Who may do one exclusive piece of work right now, and until when (see ``leases``).

    Keys name a target branch (one export writer at a time) or a storage (one
    sync at a time). Taken and renewed with conditional UPDATEs, so it works the
    same on SQLite and PostgreSQL, across processes and hosts.
    """

    key = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=64, blank=True, default='')
    expires_at = models.DateTimeField(null=True, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)


class _EmptyStream:
    def iter_chunks(self, chunk_size=None):
        return iter(())

    def close(self):
        pass


def _content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or 'application/octet-stream'
