"""REST API of the Pachyderm storages (tag "Storage: Pachyderm").

List/detail views are Label Studio's own with our queryset and serializer.
Sync, validate and files are ours: Label Studio's validate view saves the
edited fields when given an ``id`` and reduces every error to one generic
message; ours never saves and names the field to fix.
"""
from __future__ import annotations

import itertools

from core.permissions import ViewClassPermission, all_permissions
from django.conf import settings
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from io_storages.api import (
    ExportStorageDetailAPI,
    ExportStorageFormLayoutAPI,
    ExportStorageListAPI,
    ImportStorageDetailAPI,
    ImportStorageFormLayoutAPI,
    ImportStorageListAPI,
)
from projects.models import Project
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from . import pachd
from .errors import validation_error
from .access import is_project_member
from .validation import BRANCH_NAME as _BRANCH_NAME
from .models import PachydermExportStorage, PachydermImportStorage
from .serializers import PachydermExportStorageSerializer, PachydermImportStorageSerializer

TAG = 'Storage: Pachyderm'

_IMPORT_EXAMPLE = OpenApiExample(
    'Images on master',
    value={
        'project': 1, 'title': 'Images', 'pachd_address': 'grpc://localhost:30650', 'auth_token': '<token>',
        'pach_project': 'default', 'repo': 'images', 'branch': 'master', 'prefix': 'train',
        'regex_filter': r'.*\.(jpe?g|png)$', 'use_blob_urls': True, 'recursive_scan': True, 'watch_commits': True,
    },
    request_only=True,
)
_IMPORT_RESPONSE_EXAMPLE = OpenApiExample(
    'Synced import storage',
    value={
        'id': 3, 'type': 'pachyderm', 'project': 1, 'title': 'Images', 'pachd_address': 'grpc://localhost:30650',
        'auth_token_set': True, 'pach_project': 'default', 'repo': 'images', 'branch': 'master', 'commit': '', 'prefix': 'train',
        'regex_filter': r'.*\.(jpe?g|png)$', 'use_blob_urls': True, 'recursive_scan': True, 'presign': False,
        'status': 'completed', 'last_sync_count': 120,
        'last_synced_commit': '8d5b0bd1e6de4fca9a4e0d14a2a8c1c3',
        'watch_commits': True,
        'meta': {'commit': '8d5b0bd1e6de4fca9a4e0d14a2a8c1c3', 'sync_mode': 'incremental', 'tasks_existed': 880,
                 'watching': True, 'watch_since': '2026-12-01 09:12:03.512345+00:00',
                 'watch_last_event': '2026-12-01 10:40:17.004211+00:00', 'watch_last_error': None},
    },
    response_only=True,
)
_EXPORT_EXAMPLE = OpenApiExample(
    'Labels on master',
    value={
        'project': 1, 'title': 'Labels', 'pachd_address': 'grpc://localhost:30650', 'auth_token': '<token>',
        'pach_project': 'default', 'repo': 'labels', 'branch': 'master', 'prefix': 'ls',
        'can_delete_objects': True,
    },
    request_only=True,
)
_EXPORT_RESPONSE_EXAMPLE = OpenApiExample(
    'Synced export storage',
    value={
        'id': 4, 'type': 'pachyderm', 'project': 1, 'title': 'Labels', 'pachd_address': 'grpc://localhost:30650',
        'auth_token_set': True, 'pach_project': 'default', 'repo': 'labels', 'branch': 'master', 'prefix': 'ls', 'presign': False,
        'can_delete_objects': True, 'status': 'completed', 'last_sync_count': 57,
        'last_exported_commit': '0f3c5b8f0bb74a8d8b2f1d7c2c9e4a11',
    },
    response_only=True,
)
_ERROR_EXAMPLE = OpenApiExample(
    'Missing repo',
    value={
        'id': '63fcdd9d-abd5-411f-b0ad-0d1291a81420', 'status_code': 400, 'version': '1.23.2',
        'detail': 'Validation error', 'exc_info': None,
        'validation_errors': {'repo': ['repo "images" not found in project "default"']},
    },
    response_only=True,
    status_codes=['400'],
)
# Label Studio's exception handler shapes every error this way (core.utils.common.custom_exception_handler);
# a sync of a storage that is not synchronizable answers {"message": ...} as Label Studio's own sync views do.
_ERROR = inline_serializer('PachydermError', fields={
    'id': serializers.CharField(required=False, help_text='Error id, as in the server log'),
    'status_code': serializers.IntegerField(required=False),
    'version': serializers.CharField(required=False, help_text='Label Studio version'),
    'detail': serializers.CharField(required=False),
    'exc_info': serializers.CharField(required=False, allow_null=True),
    'validation_errors': serializers.DictField(
        required=False, help_text='Messages per field to fix (non_field_errors for the rest)'),
    'display_context': serializers.DictField(required=False),
    'message': serializers.CharField(required=False, help_text='Sync of a storage that is not synchronizable'),
})
_ERROR_DESCRIPTIONS = {
    400: 'Invalid settings, or pachd refused them: validation_errors names the field to fix',
    401: 'No or invalid Label Studio credentials',
    403: "Not a member of the project's organization, or no permission for this action",
    404: "No such storage or project (JSON on the explicit layout; Label Studio's HTML 404 page on its own layout)",
    409: 'Another promote of the same target is running; nothing was moved',
    503: 'pachd could not be reached or did not answer in time; nothing was moved, try again',
}


