"""The plugin's tables, for the modules that ``models`` itself imports.

A storage's ``sync()`` starts its job and its ``save_annotation()`` records an outbox
row, as Label Studio's providers do, so ``models`` imports the flows. The flows and
the shared modules below them look the model classes up in Django's app registry
here instead of importing ``models`` back; they do so only when they run, after
Django has loaded every app.
"""
from django.apps import apps

APP_LABEL = 'io_storages_pachyderm'


def import_storage_model():
    return apps.get_model(APP_LABEL, 'PachydermImportStorage')


def import_link_model():
    return apps.get_model(APP_LABEL, 'PachydermImportStorageLink')


def export_storage_model():
    return apps.get_model(APP_LABEL, 'PachydermExportStorage')


def outbox_entry_model():
    return apps.get_model(APP_LABEL, 'PachydermExportOutboxEntry')


def lease_model():
    return apps.get_model(APP_LABEL, 'PachydermLease')
