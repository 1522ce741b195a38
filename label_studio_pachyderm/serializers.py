"""Serializers for the Pachyderm storages.

The auth token is write-only: never in a response, and a PATCH that omits it or
sends it empty keeps the stored one. Responses say only whether one is stored
(``auth_token_set``), so the edit form shows an empty field, not a mask, when none is.
Validation checks the connection on an unsaved copy, so "Check connection" never changes a stored storage.
"""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from io_storages.serializers import ExportStorageSerializer, ImportStorageSerializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from . import pachd
from .models import PachydermExportStorage, PachydermImportStorage

SECRET_FIELDS = ('auth_token',)
_READ_ONLY = ('presign', 'last_synced_commit', 'last_synced_selection', 'last_exported_commit')


class _PachydermSerializerMixin:
    secure_fields = list(SECRET_FIELDS)
    # Set by views that validate without saving (validate, files) or that sync.
    require_files = True

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in self.secure_fields:
            data.pop(name, None)
        return data

    def get_auth_token_set(self, instance) -> bool:
        return bool(instance.auth_token)

    def candidate(self, data):
        """An unsaved storage with the submitted values over the stored ones."""
        model = self.Meta.model
        # Only the instance the view resolved (and checked permissions on): an "id" in the
        # body of a create must never lend another storage's stored token to this check.
        stored = self.instance
        for name in self.secure_fields:
            if not data.get(name):
                data.pop(name, None)  # empty or omitted: keep the stored secret
        if stored is None:
            return model(**data)
        copy = model.objects.get(pk=stored.pk)
        for key, value in data.items():
            setattr(copy, key, value)
        return copy

    def validate(self, data):
        data = super().validate(data)
        self._check_token_stays_with_its_address(data)
        storage = self.candidate(dict(data))
        if not (storage.pachd_address or '').strip() and not getattr(settings, 'PACHYDERM_USE_SERVER_CONFIG', False):
            raise ValidationError({'pachd_address': ['A pachd address is required, e.g. grpc://localhost:30650']})
        self.check_storage(storage)
        # Never let an empty secret overwrite the stored one on save.
        for name in self.secure_fields:
            if not data.get(name):
                data.pop(name, None)
        return data


    def _check_token_stays_with_its_address(self, data):
        """A stored token is only ever sent to the address it was saved with.

        Otherwise anyone allowed to edit the storage could point it at a server of
        their own and receive the token on the connection check.
        """
        stored = self.instance
        if stored is None or not stored.auth_token or data.get('auth_token') or 'pachd_address' not in data:
            return
        if pachd.address_identity(data['pachd_address']) != pachd.address_identity(stored.pachd_address):
            raise ValidationError({'auth_token': [
                'Enter the auth token again: the pachd address changed, and a stored token is only sent to the '
                'address it was saved with.']})


class _TypeField(serializers.ReadOnlyField):
    """Always "pachyderm".

    Label Studio's ``ReadOnlyField(default=...)`` is skipped by DRF on partial updates,
    so a PATCH response lacked the field its schema marks as always present.
    """

    def get_attribute(self, instance):
        return 'pachyderm'


class PachydermImportStorageSerializer(_PachydermSerializerMixin, ImportStorageSerializer):
    type = _TypeField(default='pachyderm')
    auth_token_set = serializers.SerializerMethodField(
        help_text='Whether an auth token is stored (the token itself is never returned)')
    presign = serializers.BooleanField(read_only=True, default=False)

    def check_storage(self, storage):
        storage.validate_connection(require_files=self.require_files)

    class Meta:
        model = PachydermImportStorage
        # last_synced_selection is internal bookkeeping of incremental sync, never shown.
        exclude = ('last_synced_selection',)
        read_only_fields = _READ_ONLY
        extra_kwargs = {'auth_token': {'write_only': True}}


@extend_schema_field({
    'oneOf': [
        {'type': 'array', 'items': {'type': 'string', 'example': 'COCO'}, 'uniqueItems': True},
        {'type': 'string', 'example': 'COCO, YOLO', 'description': 'the same names, comma-separated (what the forms send)'},
    ],
    'description': "Label Studio export formats (those its Export dialog offers for the project's labeling config, "
                   'e.g. COCO, YOLO, VOC, CSV, JSON_MIN) also written under <prefix>/formats/<FORMAT>/ by each '
                   'manual sync, and by auto-export at most once per PACHYDERM_FORMATS_REFRESH_SECONDS. '
                   'Responses give the list.',
})
class _ExportFormatsField(serializers.JSONField):
    """A list of format names, or one comma-separated string of them (the storage forms have text inputs only).

    Any other JSON comes in as it is, so that a wrong shape gets the plugin's message, which names
    the formats available for the project (``validation.validate_export_formats``).
    """

    def to_internal_value(self, data):
        if isinstance(data, str):
            return [name.strip() for name in data.split(',') if name.strip()]
        return super().to_internal_value(data)


class PachydermExportStorageSerializer(_PachydermSerializerMixin, ExportStorageSerializer):
    type = _TypeField(default='pachyderm')
    auth_token_set = serializers.SerializerMethodField(
        help_text='Whether an auth token is stored (the token itself is never returned)')
    presign = serializers.BooleanField(read_only=True, default=False)
    export_formats = _ExportFormatsField(required=False, allow_null=True)

    def check_storage(self, storage):
        from .validation import validate_export_formats, validate_promote_to

        validate_export_formats(storage)  # before any pachd call: it needs none
        validate_promote_to(storage)
        storage.validate_connection()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # The outbox as it is now (the stored meta has it as of the last write).
        if instance.pk is not None and isinstance(data.get('meta'), dict):
            from .exports import outbox

            data['meta'] = {**data['meta'], **outbox.status(instance),
                            'last_exported_commit': instance.last_exported_commit or None}
        return data

    class Meta:
        model = PachydermExportStorage
        fields = '__all__'
        read_only_fields = _READ_ONLY + ('formats_exported_at',)
        extra_kwargs = {'auth_token': {'write_only': True}}