def _errors(*codes):
    """Error responses, in Label Studio's error shape."""
    responses = {}
    for code in codes:
        examples = [_ERROR_EXAMPLE] if code == 400 else []
        if code == 404:
            # Label Studio's middleware retries a 404 of a path without a trailing slash with
            # one appended; on the Label Studio layout that lands on its HTML 404 page.
            responses[(404, 'application/json')] = OpenApiResponse(_ERROR, description=_ERROR_DESCRIPTIONS[404])
            responses[(404, 'text/html')] = OpenApiResponse(OpenApiTypes.STR, description=_ERROR_DESCRIPTIONS[404])
        else:
            responses[code] = OpenApiResponse(_ERROR, description=_ERROR_DESCRIPTIONS[code], examples=examples)
    return responses


_PROJECT_PARAM = OpenApiParameter(
    name='project', type=OpenApiTypes.INT, location='query', required=True, description='Project ID'
)


def _schema(summary, description, request=None, responses=None, examples=(), parameters=()):
    return extend_schema(
        tags=[TAG], summary=summary, description=description, request=request, responses=responses,
        examples=list(examples), parameters=list(parameters),
    )


# ----------------------------------------------------------------------------- request input
_MAX_ID = 2**63 - 1


def _object_id(value, field: str) -> int:
    """A database id from request input, or HTTP 400 naming the field (never a 500 from the ORM)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        try:
            number = int(str(value).strip()) if isinstance(value, str) else None
        except ValueError:
            number = None
    if number is None or not 0 < number <= _MAX_ID:
        raise ValidationError({field: [f'{field} must be the id of an existing object (a positive whole number)']})
    return number


def _body(request):
    """The request body as a mapping (JSON object or form fields), or HTTP 400."""
    data = request.data
    if not hasattr(data, 'get'):
        raise ValidationError(
            {'non_field_errors': [f'Invalid data. Expected a dictionary, but got {type(data).__name__}.']})
    return data


# ----------------------------------------------------------------------------- list / detail
_NOT_A_MEMBER = 'You are not a member of this project\'s organization.'


def _require_member(user, project) -> None:
    """HTTP 403 unless ``user`` belongs to the organization of ``project`` (None: nothing to check)."""
    if project is not None and not is_project_member(user, project):
        raise PermissionDenied(_NOT_A_MEMBER)


def _check_body_project(request):
    """Refuse a body naming a project of another organization before any pachd call is made.

    An unknown project id is left to the serializer (HTTP 400, field "project").
    """
    project_id = _body(request).get('project')
    if project_id in (None, ''):
        return
    _require_member(request.user, Project.objects.filter(pk=_object_id(project_id, 'project')).first())


class _MemberListMixin:
    """Lists and creates only in projects of the user's own organization."""

    def get_queryset(self):
        project_id = self.request.query_params.get('project')
        if project_id:
            _require_member(self.request.user, Project.objects.filter(pk=_object_id(project_id, 'project')).first())
        return super().get_queryset()

    def create(self, request, *args, **kwargs):
        _check_body_project(request)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        _require_member(self.request.user, serializer.validated_data.get('project'))
        return super().perform_create(serializer)


