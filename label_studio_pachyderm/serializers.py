"""Serializers for the Pachyderm storages.

The auth token is write-only: never in a response, and a PATCH that omits it or
sends it empty keeps the stored one. Validation checks the connection on an
unsaved copy, so "Check connection" never changes a stored storage.
"""
from __future__ import annotations

from django.conf import settings
from io_storages.serializers import ExportStorageSerializer, ImportStorageSerializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

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
        data.pop('last_synced_selection', None)
        return data

    def candidate(self, data):
        """An unsaved storage with the submitted values over the stored ones."""
        model = self.Meta.model
        stored = self.instance
        if stored is None and self.initial_data.get('id'):
            stored = model.objects.filter(pk=self.initial_data['id']).first()
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
        storage = self.candidate(dict(data))
        if not (storage.pachd_address or '').strip() and not getattr(settings, 'PACHYDERM_USE_SERVER_CONFIG', False):
            raise ValidationError({'pachd_address': ['A pachd address is required, e.g. grpc://localhost:30650']})
        self.check_storage(storage)
        # Never let an empty secret overwrite the stored one on save.
        for name in self.secure_fields:
            if not data.get(name):
                data.pop(name, None)
        return data


class PachydermImportStorageSerializer(_PachydermSerializerMixin, ImportStorageSerializer):
    type = serializers.ReadOnlyField(default='pachyderm')
    presign = serializers.BooleanField(read_only=True, default=False)

    def check_storage(self, storage):
        storage.validate_connection(require_files=self.require_files)

    class Meta:
        model = PachydermImportStorage
        fields = '__all__'
        read_only_fields = _READ_ONLY
        extra_kwargs = {'auth_token': {'write_only': True}}


class PachydermExportStorageSerializer(_PachydermSerializerMixin, ExportStorageSerializer):
    type = serializers.ReadOnlyField(default='pachyderm')
    presign = serializers.BooleanField(read_only=True, default=False)

    def check_storage(self, storage):
        storage.validate_connection()

    class Meta:
        model = PachydermExportStorage
        fields = '__all__'
        read_only_fields = _READ_ONLY
        extra_kwargs = {'auth_token': {'write_only': True}}