class _MemberDetailMixin:
    """An update cannot move a storage into a project of another organization."""

    def update(self, request, *args, **kwargs):
        self.get_object()  # 404 / 403 for the storage itself come first
        _check_body_project(request)
        return super().update(request, *args, **kwargs)

    def perform_update(self, serializer):
        _require_member(self.request.user, serializer.validated_data.get('project'))
        return super().perform_update(serializer)


@method_decorator(name='get', decorator=_schema(
    'List Pachyderm import storages', 'Pachyderm source storages of a project.',
    responses={200: PachydermImportStorageSerializer(many=True), **_errors(400, 401, 403, 404)},
    parameters=[_PROJECT_PARAM], examples=[_IMPORT_RESPONSE_EXAMPLE]))
@method_decorator(name='post', decorator=_schema(
    'Create a Pachyderm import storage',
    'Checks the connection (pachd, token, repo, branch or commit, matching files) before saving.',
    request=PachydermImportStorageSerializer,
    responses={201: PachydermImportStorageSerializer, **_errors(400, 401, 403)},
    examples=[_IMPORT_EXAMPLE, _IMPORT_RESPONSE_EXAMPLE]))
class PachydermImportStorageListAPI(_MemberListMixin, ImportStorageListAPI):
    queryset = PachydermImportStorage.objects.all()
    serializer_class = PachydermImportStorageSerializer


@method_decorator(name='get', decorator=_schema(
    'Get a Pachyderm import storage', 'The auth token is never returned.',
    responses={200: PachydermImportStorageSerializer, **_errors(401, 403, 404)},
    examples=[_IMPORT_RESPONSE_EXAMPLE]))
@method_decorator(name='patch', decorator=_schema(
    'Update a Pachyderm import storage', 'An omitted or empty auth_token keeps the stored token.',
    request=PachydermImportStorageSerializer,
    responses={200: PachydermImportStorageSerializer, **_errors(400, 401, 403, 404)}, examples=[_IMPORT_EXAMPLE]))
@method_decorator(name='delete', decorator=_schema(
    'Delete a Pachyderm import storage', 'Tasks created by it stay in the project.',
    responses={204: None, **_errors(401, 403, 404)}))
class PachydermImportStorageDetailAPI(_MemberDetailMixin, ImportStorageDetailAPI):
    queryset = PachydermImportStorage.objects.all()
    serializer_class = PachydermImportStorageSerializer


@method_decorator(name='get', decorator=_schema(
    'List Pachyderm export storages', 'Pachyderm target storages of a project.',
    responses={200: PachydermExportStorageSerializer(many=True), **_errors(400, 401, 403, 404)},
    parameters=[_PROJECT_PARAM], examples=[_EXPORT_RESPONSE_EXAMPLE]))
@method_decorator(name='post', decorator=_schema(
    'Create a Pachyderm export storage',
    'Checks pachd, token and repo; a missing branch is created by the first write.',
    request=PachydermExportStorageSerializer,
    responses={201: PachydermExportStorageSerializer, **_errors(400, 401, 403)},
    examples=[_EXPORT_EXAMPLE, _EXPORT_RESPONSE_EXAMPLE]))
class PachydermExportStorageListAPI(_MemberListMixin, ExportStorageListAPI):
    queryset = PachydermExportStorage.objects.all()
    serializer_class = PachydermExportStorageSerializer

    def perform_create(self, serializer):
        # The serializer already checked the connection; Label Studio's view checks it
        # again and turns any error into a 500-prone message, so skip straight to saving.
        _require_member(self.request.user, serializer.validated_data.get('project'))
        storage = serializer.save()
        if settings.SYNC_ON_TARGET_STORAGE_CREATION:
            storage.sync(reason='storage created')
            storage.refresh_from_db()  # the response shows how that first sync ended


@method_decorator(name='get', decorator=_schema(
    'Get a Pachyderm export storage', 'The auth token is never returned.',
    responses={200: PachydermExportStorageSerializer, **_errors(401, 403, 404)},
    examples=[_EXPORT_RESPONSE_EXAMPLE]))
@method_decorator(name='patch', decorator=_schema(
    'Update a Pachyderm export storage', 'An omitted or empty auth_token keeps the stored token.',
    request=PachydermExportStorageSerializer,
    responses={200: PachydermExportStorageSerializer, **_errors(400, 401, 403, 404)}, examples=[_EXPORT_EXAMPLE]))
@method_decorator(name='delete', decorator=_schema(
    'Delete a Pachyderm export storage', 'Files already written stay in the repo.',
    responses={204: None, **_errors(401, 403, 404)}))
class PachydermExportStorageDetailAPI(_MemberDetailMixin, ExportStorageDetailAPI):
    queryset = PachydermExportStorage.objects.all()
    serializer_class = PachydermExportStorageSerializer


# ----------------------------------------------------------------------------- sync
_SYNC_REQUEST = inline_serializer('PachydermSyncRequest', fields={
    'full_rescan': serializers.BooleanField(required=False, help_text='Import: list every file again'),
    'only_new': serializers.BooleanField(required=False, help_text='Export: only annotations not exported yet'),
})


class _SyncAPI(generics.GenericAPIView):
    permission_required = ViewClassPermission(POST=all_permissions.storages_sync)
    parser_classes = (JSONParser, FormParser, MultiPartParser)

    def get_queryset(self):
        return self.serializer_class.Meta.model.objects.all()

    def flag(self, name) -> bool:
        """An option from the body or the query string; anything but a boolean is a 400."""
        data = _body(self.request)
        value = data.get(name, self.request.query_params.get(name, False))
        try:
            return bool(serializers.BooleanField().to_internal_value(value))
        except ValidationError:
            raise ValidationError({name: ['Must be a boolean: true/false, 1/0, yes/no or on/off']}) from None

    def post(self, request, *args, **kwargs):
        storage = self.get_object()
        options = self.sync_options()  # a malformed option is a 400 before anything starts
        if not storage.synchronizable:
            return Response(
                {'message': f'Storage {storage.id} is not synchronizable'}, status=status.HTTP_400_BAD_REQUEST
            )
        try:
            self.check(storage)
        except (ValidationError, pachd.PachdError) as exc:
            # The sync cannot start (pachd down, refused address, token, repo...): it failed, and
            # the storage says why, as when a sync fails midway. Label Studio's storage card shows
            # a 4xx as a generic "Runtime error" and keeps the previous status.
            self.record_check_failure(storage, exc)
        else:
            storage.sync(**options)
        storage.refresh_from_db()
        return Response(self.serializer_class(storage).data)

    @staticmethod
    def record_check_failure(storage, exc) -> None:
        from . import jobs

        storage.refresh_from_db()
        if jobs.sync_is_busy(storage):
            return  # a sync already queued or running owns the status; it meets the same pachd
        jobs.record_failure(type(storage), storage.id, exc if isinstance(exc, ValidationError) else
                            validation_error(exc))


@method_decorator(name='post', decorator=_schema(
    'Sync a Pachyderm import storage',
    'Imports new files of the branch head (or pinned commit). A re-sync reads only the diff since the last '
    'synced commit; send full_rescan=true to list everything again. A sync that fails, including one that '
    'cannot start (pachd unreachable, token refused, repo missing), answers 200 with status "failed" and the '
    'reason in traceback and meta.error.',
    request=_SYNC_REQUEST, responses={200: PachydermImportStorageSerializer, **_errors(400, 401, 403, 404)},
    examples=[_IMPORT_RESPONSE_EXAMPLE]))
class PachydermImportStorageSyncAPI(_SyncAPI):
    serializer_class = PachydermImportStorageSerializer

    def sync_options(self):
        return {'full_rescan': self.flag('full_rescan')}

    def check(self, storage):
        storage.validate_connection(require_files=False)


@method_decorator(name='post', decorator=_schema(
    'Sync a Pachyderm export storage',
    'Writes the project\'s annotations to repo@branch in ONE commit. A sync that fails, including one that '
    'cannot start, answers 200 with status "failed" and the reason in traceback and meta.error.',
    request=_SYNC_REQUEST, responses={200: PachydermExportStorageSerializer, **_errors(400, 401, 403, 404)},
    examples=[_EXPORT_RESPONSE_EXAMPLE]))
class PachydermExportStorageSyncAPI(_SyncAPI):
    serializer_class = PachydermExportStorageSerializer

    def sync_options(self):
        return {'save_only_new_annotations': self.flag('only_new')}

    def check(self, storage):
        storage.validate_connection()


# ----------------------------------------------------------------------------- validate / files
class _CheckAPI(generics.GenericAPIView):
    """Validate submitted storage settings against pachd without saving anything."""

    permission_required = all_permissions.storages_change
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    require_files = True

    def checked_storage(self, request):
        model = self.serializer_class.Meta.model
        data = _body(request)
        instance = None
        if data.get('id'):
            instance = model.objects.filter(pk=_object_id(data['id'], 'id')).first()
            if instance is None:
                raise ValidationError({'id': [f'No Pachyderm storage with id {data["id"]}']})
            if not instance.has_permission(request.user):
                raise PermissionDenied('You do not have permission to use this storage.')
        project_id = data.get('project') or (instance.project_id if instance else None)
        if project_id is not None:
            project = Project.objects.filter(pk=_object_id(project_id, 'project')).first()
            if project is None or not is_project_member(request.user, project):
                raise PermissionDenied('You do not have permission to use storages of this project.')
        serializer = self.serializer_class(instance=instance, data=data, partial=instance is not None)
        serializer.require_files = self.require_files
        serializer.is_valid(raise_exception=True)
        return serializer.candidate(dict(serializer.validated_data))


_VALIDATE_RESPONSES = {
    200: OpenApiResponse(description='The connection works (empty body)'),
    **_errors(400, 401, 403),
}


@method_decorator(name='post', decorator=_schema(
    'Validate a Pachyderm import storage',
    'Checks pachd is reachable, the token is accepted, the repo and branch (or commit) exist and the prefix holds '
    'at least one file matching the regex. With an "id", checks the stored storage with the submitted values '
    'over it; nothing is saved.',
    request=PachydermImportStorageSerializer, responses=_VALIDATE_RESPONSES, examples=[_IMPORT_EXAMPLE]))
class PachydermImportStorageValidateAPI(_CheckAPI):
    serializer_class = PachydermImportStorageSerializer

    def post(self, request, *args, **kwargs):
        self.checked_storage(request)
        return Response()


@method_decorator(name='post', decorator=_schema(
    'Validate a Pachyderm export storage',
    'Checks pachd is reachable, the token is accepted and the repo exists. Nothing is saved.',
    request=PachydermExportStorageSerializer, responses=_VALIDATE_RESPONSES, examples=[_EXPORT_EXAMPLE]))
class PachydermExportStorageValidateAPI(_CheckAPI):
    serializer_class = PachydermExportStorageSerializer

    def post(self, request, *args, **kwargs):
        self.checked_storage(request)
        return Response()


_FILES_RESPONSE = inline_serializer('PachydermFilesResponse', fields={
    'files': inline_serializer('PachydermFile', many=True, fields={
        'key': serializers.CharField(allow_null=True, help_text='Path in the repo; null: more files than "limit"'),
        'last_modified': serializers.CharField(allow_null=True, help_text=(
            "The listed commit's finishing time (ISO 8601): pachd gives it to every file of the listing, "
            'not the time the file itself last changed')),
        'size': serializers.IntegerField(allow_null=True, help_text='Bytes'),
        'commit': serializers.CharField(required=False, help_text='Commit listed'),
    }),
})


@method_decorator(name='post', decorator=_schema(
    'Preview files of a Pachyderm import storage',
    'The first "limit" selected files (path, size, commit) of the branch head or pinned commit. A final entry '
    'with key null means there are more.',
    request=PachydermImportStorageSerializer, responses={200: _FILES_RESPONSE, **_errors(400, 401, 403)}))
class PachydermImportStorageFilesAPI(_CheckAPI):
    serializer_class = PachydermImportStorageSerializer
    require_files = False

    def post(self, request, *args, **kwargs):
        storage = self.checked_storage(request)
        try:
            limit = max(1, min(int(request.data.get('limit', settings.DEFAULT_STORAGE_LIST_LIMIT)), 10_000))
        except (TypeError, ValueError, OverflowError):
            raise ValidationError({'limit': ['limit must be a whole number']}) from None
        try:
            entries = list(itertools.islice(storage.iter_objects(), limit + 1))
        except pachd.PachdError as exc:
            raise validation_error(exc) from None
        files = [storage.get_unified_metadata(e) for e in entries[:limit]]
        if len(entries) > limit:
            files.append({'key': None, 'last_modified': None, 'size': None})
        return Response({'files': files})


# ----------------------------------------------------------------------------- labeling rounds
_PROMOTE_REQUEST = inline_serializer('PachydermPromoteRequest', fields={
    'with_inputs': serializers.BooleanField(
        required=False, default=False,
        help_text='Also move inputs_branch of each source repo to the newest input commit of the round, '
                  'in the same pachd transaction'),
    'inputs_branch': serializers.CharField(
        required=False, default='labeled', help_text='The source repos\' branch with_inputs moves'),
    'commit': serializers.CharField(
        required=False, help_text='Roll back: move promote_to (and, with with_inputs, the inputs) to this '
                                  'earlier round commit instead of promoting a new round'),
})
_PROMOTE_RESPONSE = inline_serializer('PachydermPromoteResponse', fields={
    'commit': serializers.CharField(help_text='The round commit promote_to now holds'),
    'rollback': serializers.BooleanField(),
    'moved': serializers.ListField(child=serializers.DictField(), help_text='[{branch, from, to}], all moved at once'),
    'round': serializers.DictField(help_text="The round's card, as in the commit's description"),
    'promoted_at': serializers.CharField(),
    'metadata': serializers.DictField(
        help_text='{written, reason}: whether the card was also written as pachd commit metadata (pachd 2.12 '
                  'and later); reason says why not'),
})
_ROUNDS_RESPONSE = inline_serializer('PachydermRoundsResponse', fields={
    'promote_to': serializers.CharField(allow_null=True),
    'current': serializers.CharField(allow_null=True, help_text='The commit promote_to holds now'),
    'rounds': serializers.ListField(child=serializers.DictField(), help_text='[{commit, current, started, card, metadata}], newest '
                                                                          'first; metadata: the card is also '
                                                                          'in the commit metadata'),
})


class _RoundsView(generics.GenericAPIView):
    queryset = PachydermExportStorage.objects.all()
    serializer_class = PachydermExportStorageSerializer
    parser_classes = (JSONParser, FormParser, MultiPartParser)

    def storage(self):
        storage = self.get_object()
        _require_member(self.request.user, storage.project)
        return storage

    @staticmethod
    def pachd_failure(exc: pachd.PachdError, detail: str, **body) -> Response:
        """503 when pachd could not be reached or did not answer, else 400; ``body``: more keys."""
        code = status.HTTP_503_SERVICE_UNAVAILABLE if isinstance(exc, pachd.PachdUnavailable) else \
            status.HTTP_400_BAD_REQUEST
        return Response({'detail': detail, **body}, status=code)


@method_decorator(name='post', decorator=_schema(
    'Promote a labeling round',
    'Writes every annotation submitted before the call to the working branch (the storage\'s branch), makes a '
    'round commit there whose description is the round\'s card, then moves promote_to to it (and, with '
    'with_inputs, each source repo\'s inputs_branch to the input commits) in ONE pachd transaction. With commit, '
    'rolls back to that earlier round. Needs promote_to on the storage.',
    request=_PROMOTE_REQUEST, responses={200: _PROMOTE_RESPONSE, **_errors(400, 401, 403, 404, 409, 503)}))
class PachydermExportStoragePromoteAPI(_RoundsView):
    permission_required = ViewClassPermission(POST=all_permissions.storages_change)

    def post(self, request, *args, **kwargs):
        from .exports import rounds

        storage = self.storage()
        body = _body(request)
        options = _PROMOTE_REQUEST.__class__(data=body)
        if not options.is_valid():
            raise ValidationError(options.errors)
        commit = (options.validated_data.get('commit') or '').strip() or None
        inputs_branch = options.validated_data.get('inputs_branch') or rounds.DEFAULT_INPUTS_BRANCH
        if not _BRANCH_NAME.match(inputs_branch):
            raise ValidationError({'inputs_branch': [f'{inputs_branch!r} is not a branch name: letters, digits, '
                                                     '"_" and "-" only']})
        try:
            outcome = rounds.promote(storage, request.user, with_inputs=options.validated_data['with_inputs'],
                                     inputs_branch=inputs_branch, commit=commit)
        except rounds.PromoteRefused as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        except rounds.PromoteBusy as exc:
            return Response({'detail': str(exc), 'moved': []}, status=status.HTTP_409_CONFLICT)
        except pachd.PachdError as exc:
            return self.pachd_failure(exc, f'{exc}; nothing was moved', moved=[])
        return Response(outcome)


@method_decorator(name='get', decorator=_schema(
    'List the labeling rounds of a Pachyderm export storage',
    'The round commits of the working branch, newest first, with their cards, and the commit promote_to holds.',
    responses={200: _ROUNDS_RESPONSE, **_errors(401, 403, 404, 503)}))
class PachydermExportStorageRoundsAPI(_RoundsView):
    permission_required = ViewClassPermission(GET=all_permissions.storages_view)

    def get(self, request, *args, **kwargs):
        from .exports import rounds

        storage = self.storage()
        try:
            return Response(rounds.rounds(storage))
        except pachd.PachdError as exc:
            return self.pachd_failure(exc, str(exc))


# ----------------------------------------------------------------------------- form layout (legacy UI)
_FORM_RESPONSE = OpenApiResponse(description="Rows of fields for Label Studio's server-driven storage form")


class PachydermImportStorageFormLayoutAPI(ImportStorageFormLayoutAPI):
    # Label Studio hides its form-layout views from the schema; ours are documented.
    @extend_schema(exclude=False, tags=[TAG], summary='Form layout of the Pachyderm import storage',
                   description='The import storage form for the legacy Cloud Storage UI (form_layout.yml).',
                   responses={200: _FORM_RESPONSE, **_errors(401, 403)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PachydermExportStorageFormLayoutAPI(ExportStorageFormLayoutAPI):
    @extend_schema(exclude=False, tags=[TAG], summary='Form layout of the Pachyderm export storage',
                   description='The export storage form for the legacy Cloud Storage UI (form_layout.yml).',
                   responses={200: _FORM_RESPONSE, **_errors(401, 403)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
